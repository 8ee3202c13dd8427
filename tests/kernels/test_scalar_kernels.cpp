// Scalar reference kernels against double-precision evaluations of their definitions, over
// sizes that exercise every tail (0..40, odd sizes) and misaligned pointers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/activation.hpp"
#include "tinfer/kernels/matvec.hpp"
#include "tinfer/kernels/norm.hpp"
#include "tinfer/kernels/rope.hpp"
#include "tinfer/kernels/softmax.hpp"

namespace {

namespace k = tinfer::kernels;

std::vector<float> random_vec(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<std::int64_t> sizes() {
  std::vector<std::int64_t> s;
  for (int n = 0; n <= 40; ++n) s.push_back(n);
  for (int n : {63, 64, 65, 127, 255, 256, 257, 1023, 4099}) s.push_back(n);
  return s;
}

// |sum a_i b_i - fl(sum)| <= n * eps * sum |a_i b_i| (a standard bound for any summation order).
TEST(ScalarKernels, DotWithinDerivedBound) {
  for (auto n : sizes()) {
    for (int misalign = 0; misalign < 3; ++misalign) {
      auto a = random_vec(static_cast<std::size_t>(n + 3), 1), b = random_vec(static_cast<std::size_t>(n + 3), 2);
      const float* pa = a.data() + misalign;
      const float* pb = b.data() + (2 - misalign);
      double exact = 0, mag = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        exact += static_cast<double>(pa[i]) * pb[i];
        mag += std::fabs(static_cast<double>(pa[i]) * pb[i]);
      }
      const double tol = static_cast<double>(n + 1) * 0x1p-24 * mag + 1e-30;
      EXPECT_LE(std::fabs(k::dot_f32(pa, pb, n) - exact), tol) << "n=" << n;
    }
  }
}

TEST(ScalarKernels, MatvecMatchesDotPerRowForAnyThreadCount) {
  const std::int64_t rows = 1000, cols = 300;
  const auto w = random_vec(static_cast<std::size_t>(rows * cols), 3), x = random_vec(static_cast<std::size_t>(cols), 4);
  std::vector<float> y1(rows);
  k::matvec_f32(w.data(), x.data(), y1.data(), rows, cols, nullptr);
  for (std::int64_t r = 0; r < rows; ++r) ASSERT_EQ(y1[static_cast<std::size_t>(r)], k::dot_f32(w.data() + r * cols, x.data(), cols));
  for (int threads : {2, 3, 4}) {
    tinfer::ThreadPool pool(threads);
    ASSERT_GT(pool.chunk_count(rows, 32768 / cols), 1) << "the matrix must be big enough to be split";
    std::vector<float> y(rows);
    k::matvec_f32(w.data(), x.data(), y.data(), rows, cols, &pool);
    EXPECT_EQ(y, y1) << threads << " threads";
  }
}

TEST(ScalarKernels, RmsNormMatchesDouble) {
  for (auto n : sizes()) {
    if (n == 0) continue;
    const auto x = random_vec(static_cast<std::size_t>(n), 5, 3.0f), w = random_vec(static_cast<std::size_t>(n), 6);
    std::vector<float> out(static_cast<std::size_t>(n));
    k::rmsnorm(out.data(), x.data(), w.data(), n, 1e-5f);
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
    for (std::int64_t i = 0; i < n; ++i) {
      const double want = w[static_cast<std::size_t>(i)] * scale * x[static_cast<std::size_t>(i)];
      EXPECT_NEAR(out[static_cast<std::size_t>(i)], want, 1e-5 * (std::fabs(want) + 1e-3) * static_cast<double>(n)) << n;
    }
  }
}

TEST(ScalarKernels, LayerNormMatchesDouble) {
  for (auto n : sizes()) {
    if (n == 0) continue;
    auto x = random_vec(static_cast<std::size_t>(n), 7, 2.0f);
    for (auto& v : x) v += 100.0f;  // a large mean: cancellation must not hurt
    const auto w = random_vec(static_cast<std::size_t>(n), 8), b = random_vec(static_cast<std::size_t>(n), 9);
    std::vector<float> out(static_cast<std::size_t>(n));
    k::layernorm(out.data(), x.data(), w.data(), b.data(), n, 1e-5f);
    double mean = 0, var = 0;
    for (float v : x) mean += v;
    mean /= static_cast<double>(n);
    for (float v : x) var += (v - mean) * (v - mean);
    var /= static_cast<double>(n);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      const double want = (x[u] - mean) / std::sqrt(var + 1e-5) * w[u] + b[u];
      EXPECT_NEAR(out[u], want, 2e-4 * (std::fabs(want) + 1)) << n;
    }
  }
}

TEST(ScalarKernels, SoftmaxMatchesDouble) {
  for (auto n : sizes()) {
    if (n == 0) continue;
    auto x = random_vec(static_cast<std::size_t>(n), 10, 5.0f);
    const auto orig = x;
    k::softmax_inplace(x.data(), n);
    double mx = *std::max_element(orig.begin(), orig.end()), sum = 0;
    for (float v : orig) sum += std::exp(v - mx);
    double total = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto u = static_cast<std::size_t>(i);
      EXPECT_NEAR(x[u], std::exp(orig[u] - mx) / sum, 1e-6 + 1e-5 * x[u]);
      total += x[u];
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
  // Huge logits must not overflow.
  std::vector<float> big = {1e30f, 1e30f, -1e30f};
  k::softmax_inplace(big.data(), 3);
  EXPECT_FLOAT_EQ(big[0], 0.5f);
  EXPECT_FLOAT_EQ(big[2], 0.0f);
}

TEST(ScalarKernels, ActivationsMatchDefinitions) {
  auto g = random_vec(257, 11, 4.0f), u = random_vec(257, 12);
  const auto g0 = g;
  k::swiglu_inplace(g.data(), u.data(), 257);
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double want = g0[i] / (1.0 + std::exp(-static_cast<double>(g0[i]))) * u[i];
    EXPECT_NEAR(g[i], want, 1e-6 * (1 + std::fabs(want)));
  }
  auto x = random_vec(257, 13, 3.0f);
  const auto x0 = x;
  k::gelu_tanh_inplace(x.data(), 257);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double v = x0[i];
    const double want = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    EXPECT_NEAR(x[i], want, 1e-6 * (1 + std::fabs(want)));
  }
}

TEST(ScalarKernels, RopeRotatesPairsByPositionAngle) {
  const int heads = 3, hd = 16;
  const auto x0 = random_vec(heads * hd, 14);
  for (int pos : {0, 1, 7, 511}) {
    auto a = x0;
    k::rope_inplace(a.data(), heads, hd, hd, pos, 10000.0f, k::RopeLayout::Interleaved);
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < hd / 2; ++i) {
        const double ang = pos * std::pow(10000.0, -2.0 * i / hd);
        const double v0 = x0[static_cast<std::size_t>(h * hd + 2 * i)], v1 = x0[static_cast<std::size_t>(h * hd + 2 * i + 1)];
        EXPECT_NEAR(a[static_cast<std::size_t>(h * hd + 2 * i)], v0 * std::cos(ang) - v1 * std::sin(ang), 2e-4);
        EXPECT_NEAR(a[static_cast<std::size_t>(h * hd + 2 * i + 1)], v0 * std::sin(ang) + v1 * std::cos(ang), 2e-4);
      }
    }
    // Rotate-half on the de-interleaved vector gives the same rotation, permuted back.
    std::vector<float> b(x0.size());
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        b[static_cast<std::size_t>(h * hd + i)] = x0[static_cast<std::size_t>(h * hd + 2 * i)];
        b[static_cast<std::size_t>(h * hd + hd / 2 + i)] = x0[static_cast<std::size_t>(h * hd + 2 * i + 1)];
      }
    k::rope_inplace(b.data(), heads, hd, hd, pos, 10000.0f, k::RopeLayout::RotateHalf);
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        EXPECT_EQ(b[static_cast<std::size_t>(h * hd + i)], a[static_cast<std::size_t>(h * hd + 2 * i)]);
        EXPECT_EQ(b[static_cast<std::size_t>(h * hd + hd / 2 + i)], a[static_cast<std::size_t>(h * hd + 2 * i + 1)]);
      }
    if (pos == 0) {
      EXPECT_EQ(a, x0);
    }
  }
}

}  // namespace
