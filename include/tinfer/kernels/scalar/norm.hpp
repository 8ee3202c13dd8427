// tinfer/kernels/scalar/norm.hpp: RMSNorm and LayerNorm, the scalar twins of
// kernels/{avx2,avx512}/norm.hpp, in the order of operations every ISA implements bit for bit.
//
// RMSNorm: 16 float lanes, element i into lane i mod 16 by fma(x, x, lane) in increasing i, the
// reduce16 tree of scalar/dot_rows.hpp, then ss / n + eps, scale = 1 / sqrt(ss) and
// out = w (scale x).
// LayerNorm (in double: GPT-2's activations have a large mean that float cancellation would
// amplify): 16 double lanes of x for the mean (one add per element), the same tree, / n; then
// 16 double lanes of fma(d, d, lane) with d = x - mean, the tree, / n; m = float(mean),
// inv = float(1 / sqrt(var + eps)); out = fma((x - m) inv, w, b) (b = 0 without a bias).
#pragma once

#include <cmath>
#include <cstdint>

#include "tinfer/kernels/scalar/dot_rows.hpp"

namespace tinfer::kernels::scalar {

/// The scale of RMSNorm from its lanes' sum of squares.
inline float rms_scale(float ss, std::int64_t n, float eps) noexcept {
  ss /= static_cast<float>(n);
  ss += eps;
  return 1.0f / std::sqrt(ss);
}

/// out[i] = weight[i] * x[i] / sqrt(mean(x^2) + eps). `out` may alias `x`.
inline void rmsnorm(float* out, const float* x, const float* weight, std::int64_t n, float eps) noexcept {
  float lanes[16] = {};
  for (std::int64_t i = 0; i < n; ++i) lanes[i % 16] = std::fma(x[i], x[i], lanes[i % 16]);
  const float scale = rms_scale(reduce16(lanes), n, eps);
  for (std::int64_t i = 0; i < n; ++i) out[i] = weight[i] * (scale * x[i]);
}

/// out[i] = (x[i] - mean) / sqrt(var + eps) * weight[i] + bias[i] (bias may be null). `out`
/// may alias `x`.
inline void layernorm(float* out, const float* x, const float* weight, const float* bias, std::int64_t n, float eps) noexcept {
  double lanes[16] = {};
  for (std::int64_t i = 0; i < n; ++i) lanes[i % 16] += static_cast<double>(x[i]);
  const double mean = reduce16(lanes) / static_cast<double>(n);
  for (double& l : lanes) l = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    lanes[i % 16] = std::fma(d, d, lanes[i % 16]);
  }
  const double var = reduce16(lanes) / static_cast<double>(n);
  const float m = static_cast<float>(mean);
  const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
  for (std::int64_t i = 0; i < n; ++i) out[i] = std::fma((x[i] - m) * inv, weight[i], bias ? bias[i] : 0.0f);
}

}  // namespace tinfer::kernels::scalar
