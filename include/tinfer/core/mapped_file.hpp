// tinfer/core/mapped_file.hpp: a read-only memory-mapped file (RAII).
//
// Weights are used in place from the mapping, so loading a model costs no copy and pages are
// shared between processes. If the file is changed on disk while mapped, the contents seen
// through the mapping are undefined (and truncating it can raise SIGBUS): replace model files
// by writing a new file and renaming it over the old one, which leaves existing mappings intact.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
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

class MappedFile {
 public:
  MappedFile() = default;

  /// Maps `path` read-only. Throws IoError naming the file and the system's reason.
  explicit MappedFile(std::string path) : path_(std::move(path)) {
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
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        throw IoError(detail::str_cat(path_, ": cannot map ", size_, " bytes: ", std::strerror(err)));
      }
      data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);  // the mapping keeps its own reference to the file
  }

  MappedFile(MappedFile&& o) noexcept
      : path_(std::move(o.path_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      path_ = std::move(o.path_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { unmap(); }

  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  const std::string& path() const noexcept { return path_; }
  bool is_open() const noexcept { return data_ != nullptr || !path_.empty(); }

 private:
  void unmap() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace tinfer
