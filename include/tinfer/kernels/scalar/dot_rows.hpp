// tinfer/kernels/scalar/dot_rows.hpp: the scalar reference of y[r] = dot(W[r, :], x) for each
// weight type; every SIMD path is tested against these.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "tinfer/core/float16.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/matvec.hpp"
#include "tinfer/kernels/dequantize.hpp"

namespace tinfer::kernels::scalar {

inline void dot_rows_f32(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  for (std::int64_t r = r0; r < r1; ++r) y[r] = dot_f32(reinterpret_cast<const float*>(w.row(r)), x, w.cols);
}

template <class Half>
void dot_rows_half(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* row = w.row(r);
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (std::int64_t i = 0; i < w.cols; ++i) {
      std::uint16_t bits;
      std::memcpy(&bits, row + 2 * i, 2);
      acc[i & 7] += Half::to_float(bits) * x[i];
    }
    y[r] = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  }
}

inline void dot_rows_f16(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  dot_rows_half<f16>(w, x, y, r0, r1);
}
inline void dot_rows_bf16(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  dot_rows_half<bf16>(w, x, y, r0, r1);
}

/// Any block type: dequantize each row (bit-exactly as ggml does) and take the float dot
/// product. The reference for the quantized kernels, and the fallback for types without one.
inline void dot_rows_dequantized(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) {
  thread_local std::vector<float> row;
  row.resize(static_cast<std::size_t>(w.cols));
  for (std::int64_t r = r0; r < r1; ++r) {
    quant::dequantize_row(w.type, w.row(r), row.data(), w.cols);
    y[r] = dot_f32(row.data(), x, w.cols);
  }
}

}  // namespace tinfer::kernels::scalar
