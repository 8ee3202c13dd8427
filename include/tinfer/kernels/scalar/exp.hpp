// tinfer/kernels/scalar/exp.hpp: the float exp every kernel uses (softmax in attention, SiLU,
// GELU), the scalar twin of kernels/{avx2,avx512}/exp.hpp: operation for operation what they
// compute lane by lane, so every ISA gives the same bits.
//
// x is clamped to [-87, 88.3] (a NaN becomes -87, as maxps(x, -87) makes it; so 2^k below stays
// a normal float), k = nearest integer to x log2(e), r = x - k ln2 in two fma steps (Cody and
// Waite's split of ln2), e^r = 1 + r + r^2 P(r) with Cephes' degree-5 P in fma steps, times 2^k
// from its exponent bits. Relative error within 2e-7 of exp over the clamped range
// (tests/kernels/test_activation_simd.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace tinfer::kernels {

namespace exp_consts {
inline constexpr float kLo = -87.0f;
inline constexpr float kHi = 88.3f;  // k <= 127
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;  // ln2 = kLn2Hi + kLn2Lo, kLn2Hi exact in 9 bits
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f;
inline constexpr float kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
}  // namespace exp_consts

namespace scalar {

/// exp(x) by the steps documented above.
inline float exp_approx(float x) noexcept {
  using namespace exp_consts;
  x = x > kLo ? x : kLo;  // maxps(x, lo): a NaN gives lo
  x = x < kHi ? x : kHi;  // minps(x, hi)
  const float n = std::nearbyint(x * kLog2e);  // round half to even, as _MM_FROUND_TO_NEAREST_INT
  float r = std::fma(-n, kLn2Hi, x);
  r = std::fma(-n, kLn2Lo, r);
  float y = kP0;
  y = std::fma(y, r, kP1);
  y = std::fma(y, r, kP2);
  y = std::fma(y, r, kP3);
  y = std::fma(y, r, kP4);
  y = std::fma(y, r, kP5);
  y = std::fma(y, r * r, r + 1.0f);
  const std::uint32_t bits = static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return y * scale;
}

}  // namespace scalar
}  // namespace tinfer::kernels
