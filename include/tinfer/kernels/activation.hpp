// tinfer/kernels/activation.hpp: elementwise activations and residual adds.
#pragma once

#include <cmath>
#include <cstdint>

namespace tinfer::kernels {

/// SwiGLU gate: gate[i] = silu(gate[i]) * up[i], silu(x) = x * sigmoid(x).
inline void swiglu_inplace(float* gate, const float* up, std::int64_t n) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g * (1.0f / (1.0f + std::exp(-g))) * up[i];
  }
}

/// GELU, tanh approximation as GPT-2 defines it:
/// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
inline void gelu_tanh_inplace(float* x, std::int64_t n) noexcept {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

/// x[i] += y[i].
inline void add_inplace(float* x, const float* y, std::int64_t n) noexcept {
  for (std::int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace tinfer::kernels
