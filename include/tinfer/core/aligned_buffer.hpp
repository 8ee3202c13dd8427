// tinfer/core/aligned_buffer.hpp: owning, zero-initialized, 64-byte aligned storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>

#include "tinfer/core/error.hpp"

namespace tinfer {

/// Bytes the system can still hand out without swapping: /proc/meminfo's MemAvailable, lowered
/// to the room left under a cgroup v2 memory limit (containers, CI); 0 when unknown.
inline std::uint64_t available_memory_bytes() noexcept {
  std::uint64_t avail = 0;
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    unsigned long long kb = 0;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
        avail = static_cast<std::uint64_t>(kb) * 1024;
        break;
      }
    std::fclose(f);
  }
  unsigned long long max = 0, cur = 0;
  bool have_max = false, have_cur = false;
  if (std::FILE* f = std::fopen("/sys/fs/cgroup/memory.max", "r")) {
    have_max = std::fscanf(f, "%llu", &max) == 1;  // "max" (no limit) does not parse
    std::fclose(f);
  }
  if (std::FILE* f = std::fopen("/sys/fs/cgroup/memory.current", "r")) {
    have_cur = std::fscanf(f, "%llu", &cur) == 1;
    std::fclose(f);
  }
  if (have_max && have_cur) {
    const std::uint64_t room = max > cur ? max - cur : 0;
    if (avail == 0 || room < avail) avail = room;
  }
  return avail;
}

/// Throws OutOfMemory when `bytes` exceed the memory available now (available_memory_bytes()),
/// so that an absurd request (say, a context far larger than the machine can hold) fails at
/// once with a message instead of the kernel killing the process later, when the pages are
/// touched. Requests under 256 MiB are not checked. `what` names the request in the message,
/// `advice` says how to ask for less.
inline void check_memory_available(std::uint64_t bytes, std::string_view what, std::string_view advice) {
  if (bytes < (std::uint64_t{256} << 20)) return;
  const std::uint64_t avail = available_memory_bytes();
  if (avail != 0 && bytes > avail) {
    auto gib = [](std::uint64_t b) { return static_cast<double>(b) / static_cast<double>(std::uint64_t{1} << 30); };
    throw OutOfMemory(detail::str_cat(what, " needs ", gib(bytes), " GiB but only ", gib(avail), " GiB of memory is available; ", advice));
  }
}

/// Alignment of every buffer tinfer allocates: one cache line, and one AVX-512 register.
inline constexpr std::size_t kBufferAlignment = 64;

/// A fixed-size array of trivially copyable T, zeroed, aligned to kBufferAlignment.
/// Allocation failure throws tinfer::OutOfMemory naming the size.
template <class T>
class AlignedBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "AlignedBuffer holds plain data only");

 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t count) : size_(count) {
    if (count == 0) return;
    if (count > std::numeric_limits<std::size_t>::max() / sizeof(T) - kBufferAlignment) {
      throw OutOfMemory(detail::str_cat("cannot allocate ", count, " elements of ", sizeof(T),
                                        " bytes: the size overflows"));
    }
    // Round up so SIMD loads of a full register at the tail stay inside the allocation.
    const std::size_t bytes = (count * sizeof(T) + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
    check_memory_available(bytes, "an allocation", "reduce the context size or the batch");
    void* p = ::operator new(bytes, std::align_val_t(kBufferAlignment), std::nothrow);
    if (p == nullptr) {
      throw OutOfMemory(detail::str_cat("cannot allocate ", bytes, " bytes (", count,
                                        " elements); reduce the context size or the batch"));
    }
    std::memset(p, 0, bytes);
    data_.reset(static_cast<T*>(p));
  }

  AlignedBuffer(AlignedBuffer&&) noexcept = default;
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept = default;

  T* data() noexcept { return data_.get(); }
  const T* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return data_.get()[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_.get()[i]; }
  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + size_; }
  const T* begin() const noexcept { return data(); }
  const T* end() const noexcept { return data() + size_; }

 private:
  struct Deleter {
    void operator()(T* p) const noexcept { ::operator delete(p, std::align_val_t(kBufferAlignment)); }
  };
  std::unique_ptr<T, Deleter> data_;
  std::size_t size_ = 0;
};

}  // namespace tinfer
