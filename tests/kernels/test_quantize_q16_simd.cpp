// The AVX2 and AVX-512 16-bit activation quantizers (kernels/{avx2,avx512}/quantize_activations.hpp)
// against the scalar one, byte for byte: both do the same IEEE operations, so scale, sum and quants must
// agree exactly, including for zeros, -0.0, halfway values, huge and tiny magnitudes, infinities
// and NaN (skipped in the maximum by both).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tinfer/kernels/dispatch.hpp"

namespace {

namespace k = tinfer::kernels;

class QuantizeQ16Simd : public ::testing::TestWithParam<k::Isa> {};

TEST_P(QuantizeQ16Simd, EqualsScalarByteForByte) {
  if (k::max_supported_isa() < GetParam()) GTEST_SKIP() << "this CPU lacks " << k::isa_name(GetParam());
  const auto& tab = k::kernel_table(GetParam(), k::Activations::Q16);
  ASSERT_NE(tab.quantize_q16x32, nullptr);
  ASSERT_NE(tab.quantize_q16xK, nullptr);
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0, 1);
  std::uniform_int_distribution<int> pick(0, 11);
  const float specials[] = {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, 1e30f, -1e-30f, 1e-40f,
                            std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(), 32767.0f, -65534.5f};
  for (int trial = 0; trial < 300; ++trial) {
    const std::int64_t n = 32 * (1 + trial % 9);
    std::vector<float> x(static_cast<std::size_t>(n));
    const float scale = std::ldexp(1.0f, trial % 40 - 20);
    for (auto& v : x) v = scale * nd(rng);
    if (trial % 3 == 0) for (int i = 0; i < 5; ++i) x[static_cast<std::size_t>(rng() % n)] = specials[pick(rng)];
    if (trial % 7 == 0) std::fill(x.begin(), x.begin() + 32, 0.0f);
    // Values that land exactly halfway between quants after scaling.
    if (trial % 5 == 0) for (int i = 0; i < 32; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i - 16) + 0.5f;
    for (k::ActFormat f : {k::ActFormat::Q16_32, k::ActFormat::Q16_K}) {
      const std::int64_t m = f == k::ActFormat::Q16_K ? n / 256 * 256 : n;
      if (m == 0) continue;
      const std::size_t bytes = k::activation_bytes(f, m);
      std::vector<std::byte> a(bytes + 3), b(bytes + 3);
      k::quantize_activations(f, x.data(), m, a.data() + 3);  // misaligned destination
      (f == k::ActFormat::Q16_K ? tab.quantize_q16xK : tab.quantize_q16x32)(x.data(), m, b.data() + 3);
      ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << "trial " << trial << " n " << m << " K " << (f == k::ActFormat::Q16_K);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, QuantizeQ16Simd, ::testing::Values(k::Isa::Avx2, k::Isa::Avx512),
                         [](const auto& info) { return std::string(k::isa_name(info.param)); });

}  // namespace
