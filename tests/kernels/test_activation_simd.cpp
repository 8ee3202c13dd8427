// SwiGLU and GELU (kernels/scalar/activation.hpp and its AVX2 / AVX-512 versions).
//
// 1. exp_approx (kernels/scalar/exp.hpp) against exp in double over the clamped range: relative error <= 2e-7 (the
//    polynomial's error is ~1 ulp, the range reduction's a fraction of one; 2e-7 ~ 1.7 ulp).
// 2. SwiGLU and GELU against their definitions in double: each is one exp, one add, one
//    division and one multiply away, so relative error <= 6e-7 plus an absolute 1e-30 near
//    zero; GELU's exp argument is itself rounded (relative error ~3u), which adds ~|y| 3u.
// 3. Every SIMD path the machine has equals the scalar twin bit for bit, for lengths 0..70
//    (tails of every size), misaligned pointers, and special inputs (0, -0, +-inf, NaN, huge,
//    subnormal): NaN stays NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "tinfer/kernels/activation.hpp"
#include "tinfer/kernels/scalar/exp.hpp"

namespace {

namespace k = tinfer::kernels;

std::vector<float> inputs(std::size_t n, unsigned seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), 1e30f, -1e30f, 100.0f, -100.0f, 88.0f, -88.0f,
                            1e-40f, -1e-40f, 87.5f, -87.5f};
  for (std::size_t i = 0; i < std::size(specials) && i * 3 < n; ++i) v[i * 3] = specials[i];
  return v;
}

bool same_bits(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, 4) == 0;
}

TEST(Activation, ExpApproxIsWithinTwoUlpOfExp) {
  double worst = 0;
  for (float x = -86.9f; x < 88.0f; x += 0.000731f * (1.0f + std::fabs(x))) {
    const double want = std::exp(static_cast<double>(x));
    const double rel = std::fabs(k::scalar::exp_approx(x) - want) / want;
    worst = std::max(worst, rel);
    ASSERT_LE(rel, 2e-7) << "x = " << x;
  }
  std::printf("[ measure  ] exp_approx worst relative error %.3g\n", worst);
  EXPECT_EQ(k::scalar::exp_approx(0.0f), 1.0f);
  EXPECT_LT(k::scalar::exp_approx(std::numeric_limits<float>::quiet_NaN()), 1e-37f);  // as maxps(NaN, -87) gives -87
  EXPECT_GT(k::scalar::exp_approx(1000.0f), 1e38f);  // clamped, finite
  EXPECT_LT(k::scalar::exp_approx(-1000.0f), 1e-37f);
}

TEST(Activation, SwigluAndGeluMatchTheirDefinitions) {
  for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(k::max_supported_isa())) continue;
    const auto& tab = k::kernel_table(isa);
    std::vector<float> g = inputs(4099, 1, 4.0f), u = inputs(4099, 2, 1.0f);
    for (std::size_t i = 0; i < g.size(); i += 3) g[i] = u[i] = 0.5f;  // no specials here
    const auto g0 = g;
    k::swiglu_inplace(g.data(), u.data(), static_cast<std::int64_t>(g.size()), tab);
    for (std::size_t i = 0; i < g.size(); ++i) {
      const double want = g0[i] / (1.0 + std::exp(-static_cast<double>(g0[i]))) * u[i];
      ASSERT_NEAR(g[i], want, 6e-7 * std::fabs(want) + 1e-30) << k::isa_name(isa) << " g = " << g0[i];
    }
    std::vector<float> x = inputs(4099, 3, 3.0f);
    for (std::size_t i = 0; i < x.size(); i += 3) x[i] = -1.5f;
    const auto x0 = x;
    k::gelu_tanh_inplace(x.data(), static_cast<std::int64_t>(x.size()), tab);
    for (std::size_t i = 0; i < x.size(); ++i) {
      // 0.5 v (1 + tanh z) = v / (1 + exp(-2z)): the second form has no cancellation (in
      // double, 1 + tanh(z) for z ~ -13 keeps only ~5 digits).
      const double v = x0[i];
      const double y = -2 * std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v);
      const double want = v / (1 + std::exp(y));
      // The float argument y carries a few roundings relative to |y|, which exp turns into a
      // relative error of ~|y| u.
      ASSERT_NEAR(x[i], want, (6e-7 + 1.8e-7 * std::fabs(y)) * std::fabs(want) + 1e-30) << k::isa_name(isa) << " v = " << v;
    }
  }
}

TEST(Activation, EverySimdPathEqualsScalarBitForBit) {
  const auto& scalar = k::kernel_table(k::Isa::Scalar);
  for (k::Isa isa : {k::Isa::Avx2, k::Isa::Avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(k::max_supported_isa())) continue;
    const auto& tab = k::kernel_table(isa);
    for (std::int64_t n = 0; n <= 70; ++n) {
      for (std::int64_t off : {0, 1, 3}) {
        const auto g = inputs(static_cast<std::size_t>(n + off + 1), static_cast<unsigned>(n), 10.0f);
        const auto u = inputs(static_cast<std::size_t>(n + off + 1), static_cast<unsigned>(n + 100), 2.0f);
        auto gs = g, gv = g;
        k::swiglu_inplace(gs.data() + off, u.data() + off, n, scalar);
        k::swiglu_inplace(gv.data() + off, u.data() + off, n, tab);
        auto xs = g, xv = g;
        k::gelu_tanh_inplace(xs.data() + off, n, scalar);
        k::gelu_tanh_inplace(xv.data() + off, n, tab);
        for (std::size_t i = 0; i < g.size(); ++i) {
          ASSERT_TRUE(same_bits(gs[i], gv[i])) << k::isa_name(isa) << " swiglu n " << n << " i " << i << " g " << g[i];
          ASSERT_TRUE(same_bits(xs[i], xv[i])) << k::isa_name(isa) << " gelu n " << n << " i " << i << " x " << g[i];
        }
        // Nothing past the end is touched.
        ASSERT_TRUE(same_bits(gv.back(), g.back()));
        ASSERT_TRUE(same_bits(xv.back(), g.back()));
      }
    }
  }
}

}  // namespace
