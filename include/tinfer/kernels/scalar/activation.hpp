// tinfer/kernels/scalar/activation.hpp: the elementwise activations SiLU-gate (SwiGLU) and GELU
// (tanh form) on kernels/scalar/exp.hpp's exp, in the exact order of IEEE operations the AVX2
// and AVX-512 versions (kernels/{avx2,avx512}/activation.hpp) perform lane by lane, so every ISA
// gives the same bits.
//
// Both activations are x * sigmoid(y) = x / (1 + exp(-y)):
//   SwiGLU: gate = (g / (1 + exp(-g))) * up;
//   GELU:   0.5 v (1 + tanh(c (v + 0.044715 v^3))) = v / (1 + exp(-2 c (v + 0.044715 v^3))),
//           c = sqrt(2 / pi), computed as t = (0.044715 v) v, u = fma(t, v, v), y = (-2c) u.
// (1 + tanh(z) = 2 sigmoid(2z): no cancellation for negative z, unlike 1 + tanh.) A NaN input
// gives NaN.
#pragma once

#include <cmath>
#include <cstdint>

#include "tinfer/kernels/scalar/exp.hpp"

namespace tinfer::kernels {

namespace act_consts {
inline constexpr float kGeluCubic = 0.044715f;
inline constexpr float kGeluNeg2C = -1.5957691216057308f;  // -2 sqrt(2 / pi)
}  // namespace act_consts

namespace scalar {

/// gate[i] = silu(gate[i]) * up[i].
inline void swiglu(float* gate, const float* up, std::int64_t n) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float s = g / (1.0f + exp_approx(-g));
    gate[i] = s * up[i];
  }
}

/// x[i] = gelu_tanh(x[i]).
inline void gelu_tanh(float* x, std::int64_t n) noexcept {
  using namespace act_consts;
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float t = (kGeluCubic * v) * v;
    const float u = std::fma(t, v, v);
    x[i] = v / (1.0f + exp_approx(kGeluNeg2C * u));
  }
}

}  // namespace scalar
}  // namespace tinfer::kernels
