// f16/bf16 conversions against independent references: exact arithmetic in double for every
// one of the 65,536 codes of each type, and the CPU's own F16C conversion where available.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include <immintrin.h>

#include "tinfer/core/float16.hpp"

namespace {

using tinfer::bf16;
using tinfer::f16;

float bits_to_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::uint32_t float_to_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// The value of a binary16 code from its definition: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m.
double f16_reference_value(std::uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(m, -24);
  else if (e == 31) v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else v = std::ldexp(1024 + m, e - 25);
  return s ? -v : v;
}

// Reference rounding of a finite double to binary16 by search: the nearest code, ties to the
// even code, values at or beyond 65520 to infinity.
std::uint16_t f16_reference_round(double x) {
  const std::uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(x);
  if (a >= 65520.0) return sign | 0x7c00;
  // Codes of non-negative finite halves are monotonic in value: binary search.
  int lo = 0, hi = 0x7bff;
  while (lo < hi) {  // smallest code with value >= a
    const int mid = (lo + hi) / 2;
    if (f16_reference_value(static_cast<std::uint16_t>(mid)) >= a) hi = mid;
    else lo = mid + 1;
  }
  int best = lo;
  if (lo > 0) {
    const double up = f16_reference_value(static_cast<std::uint16_t>(lo)) - a;
    const double down = a - f16_reference_value(static_cast<std::uint16_t>(lo - 1));
    if (down < up || (down == up && ((lo - 1) & 1) == 0)) best = lo - 1;
  }
  return static_cast<std::uint16_t>(sign | best);
}

__attribute__((target("f16c"))) std::uint16_t f16c_convert(float x) {
  return static_cast<std::uint16_t>(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
}
bool have_f16c() { return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c"); }

TEST(Float16, EveryCodeWidensExactly) {
  for (std::uint32_t code = 0; code < 65536; ++code) {
    const auto h = static_cast<std::uint16_t>(code);
    const float got = f16::to_float(h);
    const double want = f16_reference_value(h);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << "code " << code;
      // payload kept in the top mantissa bits
      ASSERT_EQ((float_to_bits(got) >> 13) & 0x3ff, code & 0x3ffu) << "code " << code;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << "code " << code;
      ASSERT_EQ(std::signbit(got), (code & 0x8000) != 0) << "code " << code;
    }
  }
}

TEST(Float16, EveryCodeRoundTrips) {
  for (std::uint32_t code = 0; code < 65536; ++code) {
    const auto h = static_cast<std::uint16_t>(code);
    const float f = f16::to_float(h);
    if (std::isnan(f)) {
      const std::uint16_t back = f16::from_float(f);
      ASSERT_EQ(back & 0x7c00, 0x7c00);
      ASSERT_NE(back & 0x3ff, 0) << "NaN must stay NaN, code " << code;
    } else {
      ASSERT_EQ(f16::from_float(f), h) << "code " << code;
    }
  }
}

// Every midpoint between adjacent halves (ties), and the floats just below and above it.
TEST(Float16, RoundsNearestEvenAtEveryMidpoint) {
  for (std::uint32_t code = 0; code < 0x7c00; ++code) {
    for (std::uint16_t sign : {0, 0x8000}) {
      const double lo = f16_reference_value(static_cast<std::uint16_t>(code));
      const double hi = code + 1 < 0x7c00 ? f16_reference_value(static_cast<std::uint16_t>(code + 1)) : 65536.0;
      const float mid = static_cast<float>((lo + hi) / 2);  // exact: halves have 11 significant bits
      ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
      for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)}) {
        const float sx = sign ? -x : x;
        ASSERT_EQ(f16::from_float(sx), f16_reference_round(sx)) << "x=" << sx;
        if (have_f16c()) {
          ASSERT_EQ(f16::from_float(sx), f16c_convert(sx)) << "x=" << sx;
        }
      }
    }
  }
}

TEST(Float16, SpecialValues) {
  EXPECT_EQ(f16::from_float(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(f16::from_float(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(f16::from_float(1e6f), 0x7c00);
  EXPECT_EQ(f16::from_float(65504.0f), 0x7bff);
  EXPECT_EQ(f16::from_float(65519.996f), 0x7bff);
  EXPECT_EQ(f16::from_float(65520.0f), 0x7c00);
  EXPECT_EQ(f16::from_float(-0.0f), 0x8000);
  EXPECT_EQ(f16::from_float(1e-10f), 0x0000);  // underflows to zero
  EXPECT_EQ(f16::from_float(0x1p-24f), 0x0001);
  EXPECT_EQ(f16::from_float(0x1p-25f), 0x0000);  // tie with zero goes to even (zero)
  EXPECT_EQ(f16::from_float(0x1.8p-25f), 0x0001);
  const std::uint16_t nan = f16::from_float(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x3ff, 0);
  // a NaN whose payload lives only in the low bits must not become infinity
  const std::uint16_t low_nan = f16::from_float(bits_to_float(0x7f800001u));
  EXPECT_NE(low_nan & 0x3ff, 0);
}

TEST(Float16, RandomFloatsMatchF16C) {
  if (!have_f16c()) GTEST_SKIP() << "CPU has no F16C to compare with";
  std::mt19937 rng(1234);
  for (int i = 0; i < 2'000'000; ++i) {
    const float x = bits_to_float(static_cast<std::uint32_t>(rng()));
    const std::uint16_t got = f16::from_float(x), want = f16c_convert(x);
    if (std::isnan(x)) {
      ASSERT_TRUE((got & 0x7c00) == 0x7c00 && (got & 0x3ff) != 0);
    } else {
      ASSERT_EQ(got, want) << "bits " << std::hex << float_to_bits(x);
    }
  }
}

// bf16: widening is exact by definition (top 16 bits of a float). Rounding is checked against
// double arithmetic: the nearest of the two neighbouring bf16 values, ties to even.
std::uint16_t bf16_reference_round(float x) {
  const std::uint32_t u = float_to_bits(x);
  const std::uint16_t down = static_cast<std::uint16_t>(u >> 16);
  const std::uint16_t up = static_cast<std::uint16_t>(down + 1);  // next magnitude (may become Inf)
  const double a = std::fabs(static_cast<double>(x));
  const double vd = std::fabs(static_cast<double>(bf16::to_float(down)));
  const double vu_code_exp = ((up & 0x7f80) == 0x7f80) ? std::ldexp(1.0, 128) : std::fabs(static_cast<double>(bf16::to_float(up)));
  const double dd = a - vd, du = vu_code_exp - a;
  if (dd < du) return down;
  if (du < dd) return up;
  return (down & 1) ? up : down;
}

TEST(BFloat16, EveryCodeWidensAndRoundTrips) {
  for (std::uint32_t code = 0; code < 65536; ++code) {
    const auto h = static_cast<std::uint16_t>(code);
    const float f = bf16::to_float(h);
    ASSERT_EQ(float_to_bits(f), code << 16);
    if (std::isnan(f)) {
      const std::uint16_t back = bf16::from_float(f);
      ASSERT_TRUE((back & 0x7f80) == 0x7f80 && (back & 0x7f) != 0) << "code " << code;
    } else {
      ASSERT_EQ(bf16::from_float(f), h) << "code " << code;
    }
  }
}

TEST(BFloat16, RoundsNearestEvenAroundEveryCode) {
  // For every finite code: the exact midpoint to the next code and the floats beside it.
  for (std::uint32_t code = 0; code < 65536; ++code) {
    if ((code & 0x7f80) == 0x7f80) continue;  // Inf/NaN
    const std::uint32_t base = code << 16;
    for (std::uint32_t low : {0x7fffu, 0x8000u, 0x8001u, 0x0001u, 0xffffu}) {
      const float x = bits_to_float(base | low);
      ASSERT_EQ(bf16::from_float(x), bf16_reference_round(x)) << std::hex << (base | low);
    }
  }
  EXPECT_EQ(bf16::from_float(bits_to_float(0x7f7fffffu)), 0x7f80);  // max float rounds to Inf
  EXPECT_EQ(bf16::from_float(bits_to_float(0x00000001u)), 0x0000);  // smallest subnormal
  EXPECT_EQ(bf16::from_float(bits_to_float(0x00008000u)), 0x0000);  // tie to even (zero)
  EXPECT_EQ(bf16::from_float(bits_to_float(0x00018000u)), 0x0002);  // tie to even (up)
  const std::uint16_t nan = bf16::from_float(bits_to_float(0x7f800001u));  // signalling NaN
  EXPECT_TRUE((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0);
}

}  // namespace
