// Interleaved F32 / F16 / BF16 weights (kernels/interleave.hpp): groups of 16 rows whose 16-column
// blocks hold the 16 rows' values one row after another, read by the float kernels.
//
// 1. The layout: interleave_rows then copy_row gives every row's bytes back, and embedding_row
//    reads rows inside groups as the plain matrix does.
// 2. The layout does not change a result: on every ISA the machine has, dot_rows and
//    dot_rows_multi over an interleaved view equal the scalar twin over the plain matrix BIT FOR
//    BIT (the float order of scalar/dot_rows.hpp is defined per element, not per address), for
//    row sub-ranges that start inside a group or cross the last group, row counts that are not
//    multiples of 16, batches of 1..50 tokens and rows long enough for the cache-blocked GEMM.
//    The scalar twin itself is checked against a double-precision dot product (|error| <=
//    n u sum |w x|, the standard bound for n fused steps plus the 4-level tree).
// 3. matvec / matmul through the dispatcher, with and without threads, equal the plain view's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "tinfer/core/float16.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/embedding.hpp"
#include "tinfer/kernels/interleave.hpp"
#include "kernels/random_float_matrix.hpp"

namespace {

namespace k = tinfer::kernels;
using tinfer::DType;
using tinfer::WeightView;

std::size_t elem_bytes(DType t) { return t == DType::F32 ? 4 : 2; }

float value(DType t, const std::byte* p) {
  if (t == DType::F32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  std::uint16_t b;
  std::memcpy(&b, p, 2);
  return t == DType::F16 ? tinfer::f16::to_float(b) : tinfer::bf16::to_float(b);
}

std::vector<float> activations(std::int64_t n, std::int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> x(static_cast<std::size_t>(n * cols));
  for (auto& v : x) v = nd(rng);
  return x;
}

class InterleaveFloat : public ::testing::TestWithParam<DType> {};

TEST_P(InterleaveFloat, RowsRoundTripAndEmbeddingReadsGroups) {
  const DType t = GetParam();
  std::mt19937 rng(1);
  for (std::int64_t rows : {15, 16, 37, 64}) {
    for (std::int64_t cols : {16, 48, 1040}) {
      const auto raw = tinfer::test::random_float_matrix(t, rows, cols, rng);
      auto data = raw;
      const WeightView w = k::interleave_rows(t, data.data(), rows, cols);
      ASSERT_EQ(w.interleaved_rows, rows / 16 * 16);
      if (rows >= 16 && cols > 16) {  // one 16-column block per row: both layouts coincide
        ASSERT_NE(0, std::memcmp(data.data(), raw.data(), raw.size())) << "the layout must change";
      }
      std::vector<std::byte> row(w.row_bytes);
      std::vector<float> e(static_cast<std::size_t>(cols));
      for (std::int64_t r = 0; r < rows; ++r) {
        k::copy_row(w, r, row.data());
        ASSERT_EQ(0, std::memcmp(row.data(), raw.data() + r * w.row_bytes, w.row_bytes)) << "row " << r;
        k::embedding_row(w, r, e.data());
        for (std::int64_t c = 0; c < cols; ++c) {
          ASSERT_EQ(e[static_cast<std::size_t>(c)], value(t, raw.data() + r * w.row_bytes + c * elem_bytes(t))) << r << "," << c;
        }
        // The addressing the kernels use.
        for (std::int64_t c : {std::int64_t{0}, cols / 2, cols - 1}) {
          const std::byte* p = w.float_row(r, elem_bytes(t)) + static_cast<std::size_t>((c / 16) * w.float_block_step(r) + c % 16) * elem_bytes(t);
          ASSERT_EQ(0, std::memcmp(p, raw.data() + r * w.row_bytes + c * elem_bytes(t), elem_bytes(t)));
        }
      }
    }
  }
}

TEST_P(InterleaveFloat, ScalarTwinMatchesDoubleReference) {
  const DType t = GetParam();
  std::mt19937 rng(2);
  const std::int64_t rows = 37, cols = 1040;
  const auto raw = tinfer::test::random_float_matrix(t, rows, cols, rng);
  auto data = raw;
  const WeightView w = k::interleave_rows(t, data.data(), rows, cols);
  const auto x = activations(1, cols, rng);
  std::vector<float> y(static_cast<std::size_t>(rows));
  k::kernel_table(k::Isa::Scalar, k::Activations::Q16).dot_rows_for(t)(w, x.data(), y.data(), 0, rows);
  const double u = std::ldexp(1.0, -24);
  for (std::int64_t r = 0; r < rows; ++r) {
    double ref = 0, mag = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const double p = static_cast<double>(value(t, raw.data() + r * w.row_bytes + c * elem_bytes(t))) * x[static_cast<std::size_t>(c)];
      ref += p;
      mag += std::fabs(p);
    }
    EXPECT_NEAR(y[static_cast<std::size_t>(r)], ref, (cols / 16 + 4) * u * mag) << "row " << r;
  }
}

TEST_P(InterleaveFloat, EveryPathOnGroupsEqualsScalarOnPlainRowsBitForBit) {
  const DType t = GetParam();
  std::mt19937 rng(3);
  const auto& scalar = k::kernel_table(k::Isa::Scalar, k::Activations::Q16);
  for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(k::max_supported_isa())) continue;
    const auto& tab = k::kernel_table(isa, k::Activations::Q16);
    for (std::int64_t rows : {16, 37, 64}) {
      for (std::int64_t cols : {16, 48, 2064}) {  // 2064: the cache-blocked GEMM (over 2 x 512 columns)
        const auto raw = tinfer::test::random_float_matrix(t, rows, cols, rng);
        auto data = raw;
        const WeightView plain = WeightView::dense(t, raw.data(), rows, cols);
        const WeightView w = k::interleave_rows(t, data.data(), rows, cols);
        for (int n : {1, 2, 5, 6, 7, 13, 50}) {
          const auto x = activations(n, cols, rng);
          for (auto [r0, r1] : {std::pair<std::int64_t, std::int64_t>{0, rows}, {5, rows}, {16, rows - 1}, {3, 9}, {20, rows}}) {
            if (r1 <= r0) continue;
            std::vector<float> ys(static_cast<std::size_t>(n * rows), -1.0f), yv(ys.size(), -1.0f);
            for (int j = 0; j < n; ++j) scalar.dot_rows_for(t)(plain, x.data() + j * cols, ys.data() + j * rows, r0, r1);
            if (n == 1) {
              tab.dot_rows_for(t)(w, x.data(), yv.data(), r0, r1);
            } else if (const auto f = tab.dot_rows_multi_for(t); f != nullptr) {
              f(w, x.data(), cols, n, yv.data(), rows, r0, r1);
            } else {
              for (int j = 0; j < n; ++j) tab.dot_rows_for(t)(w, x.data() + j * cols, yv.data() + j * rows, r0, r1);
            }
            ASSERT_EQ(0, std::memcmp(ys.data(), yv.data(), ys.size() * sizeof(float)))
                << k::isa_name(isa) << " rows " << rows << " cols " << cols << " n " << n << " range " << r0 << ".." << r1;
          }
        }
      }
    }
  }
}

TEST_P(InterleaveFloat, MatmulAndMatvecEqualThePlainMatrixWithAndWithoutThreads) {
  const DType t = GetParam();
  std::mt19937 rng(4);
  const std::int64_t rows = 203, cols = 2048;  // ~8 KiB rows: matvec splits into several chunks
  const auto raw = tinfer::test::random_float_matrix(t, rows, cols, rng);
  auto data = raw;
  const WeightView plain = WeightView::dense(t, raw.data(), rows, cols);
  const WeightView w = k::interleave_rows(t, data.data(), rows, cols);
  tinfer::ThreadPool pool(3);
  for (std::int64_t n : {1, 2, 7, 33}) {
    const auto x = activations(n, cols, rng);
    std::vector<float> yp(static_cast<std::size_t>(n * rows)), y1(yp.size()), y2(yp.size()), yv(static_cast<std::size_t>(rows));
    k::matmul(plain, x.data(), n, cols, yp.data(), rows, nullptr);
    k::matmul(w, x.data(), n, cols, y1.data(), rows, nullptr);
    k::matmul(w, x.data(), n, cols, y2.data(), rows, &pool);
    ASSERT_EQ(0, std::memcmp(yp.data(), y1.data(), y1.size() * sizeof(float))) << "the layout changed the result, n " << n;
    ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float))) << "threads changed the result, n " << n;
    for (std::int64_t i = 0; i < n; ++i) {
      k::matvec(w, x.data() + i * cols, yv.data(), i % 2 ? &pool : nullptr);
      ASSERT_EQ(0, std::memcmp(yv.data(), y1.data() + i * rows, yv.size() * sizeof(float))) << "row " << i << " of n " << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, InterleaveFloat, ::testing::Values(DType::F32, DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(tinfer::dtype_name(info.param)); });

TEST(InterleaveFloatErrors, RowsOfPartialBlocksAreRejected) {
  std::vector<std::byte> d(16 * 20 * 4);
  EXPECT_THROW(k::interleave_rows(DType::F32, d.data(), 16, 20), tinfer::InvalidArgument);
  EXPECT_FALSE(k::can_interleave(DType::F16, 20));
  EXPECT_TRUE(k::can_interleave(DType::F16, 32));
}

}  // namespace
