// tinfer/kernels/norm.hpp: RMSNorm (Llama family) and LayerNorm (GPT-2 family), through the
// kernel table's SIMD versions (kernels/scalar/norm.hpp defines the order of operations; every
// ISA gives the same bits).
#pragma once

#include <cstdint>

#include "tinfer/kernels/dispatch.hpp"

namespace tinfer::kernels {

/// out[i] = weight[i] * x[i] / sqrt(mean(x^2) + eps). `out` may alias `x`.
inline void rmsnorm(float* out, const float* x, const float* weight, std::int64_t n, float eps,
                    const KernelTable& k = kernel_table()) noexcept {
  k.rmsnorm(out, x, weight, n, eps);
}

/// out[i] = (x[i] - mean) / sqrt(var + eps) * weight[i] + bias[i] (bias may be null).
/// `out` may alias `x`. Mean and variance are accumulated in double: this runs once per token
/// and row, and GPT-2's activations have a large mean that float cancellation would amplify.
inline void layernorm(float* out, const float* x, const float* weight, const float* bias, std::int64_t n, float eps,
                      const KernelTable& k = kernel_table()) noexcept {
  k.layernorm(out, x, weight, bias, n, eps);
}

}  // namespace tinfer::kernels
