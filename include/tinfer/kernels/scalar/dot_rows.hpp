// tinfer/kernels/scalar/dot_rows.hpp: the scalar reference of y[r] = dot(W[r, :], x) for each
// weight type; every SIMD path is tested against these, bit for bit.
//
// The float order every ISA implements (so results are identical on scalar, AVX2 and AVX-512):
// 16 float lanes per (row, activation row), all +0 at the start; element i goes to lane i % 16
// as lane = fma(w_i, x_i, lane) (one rounding, explicit std::fma here, vfmadd in the SIMD
// code), elements in increasing order; then the fixed tree reduce16() below. AVX-512 keeps the
// 16 lanes in one zmm, AVX2 in two ymm, the scalar twin in an array. Nothing else (number of
// rows or tokens handled at once, threads) changes the order, so matmul equals matvec per row.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tinfer/core/float16.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/matvec.hpp"
#include "tinfer/kernels/dequantize.hpp"

namespace tinfer::kernels::scalar {

/// The fixed reduction of 16 lanes: 16 -> 8 (a[i] + a[i + 8]) -> 4 (i + 4) -> 2 (i + 2) -> 1.
template <class T>  // float lanes; LayerNorm's double lanes (scalar/norm.hpp) take the same tree
inline T reduce16(const T* a) noexcept {
  T t8[8], t4[4];
  for (int i = 0; i < 8; ++i) t8[i] = a[i] + a[i + 8];
  for (int i = 0; i < 4; ++i) t4[i] = t8[i] + t8[i + 4];
  const T t0 = t4[0] + t4[2], t1 = t4[1] + t4[3];
  return t0 + t1;
}

/// dot(row, x) of n weights of type T (float, f16 or bf16) in the 16-lane order above. The row's
/// 16-column blocks lie `step` elements apart (16: contiguous; WeightView::float_block_step).
template <class T>
float dot16(const std::byte* row, const float* x, std::int64_t n, std::int64_t step = 16) noexcept {
  float acc[16] = {};
  for (std::int64_t i = 0; i < n; ++i) {
    const std::size_t at = static_cast<std::size_t>((i / 16) * step + i % 16);
    float w;
    if constexpr (sizeof(T) == 4) {
      std::memcpy(&w, row + 4 * at, 4);
    } else {
      std::uint16_t bits;
      std::memcpy(&bits, row + 2 * at, 2);
      w = T::to_float(bits);
    }
    acc[i & 15] = std::fma(w, x[i], acc[i & 15]);
  }
  return reduce16(acc);
}

/// Rows [r0, r1) of a float view of either layout.
template <class T>
void dot_rows_float(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  for (std::int64_t r = r0; r < r1; ++r) y[r] = dot16<T>(w.float_row(r, sizeof(T)), x, w.cols, w.float_block_step(r));
}

inline void dot_rows_f32(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  dot_rows_float<float>(w, x, y, r0, r1);
}
inline void dot_rows_f16(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  dot_rows_float<f16>(w, x, y, r0, r1);
}
inline void dot_rows_bf16(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  dot_rows_float<bf16>(w, x, y, r0, r1);
}

/// Any block type: dequantize each row (bit-exactly as ggml does) and take the float dot
/// product. The reference for the quantized kernels, and the fallback for types without one
/// (the same function on every ISA, so it is ISA-independent too).
inline void dot_rows_dequantized(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) {
  thread_local std::vector<float> row;
  row.resize(static_cast<std::size_t>(w.cols));
  for (std::int64_t r = r0; r < r1; ++r) {
    quant::dequantize_row(w.type, w.row(r), row.data(), w.cols);
    y[r] = dot_f32(row.data(), x, w.cols);
  }
}

}  // namespace tinfer::kernels::scalar
