// Packed activations (kernels/pack_activations.hpp) and the batched float kernel that reads them.
//
// 1. The layout: every activation lands at (group base) + (b * nxg + j) * 16 + i % 16, the
//    padding past `cols` is zero, every float of the packed size is written, and packing the
//    groups in pieces (as matmul's threads do) gives the same buffer as packing them at once.
// 2. The kernel table's dot_rows_packed, on every ISA that has one, equals the scalar twin per
//    (row, token) BIT FOR BIT: plain rows with a tail of cols % 16, interleaved groups, ranges
//    that start inside a group and cross the last one, 1..13 and 50 tokens (whole and partial
//    token groups), and rows long enough for the cache-blocked path. No tolerance applies: the
//    16-lane order is fixed project-wide (scalar/dot_rows.hpp) and packing copies values only.
// 3. matmul with packed activations equals matvec row by row with and without threads.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "tinfer/core/float16.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/interleave.hpp"
#include "tinfer/kernels/pack_activations.hpp"
#include "kernels/random_float_matrix.hpp"

namespace {

namespace k = tinfer::kernels;
using tinfer::DType;

TEST(PackActivations, LayoutPaddingAndPiecewisePacking) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0, 1);
  for (int group : {1, 4, 6}) {
    for (std::int64_t n : {1, 5, 6, 7, 13}) {
      for (std::int64_t cols : {1, 15, 16, 17, 40}) {
        const std::int64_t ldx = cols + 3, cp = k::packed_activation_cols(cols);
        ASSERT_EQ(cp % 16, 0);
        ASSERT_GE(cp, cols);
        ASSERT_LT(cp - cols, 16);
        std::vector<float> x(static_cast<std::size_t>(n * ldx));
        for (auto& v : x) v = d(rng);
        const auto size = static_cast<std::size_t>(k::packed_activation_floats(n, cols));
        std::vector<float> xp(size + 16, std::numeric_limits<float>::quiet_NaN());
        k::pack_activations(x.data(), n, ldx, cols, group, xp.data());
        for (std::size_t i = size; i < xp.size(); ++i) ASSERT_TRUE(std::isnan(xp[i])) << "wrote past the packed size";
        std::vector<bool> seen(size, false);
        for (std::int64_t t = 0; t < n; ++t) {
          const std::int64_t g = t / group, j = t % group, nxg = std::min<std::int64_t>(group, n - g * group);
          for (std::int64_t i = 0; i < cp; ++i) {
            const auto at = static_cast<std::size_t>(g * group * cp + ((i / 16) * nxg + j) * 16 + i % 16);
            ASSERT_LT(at, size);
            seen[at] = true;
            const float want = i < cols ? x[static_cast<std::size_t>(t * ldx + i)] : 0.0f;
            ASSERT_EQ(std::bit_cast<std::uint32_t>(xp[at]), std::bit_cast<std::uint32_t>(want))
                << "group size " << group << " n " << n << " cols " << cols << " token " << t << " column " << i;
          }
        }
        for (std::size_t i = 0; i < size; ++i) ASSERT_TRUE(seen[i]) << "float " << i << " of the packed buffer belongs to no activation";
        // Pieces: each group packed on its own.
        std::vector<float> pieces(size, -1.0f);
        const std::int64_t groups = (n + group - 1) / group;
        for (std::int64_t g = groups - 1; g >= 0; --g) k::pack_activation_groups(x.data(), n, ldx, cols, group, pieces.data(), g, g + 1);
        ASSERT_EQ(std::memcmp(pieces.data(), xp.data(), size * sizeof(float)), 0);
      }
    }
  }
}

TEST(PackActivations, PackedKernelMatchesScalarTwinBitForBit) {
  std::vector<k::Isa> isas;
  for (k::Isa isa : {k::Isa::Avx2, k::Isa::Avx512})
    if (k::max_supported_isa() >= isa && k::kernel_table(isa).dot_rows_packed_for(DType::F32) != nullptr) isas.push_back(isa);
  if (isas.empty()) GTEST_SKIP() << "no ISA on this CPU has a packed float kernel";
  std::mt19937 rng(17);
  std::normal_distribution<float> d(0, 1);
  const auto& scalar = k::kernel_table(k::Isa::Scalar);
  struct Shape {
    std::int64_t rows, cols;
    bool grouped;
    std::int64_t r0, r1;
  };
  // Plain rows with tails (37, 1045 columns: one pass and blocked); groups (16-multiples of
  // columns) with 53 rows = 3 groups + 5 plain rows, ranges from inside the first group across
  // the last, and 2064 columns for the blocked path.
  const Shape shapes[] = {{9, 37, false, 0, 9},     {11, 1045, false, 2, 11}, {53, 48, true, 3, 53},
                          {53, 2064, true, 5, 50}, {40, 1040, true, 0, 40},  {20, 16, true, 17, 20}};
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    for (const Shape& s : shapes) {
      std::vector<std::byte> plain = tinfer::test::random_float_matrix(t, s.rows, s.cols, rng);
      std::vector<std::byte> storage = plain;
      const auto ref = tinfer::WeightView::dense(t, plain.data(), s.rows, s.cols);
      const auto w = s.grouped ? k::interleave_rows(t, storage.data(), s.rows, s.cols)
                               : tinfer::WeightView::dense(t, storage.data(), s.rows, s.cols);
      ASSERT_EQ(w.interleaved_rows > 0, s.grouped);
      for (int nx : {1, 2, 3, 4, 5, 6, 7, 11, 13, 50}) {
        if (s.cols > 1024 && nx != 13 && nx != 50) continue;  // the blocked path: two token counts suffice
        const std::int64_t ldx = s.cols + 1, ldy = s.rows + 2;
        std::vector<float> x(static_cast<std::size_t>(nx * ldx));
        for (auto& v : x) v = d(rng);
        std::vector<float> want(static_cast<std::size_t>(s.rows));
        for (k::Isa isa : isas) {
          const auto& tab = k::kernel_table(isa);
          std::vector<float> xp(static_cast<std::size_t>(k::packed_activation_floats(nx, s.cols)));
          k::pack_activations(x.data(), nx, ldx, s.cols, tab.packed_group, xp.data());
          std::vector<float> y(static_cast<std::size_t>(nx * ldy), -1.0f);
          tab.dot_rows_packed_for(t)(w, xp.data(), nx, y.data(), ldy, s.r0, s.r1);
          for (int j = 0; j < nx; ++j) {
            scalar.dot_rows_for(t)(ref, x.data() + j * ldx, want.data(), 0, s.rows);
            for (std::int64_t r = 0; r < ldy; ++r) {
              const float got = y[static_cast<std::size_t>(j * ldy + r)];
              if (r < s.r0 || r >= s.r1) {
                ASSERT_EQ(got, -1.0f) << "wrote outside rows [r0, r1), row " << r;
                continue;
              }
              ASSERT_EQ(std::bit_cast<std::uint32_t>(got), std::bit_cast<std::uint32_t>(want[static_cast<std::size_t>(r)]))
                  << tinfer::dtype_name(t) << " isa " << k::isa_name(isa) << " " << s.rows << "x" << s.cols
                  << (s.grouped ? " grouped" : " plain") << " nx " << nx << " token " << j << " row " << r;
            }
          }
        }
      }
    }
  }
}

TEST(PackActivations, MatmulEqualsMatvecWithAndWithoutThreads) {
  std::mt19937 rng(23);
  std::normal_distribution<float> d(0, 1);
  tinfer::ThreadPool pool(3);
  for (DType t : {DType::F32, DType::F16}) {
    const std::int64_t rows = 70, cols = 1056;
    std::vector<std::byte> storage = tinfer::test::random_float_matrix(t, rows, cols, rng);
    const auto w = k::can_interleave(t, cols) ? k::interleave_rows(t, storage.data(), rows, cols)
                                              : tinfer::WeightView::dense(t, storage.data(), rows, cols);
    for (std::int64_t n : {2, 9, 31}) {
      std::vector<float> x(static_cast<std::size_t>(n * cols));
      for (auto& v : x) v = d(rng);
      std::vector<float> y1(static_cast<std::size_t>(n * rows)), y2(y1.size()), yv(static_cast<std::size_t>(rows));
      k::matmul(w, x.data(), n, cols, y1.data(), rows, nullptr);
      k::matmul(w, x.data(), n, cols, y2.data(), rows, &pool);
      for (std::int64_t i = 0; i < n; ++i) {
        k::matvec(w, x.data() + i * cols, yv.data(), nullptr);
        ASSERT_EQ(std::memcmp(yv.data(), y1.data() + i * rows, yv.size() * sizeof(float)), 0) << "token " << i << " without threads";
        ASSERT_EQ(std::memcmp(yv.data(), y2.data() + i * rows, yv.size() * sizeof(float)), 0) << "token " << i << " with threads";
      }
    }
  }
}

}  // namespace
