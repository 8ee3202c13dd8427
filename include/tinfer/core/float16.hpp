// tinfer/core/float16.hpp: the 16-bit floating-point element types f16 (IEEE 754 binary16) and
// bf16 (bfloat16), with conversions from float that round to nearest, ties to even, and keep
// NaN, infinities and subnormals.
//
// Conversions are written with integer bit operations so they are exact on any x86-64 CPU with
// no -march flag; vectorized conversions live in the kernels.
#pragma once

#include <bit>
#include <cstdint>

namespace tinfer {

namespace detail {
inline float f32_from_bits(std::uint32_t u) noexcept { return std::bit_cast<float>(u); }
inline std::uint32_t f32_bits(float f) noexcept { return std::bit_cast<std::uint32_t>(f); }
}  // namespace detail

/// IEEE 754 half precision: 1 sign, 5 exponent, 10 mantissa bits.
struct f16 {
  std::uint16_t bits = 0;

  f16() = default;
  explicit f16(float x) noexcept : bits(from_float(x)) {}
  static constexpr f16 from_bits(std::uint16_t b) noexcept {
    f16 h;
    h.bits = b;
    return h;
  }
  explicit operator float() const noexcept { return to_float(bits); }
  float to_float() const noexcept { return to_float(bits); }

  /// Exact widening of a half code to float.
  static float to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exp = (h >> 10) & 0x1fu;
    const std::uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
      // Zero or subnormal: mant * 2^-24 is exact in float.
      const float v = static_cast<float>(mant) * 0x1p-24f;
      return detail::f32_from_bits(sign | detail::f32_bits(v));
    }
    if (exp == 31) return detail::f32_from_bits(sign | 0x7f800000u | (mant << 13));
    return detail::f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
  }

  /// Rounds a float to the nearest half, ties to even; overflow gives infinity; NaN stays NaN
  /// (quiet, keeping the top payload bits).
  static std::uint16_t from_float(float x) noexcept {
    std::uint32_t f = detail::f32_bits(x);
    const std::uint32_t sign = (f >> 16) & 0x8000u;
    f &= 0x7fffffffu;
    if (f >= 0x7f800000u) {  // Inf or NaN
      return static_cast<std::uint16_t>(sign | (f > 0x7f800000u ? 0x7e00u | ((f >> 13) & 0x3ffu) : 0x7c00u));
    }
    if (f >= 0x47800000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65536: Inf
    if (f < 0x38800000u) {
      // Result is subnormal or zero. Adding 0.5f places the half's unit (2^-24) at the float's
      // last mantissa bit, so the FPU's own round-to-nearest-even does the rounding.
      const float v = detail::f32_from_bits(f) + 0.5f;
      return static_cast<std::uint16_t>(sign | (detail::f32_bits(v) - 0x3f000000u));
    }
    // Normal: rebias the exponent (-112 << 23) and round to nearest even on the 13 dropped bits;
    // a carry out of the mantissa correctly bumps the exponent (up to Inf).
    const std::uint32_t mant_odd = (f >> 13) & 1u;
    f += 0xc8000fffu + mant_odd;
    return static_cast<std::uint16_t>(sign | (f >> 13));
  }
};

/// bfloat16: the top 16 bits of a float (1 sign, 8 exponent, 7 mantissa bits).
struct bf16 {
  std::uint16_t bits = 0;

  bf16() = default;
  explicit bf16(float x) noexcept : bits(from_float(x)) {}
  static constexpr bf16 from_bits(std::uint16_t b) noexcept {
    bf16 h;
    h.bits = b;
    return h;
  }
  explicit operator float() const noexcept { return to_float(bits); }
  float to_float() const noexcept { return to_float(bits); }

  static float to_float(std::uint16_t h) noexcept {
    return detail::f32_from_bits(static_cast<std::uint32_t>(h) << 16);
  }

  /// Rounds to nearest, ties to even; NaN stays NaN (forced quiet so truncation cannot turn a
  /// signalling NaN into infinity). Subnormals round like any other value.
  static std::uint16_t from_float(float x) noexcept {
    const std::uint32_t f = detail::f32_bits(x);
    if ((f & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((f >> 16) | 0x0040u);
    const std::uint32_t rounding = 0x7fffu + ((f >> 16) & 1u);
    return static_cast<std::uint16_t>((f + rounding) >> 16);
  }
};

static_assert(sizeof(f16) == 2 && sizeof(bf16) == 2);

}  // namespace tinfer
