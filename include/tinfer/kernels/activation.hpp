// tinfer/kernels/activation.hpp: elementwise activations and residual adds. SwiGLU and GELU run
// on the SIMD versions the kernel table holds (kernels/scalar/activation.hpp defines the order of
// operations; every ISA gives the same bits, so results do not depend on the machine's ISA or on
// how the pool splits the elements).
#pragma once

#include <cstdint>

#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/dispatch.hpp"

namespace tinfer::kernels {

/// SwiGLU gate: gate[i] = silu(gate[i]) * up[i], silu(x) = x * sigmoid(x).
inline void swiglu_inplace(float* gate, const float* up, std::int64_t n, const KernelTable& k = kernel_table()) noexcept {
  k.swiglu(gate, up, n);
}

/// GELU, tanh approximation as GPT-2 defines it:
/// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
inline void gelu_tanh_inplace(float* x, std::int64_t n, const KernelTable& k = kernel_table()) noexcept { k.gelu_tanh(x, n); }

/// The same, with the elements split across `pool` (nullptr: this thread). Each element depends
/// on itself alone, so the split changes no bit; prompts make these large (tokens x hidden).
inline void swiglu_inplace(float* gate, const float* up, std::int64_t n, ThreadPool* pool) {
  const KernelTable& k = kernel_table();
  if (pool == nullptr || n < 16384) return k.swiglu(gate, up, n);
  pool->parallel_for(n, [&](std::int64_t i0, std::int64_t i1) { k.swiglu(gate + i0, up + i0, i1 - i0); }, 8192);
}
inline void gelu_tanh_inplace(float* x, std::int64_t n, ThreadPool* pool) {
  const KernelTable& k = kernel_table();
  if (pool == nullptr || n < 16384) return k.gelu_tanh(x, n);
  pool->parallel_for(n, [&](std::int64_t i0, std::int64_t i1) { k.gelu_tanh(x + i0, i1 - i0); }, 8192);
}

/// x[i] += y[i].
inline void add_inplace(float* x, const float* y, std::int64_t n) noexcept {
  for (std::int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace tinfer::kernels
