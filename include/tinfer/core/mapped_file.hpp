// tinfer/core/mapped_file.hpp: a read-only image of a whole file in memory (RAII), either read
// into private anonymous memory (LoadMode::Read, the default) or memory-mapped (LoadMode::Mmap).
//
// Why Read is the default: weights are streamed once per token, so decode speed is the speed of
// reading them. Anonymous memory is asked for 2 MiB transparent huge pages (madvise; the kernel
// falls back to 4 KiB pages where it has none), and its pages can only leave memory by swapping.
// A file mapping uses page-cache pages behind 4 KiB page-table entries (many more TLB misses,
// each a two-level walk under a hypervisor) and its pages can be evicted under memory pressure
// from other processes and read again from disk on the next token. Peak resident memory is the
// file size in both modes (Read reads in 64 MiB pieces; the page cache it fills can be reclaimed).
// Mmap loads faster (nothing is copied) and shares pages between processes: TINFER_LOAD=mmap.
//
// In Mmap mode, if the file is changed on disk while mapped, the contents seen through the
// mapping are undefined (and truncating it can raise SIGBUS): replace model files by writing a
// new file and renaming it over the old one, which leaves existing mappings intact.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tinfer/core/error.hpp"

namespace tinfer {

/// How MappedFile brings a file into memory.
enum class LoadMode { Read, Mmap };

/// TINFER_LOAD=mmap: Mmap; anything else: Read. Read once.
inline LoadMode default_load_mode() noexcept {
  static const LoadMode m = [] {
    const char* env = std::getenv("TINFER_LOAD");
    return env != nullptr && std::strcmp(env, "mmap") == 0 ? LoadMode::Mmap : LoadMode::Read;
  }();
  return m;
}

class MappedFile {
 public:
  MappedFile() = default;

  /// Loads `path` read-only (see LoadMode). Throws IoError naming the file and the system's
  /// reason (cannot open, read error, file shrank while being read), or OutOfMemory.
  explicit MappedFile(std::string path, LoadMode mode = default_load_mode()) : path_(std::move(path)) {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw IoError(detail::str_cat(path_, ": cannot open: ", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw IoError(detail::str_cat(path_, ": cannot stat: ", std::strerror(err)));
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd);
      throw IoError(detail::str_cat(path_, ": is a directory, expected a file"));
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0 && mode == LoadMode::Read) {
      read_all(fd);
    } else if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        throw IoError(detail::str_cat(path_, ": cannot map ", size_, " bytes: ", std::strerror(err)));
      }
      data_ = static_cast<const std::byte*>(p);
      map_len_ = size_;
    }
    ::close(fd);  // the mapping keeps its own reference to the file
  }

  MappedFile(MappedFile&& o) noexcept
      : path_(std::move(o.path_)),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        map_len_(std::exchange(o.map_len_, 0)),
        owned_(std::exchange(o.owned_, false)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      path_ = std::move(o.path_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      map_len_ = std::exchange(o.map_len_, 0);
      owned_ = std::exchange(o.owned_, false);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { unmap(); }

  const std::byte* data() const noexcept { return data_; }

  /// Whether the bytes were read into this object's own memory (LoadMode::Read), so rewrite()
  /// may change them; false for a mapping of the file.
  bool owns_bytes() const noexcept { return owned_; }

  /// Calls fn(std::byte* data) with the bytes writable, then makes them read-only again; for
  /// repacking weights in place by the only user of the loaded file (the file on disk never
  /// changes). The protection changes over the whole huge-page-aligned range, so the huge
  /// pages stay whole. Throws InvalidArgument unless owns_bytes().
  template <class F>
  void rewrite(F&& fn) const {
    if (!owned_) throw InvalidArgument(detail::str_cat(path_, ": a memory-mapped file cannot be rewritten in place"));
    auto* p = const_cast<std::byte*>(data_);  // our own anonymous memory, read-only by protection only
    if (::mprotect(p, map_len_, PROT_READ | PROT_WRITE) != 0) {
      throw IoError(detail::str_cat(path_, ": cannot make the loaded bytes writable: ", std::strerror(errno)));
    }
    struct Restore {
      std::byte* p;
      std::size_t len;
      ~Restore() { ::mprotect(p, len, PROT_READ); }
    } restore{p, map_len_};
    fn(p);
  }
  std::size_t size() const noexcept { return size_; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  const std::string& path() const noexcept { return path_; }
  bool is_open() const noexcept { return data_ != nullptr || !path_.empty(); }

 private:
  static constexpr std::size_t kHuge = std::size_t{2} << 20;

  // Anonymous memory rounded up to whole huge pages (and aligned to one, so each can be huge),
  // filled with pread in pieces. Closes nothing; the caller closes fd.
  void read_all(int fd) {
    const std::size_t len = (size_ + kHuge - 1) / kHuge * kHuge;
    void* raw = ::mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
      ::close(fd);
      throw OutOfMemory(detail::str_cat(path_, ": cannot allocate ", size_, " bytes to read the file into"));
    }
    // Trim to a huge-page-aligned range of len bytes.
    const auto a = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t aligned = (a + kHuge - 1) & ~static_cast<std::uintptr_t>(kHuge - 1);
    if (aligned > a) ::munmap(raw, aligned - a);
    const std::uintptr_t end = a + len + kHuge;
    if (end > aligned + len) ::munmap(reinterpret_cast<void*>(aligned + len), end - (aligned + len));
    auto* p = reinterpret_cast<std::byte*>(aligned);
#ifdef MADV_HUGEPAGE
    ::madvise(p, len, MADV_HUGEPAGE);  // advice only: no huge pages is not an error
#endif
    std::size_t done = 0;
    while (done < size_) {
      const std::size_t want = std::min<std::size_t>(size_ - done, std::size_t{64} << 20);
      const ssize_t got = ::pread(fd, p + done, want, static_cast<off_t>(done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        const int err = errno;
        ::munmap(p, len);
        ::close(fd);
        throw IoError(got < 0 ? detail::str_cat(path_, ": read error at offset ", done, ": ", std::strerror(err))
                              : detail::str_cat(path_, ": file ended at ", done, " bytes, expected ", size_,
                                                " (changed while being read?)"));
      }
      done += static_cast<std::size_t>(got);
    }
    ::mprotect(p, len, PROT_READ);  // read-only like a mapping, so stray writes fault
    data_ = p;
    map_len_ = len;
    owned_ = true;
  }

  void unmap() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), map_len_);
    data_ = nullptr;
    size_ = 0;
    map_len_ = 0;
    owned_ = false;
  }

  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t map_len_ = 0;  // bytes mapped (Read: rounded up to huge pages)
  bool owned_ = false;       // read into anonymous memory (LoadMode::Read)
};

}  // namespace tinfer
