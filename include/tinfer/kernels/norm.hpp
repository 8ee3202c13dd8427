// tinfer/kernels/norm.hpp: RMSNorm (Llama family) and LayerNorm (GPT-2 family).
#pragma once

#include <cmath>
#include <cstdint>

namespace tinfer::kernels {

/// out[i] = weight[i] * x[i] / sqrt(mean(x^2) + eps). `out` may alias `x`.
inline void rmsnorm(float* out, const float* x, const float* weight, std::int64_t n, float eps) noexcept {
  float ss = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  ss /= static_cast<float>(n);
  ss += eps;
  const float scale = 1.0f / std::sqrt(ss);
  for (std::int64_t i = 0; i < n; ++i) out[i] = weight[i] * (scale * x[i]);
}

/// out[i] = (x[i] - mean) / sqrt(var + eps) * weight[i] + bias[i] (bias may be null).
/// `out` may alias `x`. Mean and variance are accumulated in double: this runs once per token
/// and row, and GPT-2's activations have a large mean that float cancellation would amplify.
inline void layernorm(float* out, const float* x, const float* weight, const float* bias, std::int64_t n,
                      float eps) noexcept {
  double mean = 0.0;
  for (std::int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (std::int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(n);
  const float m = static_cast<float>(mean);
  const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
  for (std::int64_t i = 0; i < n; ++i) out[i] = (x[i] - m) * inv * weight[i] + (bias ? bias[i] : 0.0f);
}

}  // namespace tinfer::kernels
