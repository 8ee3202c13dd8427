// tinfer/core/aligned_buffer.hpp: owning, zero-initialized, 64-byte aligned storage.
#pragma once

#include <cstddef>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>

#include "tinfer/core/error.hpp"

namespace tinfer {

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
