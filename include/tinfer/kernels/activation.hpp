// tinfer/kernels/activation.hpp: elementwise activations and residual adds.
#pragma once

#include <cmath>
#include <cstdint>

#include "tinfer/core/thread_pool.hpp"

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

/// The same, with the elements split across `pool` (nullptr: this thread). Each element depends
/// on itself alone, so the split changes no bit; prompts make these large (tokens x hidden).
inline void swiglu_inplace(float* gate, const float* up, std::int64_t n, ThreadPool* pool) {
  if (pool == nullptr || n < 8192) return swiglu_inplace(gate, up, n);
  pool->parallel_for(n, [&](std::int64_t i0, std::int64_t i1) { swiglu_inplace(gate + i0, up + i0, i1 - i0); }, 4096);
}
inline void gelu_tanh_inplace(float* x, std::int64_t n, ThreadPool* pool) {
  if (pool == nullptr || n < 8192) return gelu_tanh_inplace(x, n);
  pool->parallel_for(n, [&](std::int64_t i0, std::int64_t i1) { gelu_tanh_inplace(x + i0, i1 - i0); }, 4096);
}

/// x[i] += y[i].
inline void add_inplace(float* x, const float* y, std::int64_t n) noexcept {
  for (std::int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace tinfer::kernels
