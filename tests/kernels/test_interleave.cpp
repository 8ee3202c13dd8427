// Interleaved Q8_0 / Q4_0 / Q4_K / Q6_K weights (kernels/interleave.hpp) and their kernels.
//
// 1. The layout: interleave_rows then copy_row gives every row's file bytes back (any row
//    count, so groups and the rows past the last group), and embedding_row reads rows inside
//    groups as the plain matrix does.
// 2. The scalar twin against an independent reference: the weights the blocks encode (Q4_K:
//    d sc n - dmin m; Q6_K: d sc (q - 32); in double) times the float activations, in double. Quantizing the
//    activations to 16 bits moves x_i by at most amax_b / 65534 (plus float rounding of the
//    scale), and each of the F float steps per block (Q8_0 / Q4_0: 1; Q6_K: 17; Q4_K: 5, where the scale
//    and min terms may cancel) adds at most ~2u relative to its term, so with
//    W_i = |w_i| (Q4_K: |d sc n_i| + |dmin m_i|)
//        |y - ref| <= sum_i W_i amax_b(i) / 65534 (1 + 1e-5) + (F nb + 4) u (sum W_i |x_i| + S).
//    And the layout does not change the result: the interleaved view equals the plain one bit
//    for bit.
// 3. Every SIMD path the machine has equals the scalar twin BIT FOR BIT (the order of float
//    operations is defined once, integer sums are exact), for any batch size 1..19, any row
//    sub-range (starting inside a group too), and row counts that are not multiples of 16.
// 4. matmul equals matvec per row bit for bit, with and without threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/embedding.hpp"
#include "tinfer/kernels/interleave.hpp"
#include "tinfer/quant/quantize.hpp"

namespace {

namespace k = tinfer::kernels;
namespace q = tinfer::quant;
using tinfer::DType;

struct Matrix {
  std::vector<float> f;        // the float values quantized
  std::vector<std::byte> raw;  // row-major blocks (the file layout)
  std::int64_t rows, cols;
  std::size_t rb;
};

Matrix make(DType t, std::int64_t rows, std::int64_t cols, std::mt19937& rng) {
  Matrix m{{}, {}, rows, cols, q::row_bytes(t, cols)};
  std::normal_distribution<float> nd(0, 1);
  m.f.resize(static_cast<std::size_t>(rows * cols));
  for (auto& v : m.f) v = 0.05f * nd(rng);
  // A few rows of extremes: all at the scale bound, and all zero.
  if (rows > 3) {
    for (std::int64_t c = 0; c < cols; ++c) m.f[static_cast<std::size_t>(2 * cols + c)] = (c % 2 ? -1.0f : 1.0f);
    for (std::int64_t c = 0; c < cols; ++c) m.f[static_cast<std::size_t>(3 * cols + c)] = 0.0f;
  }
  m.raw.resize(static_cast<std::size_t>(rows) * m.rb);
  for (std::int64_t r = 0; r < rows; ++r) q::quantize_row(t, m.f.data() + r * cols, m.raw.data() + r * m.rb, cols);
  return m;
}

std::vector<float> activations(std::int64_t n, std::int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(static_cast<std::size_t>(n * cols));
  for (auto& v : x) v = nd(rng);
  if (n > 1) x[static_cast<std::size_t>(cols + 5 % cols)] = 1e4f;  // an outlier: a coarse block
  return x;
}

std::vector<std::byte> quantize_x(DType t, const std::vector<float>& x, std::int64_t n, std::int64_t cols, std::size_t& stride) {
  const k::ActFormat af = k::q16_format(t);
  stride = k::activation_bytes(af, cols) + 96;  // not a multiple of 64: misaligned rows
  std::vector<std::byte> xq(stride * static_cast<std::size_t>(n) + 64);
  for (std::int64_t i = 0; i < n; ++i) k::quantize_activations(af, x.data() + i * cols, cols, xq.data() + 4 + i * stride);
  return xq;
}

/// Values per block (the activations' quantization block too).
std::int64_t block_len(DType t) { return t == DType::Q4_K || t == DType::Q6_K ? 256 : 32; }
/// Column counts for a test: 1..n blocks of t.
std::vector<std::int64_t> col_counts(DType t, std::initializer_list<std::int64_t> blocks) {
  std::vector<std::int64_t> c;
  for (std::int64_t b : blocks) c.push_back(b * block_len(t));
  return c;
}

/// The weights one row encodes, exactly (w), and the magnitude W of the terms that make each.
void exact_weights(DType t, const std::byte* raw, std::int64_t cols, std::vector<double>& w, std::vector<double>& mag) {
  w.assign(static_cast<std::size_t>(cols), 0.0);
  mag.assign(w.size(), 0.0);
  if (t == DType::Q6_K) {  // d sc (q - 32): up to 25 bits, so in double, not dequantize_row's float
    for (std::int64_t b = 0; b < cols / 256; ++b) {
      q::block_q6_K blk;
      std::memcpy(&blk, raw + b * sizeof blk, sizeof blk);
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, l = e % 128, c = l / 32, i = l % 32;
        const int lo = c % 2 == 0 ? blk.ql[64 * h + i] : blk.ql[64 * h + 32 + i];
        const int qv = ((c < 2 ? lo & 0xF : lo >> 4) | (((blk.qh[32 * h + i] >> (2 * c)) & 3) << 4)) - 32;
        const double v = static_cast<double>(blk.d.to_float()) * blk.scales[e / 16] * qv;
        w[static_cast<std::size_t>(256 * b + e)] = v;
        mag[static_cast<std::size_t>(256 * b + e)] = std::fabs(v);
      }
    }
    return;
  }
  if (t != DType::Q4_K) {
    std::vector<float> f(w.size());
    q::dequantize_row(t, raw, f.data(), cols);  // exact: f16 scale times a small integer
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = f[i], mag[i] = std::fabs(f[i]);
    return;
  }
  for (std::int64_t b = 0; b < cols / 256; ++b) {
    q::block_q4_K blk;
    std::memcpy(&blk, raw + b * sizeof blk, sizeof blk);
    for (int e = 0; e < 256; ++e) {
      std::uint8_t sc, m;
      q::detail::scale_min_k4(e / 32, blk.scales, sc, m);
      const int c = e / 64, l = e % 32;
      const int n = (e % 64) < 32 ? (blk.qs[32 * c + l] & 0xF) : (blk.qs[32 * c + l] >> 4);
      const double a = static_cast<double>(blk.d.to_float()) * sc * n, s = static_cast<double>(blk.dmin.to_float()) * m;
      w[static_cast<std::size_t>(256 * b + e)] = a - s;
      mag[static_cast<std::size_t>(256 * b + e)] = std::fabs(a) + std::fabs(s);
    }
  }
}

class Interleave : public ::testing::TestWithParam<DType> {};

TEST_P(Interleave, RowsRoundTripAndEmbeddingReadsGroups) {
  const DType t = GetParam();
  std::mt19937 rng(1);
  for (std::int64_t rows : {1, 15, 16, 17, 33, 48}) {
    for (std::int64_t cols : col_counts(t, {1, 3, 8})) {
      Matrix m = make(t, rows, cols, rng);
      std::vector<std::byte> data = m.raw;
      const auto w = k::interleave_rows(t, data.data(), rows, cols);
      EXPECT_EQ(w.interleaved_rows, rows / 16 * 16);
      if (rows >= 16) {
        EXPECT_NE(0, std::memcmp(data.data(), m.raw.data(), 16 * m.rb)) << "group 0 was not rewritten";
      }
      std::vector<std::byte> row(m.rb);
      std::vector<float> e(static_cast<std::size_t>(cols)), ref(static_cast<std::size_t>(cols));
      for (std::int64_t r = 0; r < rows; ++r) {
        k::copy_row(w, r, row.data());
        ASSERT_EQ(0, std::memcmp(row.data(), m.raw.data() + r * m.rb, m.rb)) << "row " << r << " of " << rows << " x " << cols;
        k::embedding_row(w, r, e.data());
        q::dequantize_row(t, m.raw.data() + r * m.rb, ref.data(), cols);
        ASSERT_EQ(0, std::memcmp(e.data(), ref.data(), e.size() * sizeof(float))) << "embedding row " << r;
      }
    }
  }
}

TEST_P(Interleave, ScalarTwinMatchesDoubleReferenceAndIgnoresLayout) {
  const DType t = GetParam();
  std::mt19937 rng(2);
  const std::int64_t bl = block_len(t), rows = 37, cols = block_len(t) == 256 ? 512 : 320, n = 3, nb = cols / bl;
  Matrix m = make(t, rows, cols, rng);
  const auto x = activations(n, cols, rng);
  std::size_t stride = 0;
  const auto xq = quantize_x(t, x, n, cols, stride);
  std::vector<float> y_plain(static_cast<std::size_t>(n * rows)), y_il(y_plain.size());
  const auto plain = tinfer::WeightView::dense(t, m.raw.data(), rows, cols);
  std::vector<std::byte> data = m.raw;
  const auto il = k::interleave_rows(t, data.data(), rows, cols);
  const k::Q16RowsFn f = k::kernel_table(tinfer::kernels::Isa::Scalar, k::Activations::Q16).q16i_for(t);
  ASSERT_NE(f, nullptr);
  f(plain, xq.data() + 4, stride, static_cast<int>(n), y_plain.data(), rows, 0, rows);
  f(il, xq.data() + 4, stride, static_cast<int>(n), y_il.data(), rows, 0, rows);
  EXPECT_EQ(0, std::memcmp(y_plain.data(), y_il.data(), y_il.size() * sizeof(float)));
  const double u = std::ldexp(1.0, -24);
  const double steps = t == DType::Q4_K ? 5 : t == DType::Q6_K ? 17 : 1;
  std::vector<double> wr, mag;
  for (std::int64_t r = 0; r < rows; ++r) {
    exact_weights(t, m.raw.data() + r * m.rb, cols, wr, mag);
    for (std::int64_t j = 0; j < n; ++j) {
      const float* xj = x.data() + j * cols;
      double ref = 0, s = 0, bound_q = 0;
      for (std::int64_t b = 0; b < nb; ++b) {
        float amax = 0;
        for (std::int64_t e = 0; e < bl; ++e) amax = std::max(amax, std::fabs(xj[bl * b + e]));
        for (std::int64_t e = 0; e < bl; ++e) {
          const auto i = static_cast<std::size_t>(bl * b + e);
          ref += wr[i] * xj[i];
          s += mag[i] * std::fabs(xj[i]);
          bound_q += mag[i] * amax / 65534.0 * (1 + 1e-5);
        }
      }
      const double got = y_il[static_cast<std::size_t>(j * rows + r)];
      const double bound = bound_q + (steps * static_cast<double>(nb) + 4) * 2 * u * (s + std::fabs(got) + bound_q);
      EXPECT_LE(std::fabs(got - ref), bound) << "row " << r << " x " << j;
    }
  }
}

TEST_P(Interleave, EverySimdPathEqualsScalarBitForBit) {
  const DType t = GetParam();
  std::mt19937 rng(3);
  const auto& scalar = k::kernel_table(k::Isa::Scalar, k::Activations::Q16);
  for (k::Isa isa : {k::Isa::Avx2, k::Isa::Avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(k::max_supported_isa())) continue;
    const auto& tab = k::kernel_table(isa, k::Activations::Q16);
    for (std::int64_t rows : {16, 37, 64}) {
      for (std::int64_t cols : col_counts(t, {1, 2, 11})) {
        Matrix m = make(t, rows, cols, rng);
        std::vector<std::byte> data = m.raw;
        const auto w = k::interleave_rows(t, data.data(), rows, cols);
        for (int n : {1, 2, 3, 4, 5, 8, 9, 19}) {
          const auto x = activations(n, cols, rng);
          std::size_t stride = 0;
          const auto xq = quantize_x(t, x, n, cols, stride);
          for (auto [r0, r1] : {std::pair<std::int64_t, std::int64_t>{0, rows}, {5, rows}, {16, rows - 1}, {3, 9}}) {
            if (r1 <= r0) continue;
            std::vector<float> ys(static_cast<std::size_t>(n * rows), -1.0f), yv(ys.size(), -1.0f);
            scalar.q16i_for(t)(w, xq.data() + 4, stride, n, ys.data(), rows, r0, r1);
            tab.q16i_for(t)(w, xq.data() + 4, stride, n, yv.data(), rows, r0, r1);
            ASSERT_EQ(0, std::memcmp(ys.data(), yv.data(), ys.size() * sizeof(float)))
                << k::isa_name(isa) << " rows " << rows << " cols " << cols << " n " << n << " range " << r0 << ".." << r1;
          }
        }
      }
    }
  }
}

TEST_P(Interleave, MatmulEqualsMatvecWithAndWithoutThreads) {
  const DType t = GetParam();
  std::mt19937 rng(4);
  const std::int64_t rows = 200, cols = 2 * block_len(t) * (block_len(t) == 256 ? 1 : 4);
  Matrix m = make(t, rows, cols, rng);
  std::vector<std::byte> data = m.raw;
  const auto w = k::interleave_rows(t, data.data(), rows, cols);
  tinfer::ThreadPool pool(2);
  for (std::int64_t n : {2, 7, 33}) {
    const auto x = activations(n, cols, rng);
    std::vector<float> y1(static_cast<std::size_t>(n * rows)), y2(y1.size()), yv(static_cast<std::size_t>(rows));
    k::matmul(w, x.data(), n, cols, y1.data(), rows, nullptr);
    k::matmul(w, x.data(), n, cols, y2.data(), rows, &pool);
    ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float))) << "threads changed the result, n " << n;
    for (std::int64_t i = 0; i < n; ++i) {
      k::matvec(w, x.data() + i * cols, yv.data(), i % 2 ? &pool : nullptr);
      ASSERT_EQ(0, std::memcmp(yv.data(), y1.data() + i * rows, yv.size() * sizeof(float))) << "row " << i << " of n " << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, Interleave, ::testing::Values(DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K),
                         [](const auto& info) { return std::string(tinfer::dtype_name(info.param)); });

// Q4_K at the int32 bound of its definition: every scale and min 63, every nibble 15, every
// activation +-32767, so each sub-block pair sums to 2 * 63 * 15 * 32 * 32767 = 1.98e9 (a kernel
// that summed more sub-blocks in int32 before converting would wrap). Every path must give
// 256 (63 * 15 d - 63 dmin) x per super-block, up to the float steps' rounding.
TEST(InterleaveQ4K, SumsAtTheInt32BoundStayExact) {
  const std::int64_t rows = 16, cols = 4 * 256;
  q::block_q4_K blk;
  blk.d = tinfer::f16(1.0f);
  blk.dmin = tinfer::f16(0.5f);
  std::memset(blk.scales, 0xFF, sizeof blk.scales);
  std::memset(blk.qs, 0xFF, sizeof blk.qs);
  std::vector<std::byte> data(static_cast<std::size_t>(rows * cols / 256) * sizeof blk);
  for (std::size_t i = 0; i < data.size() / sizeof blk; ++i) std::memcpy(data.data() + i * sizeof blk, &blk, sizeof blk);
  const auto w = k::interleave_rows(DType::Q4_K, data.data(), rows, cols);
  for (float sign : {1.0f, -1.0f}) {
    const std::vector<float> x(static_cast<std::size_t>(cols), sign);
    std::size_t stride = 0;
    const auto xq = quantize_x(DType::Q4_K, x, 1, cols, stride);
    const double want = sign * static_cast<double>(cols) * (63.0 * 15.0 - 63.0 * 0.5);
    for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512}) {
      if (static_cast<int>(isa) > static_cast<int>(k::max_supported_isa())) continue;
      std::vector<float> y(static_cast<std::size_t>(rows));
      k::kernel_table(isa, k::Activations::Q16).q16i_for(DType::Q4_K)(w, xq.data() + 4, stride, 1, y.data(), rows, 0, rows);
      for (float v : y) EXPECT_NEAR(v, want, 1e-5 * std::fabs(want)) << k::isa_name(isa);
    }
  }
}

TEST(InterleaveErrors, OtherTypesAreRejected) {
  std::vector<std::byte> d(16 * 176);
  EXPECT_THROW(k::interleave_rows(DType::Q5_K, d.data(), 16, 256), tinfer::UnsupportedError);
}

}  // namespace
