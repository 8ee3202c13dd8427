// tinfer/core/tensor.hpp: owning tensors and non-owning strided views.
//
// Shapes are row-major with up to kMaxRank dimensions; strides count elements (not bytes) and
// may be any non-negative values, so slices and transposes are views without copies.
// Element types: float, f16, bf16 (see core/dtype.hpp). Owning storage is 64-byte aligned.
#pragma once

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <type_traits>

#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"

namespace tinfer {

inline constexpr int kMaxRank = 4;

/// Extents of a tensor: rank() dimensions, each >= 0.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) : Shape(std::span<const std::int64_t>(dims.begin(), dims.size())) {}
  explicit Shape(std::span<const std::int64_t> dims) {
    if (dims.size() > static_cast<std::size_t>(kMaxRank)) {
      throw InvalidArgument(detail::str_cat("tensor rank ", dims.size(), " exceeds the maximum of ", kMaxRank));
    }
    rank_ = static_cast<int>(dims.size());
    for (int i = 0; i < rank_; ++i) {
      if (dims[i] < 0) throw InvalidArgument(detail::str_cat("tensor dimension ", i, " is negative (", dims[i], ")"));
      dims_[i] = dims[i];
    }
  }
  int rank() const noexcept { return rank_; }
  std::int64_t operator[](int i) const noexcept { return dims_[i]; }
  std::int64_t& operator[](int i) noexcept { return dims_[i]; }
  /// Number of elements; throws InvalidArgument if it overflows int64.
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) {
      if (dims_[i] != 0 && n > INT64_MAX / dims_[i]) throw InvalidArgument("tensor element count overflows int64");
      n *= dims_[i];
    }
    return n;
  }
  std::string to_string() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + "]";
  }
  friend bool operator==(const Shape& a, const Shape& b) noexcept {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

/// Row-major (C order) strides of a shape, in elements.
inline std::array<std::int64_t, kMaxRank> contiguous_strides(const Shape& shape) {
  std::array<std::int64_t, kMaxRank> strides{};
  std::int64_t s = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    strides[i] = s;
    s *= std::max<std::int64_t>(shape[i], 1);
  }
  return strides;
}

/// A non-owning view of elements of type T (possibly const) laid out by a shape and strides.
/// Copying a view is cheap and never copies elements; the viewed memory must outlive it.
template <class T>
  requires Element<std::remove_const_t<T>>
class TensorView {
 public:
  using value_type = std::remove_const_t<T>;

  TensorView() = default;
  /// A contiguous row-major view of `shape` starting at `data`.
  TensorView(T* data, const Shape& shape) : data_(data), shape_(shape), strides_(contiguous_strides(shape)) {}
  /// A strided view; `strides` has one entry per dimension, in elements.
  TensorView(T* data, const Shape& shape, std::span<const std::int64_t> strides) : data_(data), shape_(shape) {
    if (static_cast<int>(strides.size()) != shape.rank()) {
      throw InvalidArgument(detail::str_cat("tensor view: ", strides.size(), " strides for rank ", shape.rank()));
    }
    for (int i = 0; i < shape.rank(); ++i) {
      if (strides[i] < 0) throw InvalidArgument("tensor view: negative stride");
      strides_[i] = strides[i];
    }
  }

  /// Views of T convert to views of const T.
  operator TensorView<const value_type>() const noexcept
    requires(!std::is_const_v<T>)
  {
    TensorView<const value_type> v;
    v.data_ = data_;
    v.shape_ = shape_;
    v.strides_ = strides_;
    return v;
  }

  T* data() const noexcept { return data_; }
  const Shape& shape() const noexcept { return shape_; }
  int rank() const noexcept { return shape_.rank(); }
  std::int64_t dim(int i) const noexcept { return shape_[i]; }
  std::int64_t stride(int i) const noexcept { return strides_[i]; }
  std::int64_t numel() const { return shape_.numel(); }

  /// Unchecked element access; one index per dimension.
  template <class... I>
    requires(std::is_integral_v<I> && ...)
  T& operator()(I... idx) const noexcept {
    assert(static_cast<int>(sizeof...(I)) == rank());
    std::int64_t off = 0;
    int d = 0;
    ((off += static_cast<std::int64_t>(idx) * strides_[d++]), ...);
    return data_[off];
  }

  /// Bounds-checked element access; throws InvalidArgument naming the bad index.
  T& at(std::initializer_list<std::int64_t> idx) const {
    if (static_cast<int>(idx.size()) != rank()) {
      throw InvalidArgument(detail::str_cat("tensor index has ", idx.size(), " entries for rank ", rank()));
    }
    std::int64_t off = 0;
    int d = 0;
    for (std::int64_t i : idx) {
      if (i < 0 || i >= shape_[d]) {
        throw InvalidArgument(detail::str_cat("index ", i, " out of range for dimension ", d, " of shape ", shape_.to_string()));
      }
      off += i * strides_[d++];
    }
    return data_[off];
  }

  /// The sub-view [begin, end) along `axis` (same rank).
  TensorView slice(int axis, std::int64_t begin, std::int64_t end) const {
    check_axis(axis);
    if (begin < 0 || end < begin || end > shape_[axis]) {
      throw InvalidArgument(detail::str_cat("slice [", begin, ", ", end, ") out of range for dimension ", axis,
                                            " of shape ", shape_.to_string()));
    }
    TensorView v = *this;
    v.data_ = data_ + begin * strides_[axis];
    v.shape_[axis] = end - begin;
    return v;
  }

  /// The view at `index` along `axis`, with that axis removed (rank - 1).
  TensorView select(int axis, std::int64_t index) const {
    check_axis(axis);
    if (index < 0 || index >= shape_[axis]) {
      throw InvalidArgument(detail::str_cat("index ", index, " out of range for dimension ", axis, " of shape ",
                                            shape_.to_string()));
    }
    std::array<std::int64_t, kMaxRank> dims{}, strides{};
    int r = 0;
    for (int i = 0; i < rank(); ++i) {
      if (i == axis) continue;
      dims[r] = shape_[i];
      strides[r++] = strides_[i];
    }
    return TensorView(data_ + index * strides_[axis], Shape(std::span<const std::int64_t>(dims.data(), r)),
                      std::span<const std::int64_t>(strides.data(), r));
  }
  /// Row `i` of the outermost dimension.
  TensorView operator[](std::int64_t i) const { return select(0, i); }

  /// The same elements with two axes swapped (no copy).
  TensorView transpose(int a, int b) const {
    check_axis(a);
    check_axis(b);
    TensorView v = *this;
    std::swap(v.shape_[a], v.shape_[b]);
    std::swap(v.strides_[a], v.strides_[b]);
    return v;
  }

  /// True when the elements are dense in row-major order.
  bool is_contiguous() const noexcept {
    std::int64_t expect = 1;
    for (int i = rank() - 1; i >= 0; --i) {
      if (shape_[i] != 1 && strides_[i] != expect) return false;
      expect *= shape_[i];
    }
    return true;
  }

  /// A view with a new shape of the same element count; requires a contiguous view.
  TensorView reshape(const Shape& shape) const {
    if (!is_contiguous()) throw InvalidArgument("reshape needs a contiguous tensor view");
    if (shape.numel() != numel()) {
      throw InvalidArgument(detail::str_cat("cannot reshape ", shape_.to_string(), " to ", shape.to_string()));
    }
    return TensorView(data_, shape);
  }

  /// The elements as a span; requires a contiguous view.
  std::span<T> span() const {
    if (!is_contiguous()) throw InvalidArgument("span() needs a contiguous tensor view");
    return std::span<T>(data_, static_cast<std::size_t>(numel()));
  }

 private:
  template <class U>
    requires Element<std::remove_const_t<U>>
  friend class TensorView;

  void check_axis(int axis) const {
    if (axis < 0 || axis >= rank()) throw InvalidArgument(detail::str_cat("axis ", axis, " out of range for rank ", rank()));
  }

  T* data_ = nullptr;
  Shape shape_;
  std::array<std::int64_t, kMaxRank> strides_{};
};

/// A tensor that owns its zero-initialized, 64-byte aligned, contiguous elements.
template <Element T>
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(const Shape& shape)
      : storage_(static_cast<std::size_t>(shape.numel())), view_(storage_.data(), shape) {}
  Tensor(std::initializer_list<std::int64_t> dims) : Tensor(Shape(dims)) {}

  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  TensorView<T> view() noexcept { return view_; }
  TensorView<const T> view() const noexcept { return view_; }
  operator TensorView<T>() noexcept { return view_; }
  operator TensorView<const T>() const noexcept { return view_; }

  T* data() noexcept { return storage_.data(); }
  const T* data() const noexcept { return storage_.data(); }
  const Shape& shape() const noexcept { return view_.shape(); }
  int rank() const noexcept { return view_.rank(); }
  std::int64_t dim(int i) const noexcept { return view_.dim(i); }
  std::int64_t numel() const { return view_.numel(); }
  std::span<T> span() noexcept { return {storage_.data(), storage_.size()}; }
  std::span<const T> span() const noexcept { return {storage_.data(), storage_.size()}; }

  template <class... I>
  T& operator()(I... idx) noexcept {
    return view_(idx...);
  }
  template <class... I>
  const T& operator()(I... idx) const noexcept {
    return view_(idx...);
  }
  TensorView<T> operator[](std::int64_t i) { return view_[i]; }
  TensorView<const T> operator[](std::int64_t i) const { return view()[i]; }

 private:
  AlignedBuffer<T> storage_;
  TensorView<T> view_;
};

}  // namespace tinfer
