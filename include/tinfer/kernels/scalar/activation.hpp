// tinfer/kernels/scalar/activation.hpp: the elementwise activations SiLU-gate (SwiGLU) and GELU
// (tanh form) on an exp of our own, in the exact order of IEEE operations the AVX2 and AVX-512
// versions (kernels/{avx2,avx512}/activation.hpp) perform lane by lane, so every ISA gives the
// same bits.
//
// exp(x): x clamped to [-87.33654, 88.3] (a NaN passes through), k = nearest integer to
// x log2(e), r = x - k ln2 in two fma steps (Cody and Waite's split of ln2), e^r by Cephes'
// degree-7 form 1 + r + r^2 P(r) with fma, times 2^k built from its exponent bits. Relative error
// within 2e-7 of exp over the clamped range (tests/kernels/test_activation_simd.cpp).
//
// Both activations are x * sigmoid(y) = x / (1 + exp(-y)):
//   SwiGLU: gate = (g / (1 + exp(-g))) * up;
//   GELU:   0.5 v (1 + tanh(c (v + 0.044715 v^3))) = v / (1 + exp(-2 c (v + 0.044715 v^3))),
//           c = sqrt(2 / pi), computed as t = (0.044715 v) v, u = fma(t, v, v), y = (-2c) u.
// (1 + tanh(z) = 2 sigmoid(2z): no cancellation for negative z, unlike 1 + tanh.)
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace tinfer::kernels {

namespace act_consts {
inline constexpr float kExpLo = -87.33654f;  // exp(kExpLo) ~ 2^-126: 2^k stays a normal float
inline constexpr float kExpHi = 88.3f;       // k <= 127
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;     // ln2 = kLn2Hi + kLn2Lo, kLn2Hi exact in 9 bits
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f;
inline constexpr float kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
inline constexpr float kGeluCubic = 0.044715f;
inline constexpr float kGeluNeg2C = -1.5957691216057308f;  // -2 sqrt(2 / pi)
}  // namespace act_consts

namespace scalar {

/// exp(x) by the steps documented above (the SIMD versions' twin).
inline float exp_approx(float x) noexcept {
  using namespace act_consts;
  x = kExpLo > x ? kExpLo : x;  // the operand order of maxps / minps: a NaN passes through
  x = kExpHi < x ? kExpHi : x;
  const float k = std::nearbyint(x * kLog2e);
  float r = std::fma(k, -kLn2Hi, x);
  r = std::fma(k, -kLn2Lo, r);
  const float z = r * r;
  float y = std::fma(kP0, r, kP1);
  y = std::fma(y, r, kP2);
  y = std::fma(y, r, kP3);
  y = std::fma(y, r, kP4);
  y = std::fma(y, r, kP5);
  y = std::fma(y, z, r);
  y = y + 1.0f;
  const std::int32_t ki = k == k ? static_cast<std::int32_t>(k) : 0;  // a NaN stays NaN through y
  const std::uint32_t bits = static_cast<std::uint32_t>(ki + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return y * scale;
}

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
