// RMSNorm and LayerNorm (kernels/scalar/norm.hpp and its AVX2 / AVX-512 versions).
//
// 1. Against the definitions in double: RMSNorm's float sum of squares carries a relative error
//    of at most ~(n / 16 + 4) u (16 lanes of n / 16 fmas, then the tree), which the 1/sqrt
//    halves, plus ~3u for the scale and the two products: relative 1e-6 for n <= 4096.
//    LayerNorm sums in double, so only the float steps of the output count: (x - m) loses
//    nothing that matters relative to |x - m| + |m| u, then one product and one fma: absolute
//    error <= 4u (|x - m| + |m|) |inv w| + 2u |b|, the bound the test uses.
// 2. Every SIMD path the machine has equals the scalar twin bit for bit, for n = 1..70 and
//    a few large n, at misaligned addresses, in place and out of place, with and without bias.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "tinfer/kernels/norm.hpp"

namespace {

namespace k = tinfer::kernels;

std::vector<float> values(std::size_t n, unsigned seed, float mean, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(mean, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

TEST(Norm, MatchTheDefinitionsInDouble) {
  const double u = std::ldexp(1.0, -24);
  for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(k::max_supported_isa())) continue;
    const auto& tab = k::kernel_table(isa);
    for (std::int64_t n : {1, 7, 16, 33, 768, 2048, 4096}) {
      const auto x = values(static_cast<std::size_t>(n), static_cast<unsigned>(n), 3.0f, 2.0f);
      const auto w = values(static_cast<std::size_t>(n), 7, 1.0f, 0.5f), b = values(static_cast<std::size_t>(n), 8, 0.0f, 0.3f);
      std::vector<float> out(static_cast<std::size_t>(n));
      k::rmsnorm(out.data(), x.data(), w.data(), n, 1e-5f, tab);
      double ss = 0;
      for (float v : x) ss += static_cast<double>(v) * v;
      const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
      for (std::int64_t i = 0; i < n; ++i) {
        const double want = w[static_cast<std::size_t>(i)] * (scale * x[static_cast<std::size_t>(i)]);
        ASSERT_NEAR(out[static_cast<std::size_t>(i)], want, 1e-6 * std::fabs(want) + 1e-30) << k::isa_name(isa) << " rmsnorm n " << n;
      }
      k::layernorm(out.data(), x.data(), w.data(), b.data(), n, 1e-5f, tab);
      double mean = 0, var = 0;
      for (float v : x) mean += v;
      mean /= static_cast<double>(n);
      for (float v : x) var += (v - mean) * (v - mean);
      var /= static_cast<double>(n);
      const double inv = 1.0 / std::sqrt(var + 1e-5);
      for (std::int64_t i = 0; i < n; ++i) {
        const auto s = static_cast<std::size_t>(i);
        const double want = (x[s] - mean) * inv * w[s] + b[s];
        const double bound = 4 * u * (std::fabs(x[s] - mean) + std::fabs(mean)) * std::fabs(inv * w[s]) + 2 * u * std::fabs(b[s]) + 4 * u * std::fabs(want);
        ASSERT_NEAR(out[s], want, bound) << k::isa_name(isa) << " layernorm n " << n << " i " << i;
      }
    }
  }
}

TEST(Norm, EverySimdPathEqualsScalarBitForBit) {
  const auto& scalar = k::kernel_table(k::Isa::Scalar);
  std::vector<std::int64_t> sizes;
  for (std::int64_t n = 1; n <= 70; ++n) sizes.push_back(n);
  for (std::int64_t n : {255, 768, 2048, 5001}) sizes.push_back(n);
  for (k::Isa isa : {k::Isa::Avx2, k::Isa::Avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(k::max_supported_isa())) continue;
    const auto& tab = k::kernel_table(isa);
    for (std::int64_t n : sizes) {
      const std::int64_t off = n % 3;  // misaligned rows
      const auto x = values(static_cast<std::size_t>(n + off), static_cast<unsigned>(n), n % 2 ? 40.0f : 0.0f, 3.0f);
      const auto w = values(static_cast<std::size_t>(n + off), 11, 1.0f, 0.5f), b = values(static_cast<std::size_t>(n + off), 12, 0.0f, 0.3f);
      for (bool in_place : {false, true}) {
        for (bool with_bias : {false, true}) {
          std::vector<float> os(x), ov(x);  // in place: out = x
          std::vector<float> ys(static_cast<std::size_t>(n + off)), yv(ys.size());
          float* outs = in_place ? os.data() + off : ys.data() + off;
          float* outv = in_place ? ov.data() + off : yv.data() + off;
          const float* bias = with_bias ? b.data() + off : nullptr;
          k::layernorm(outs, in_place ? outs : x.data() + off, w.data() + off, bias, n, 1e-5f, scalar);
          k::layernorm(outv, in_place ? outv : x.data() + off, w.data() + off, bias, n, 1e-5f, tab);
          ASSERT_EQ(0, std::memcmp(outs, outv, static_cast<std::size_t>(n) * sizeof(float))) << k::isa_name(isa) << " layernorm n " << n;
          os = x;
          ov = x;
          k::rmsnorm(outs, in_place ? outs : x.data() + off, w.data() + off, n, 1e-6f, scalar);
          k::rmsnorm(outv, in_place ? outv : x.data() + off, w.data() + off, n, 1e-6f, tab);
          ASSERT_EQ(0, std::memcmp(outs, outv, static_cast<std::size_t>(n) * sizeof(float))) << k::isa_name(isa) << " rmsnorm n " << n;
        }
      }
    }
  }
}

}  // namespace
