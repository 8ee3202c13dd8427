// The float-weight matmul tile (dot_rows_multi) on shapes that reach every part of its blocking:
// rows > 2 x 512 columns (cache-blocked in column chunks, lanes carried between chunks), row
// blocks and token blocks with remainders of every register-tile size, a row sub-range, strides
// and a tail of n % 16 columns. Compared BIT FOR BIT with the scalar twin per (row, token): the
// 16-lane order is fixed project-wide (scalar/dot_rows.hpp), so no tolerance applies.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <random>
#include <vector>

#include "tinfer/core/float16.hpp"
#include "tinfer/kernels/dispatch.hpp"

namespace {

namespace k = tinfer::kernels;
using tinfer::DType;

TEST(FloatGemm, BlockedTilesMatchScalarTwinBitForBit) {
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0, 1);
  const auto& scalar = k::kernel_table(k::Isa::Scalar);
  std::vector<k::Isa> isas;
  if (k::max_supported_isa() >= k::Isa::Avx2) isas.push_back(k::Isa::Avx2);
  if (k::max_supported_isa() >= k::Isa::Avx512) isas.push_back(k::Isa::Avx512);
  if (isas.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  struct Shape {
    std::int64_t rows, cols;
    int nx;
  };
  // 71 rows from row 2: 69 rows = 2 blocks of 32 + 5 (4 + 1); 53 tokens = 48 + 5; columns: one
  // pass (1024), chunks with a tail (1025, 2055), exact chunks (1536), a long last chunk (2800).
  const Shape shapes[] = {{71, 1024, 53}, {71, 1025, 7}, {38, 1536, 53}, {71, 2055, 13}, {9, 2800, 50}, {7, 4103, 1}};
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    const std::size_t es = t == DType::F32 ? 4 : 2;
    for (const Shape& s : shapes) {
      const std::size_t row_bytes = static_cast<std::size_t>(s.cols) * es;
      std::vector<std::byte> storage(static_cast<std::size_t>(s.rows) * row_bytes);
      for (std::size_t i = 0; i < storage.size(); i += es) {
        const float v = d(rng);
        if (t == DType::F32) std::memcpy(&storage[i], &v, 4);
        else {
          const std::uint16_t b = t == DType::F16 ? tinfer::f16::from_float(v) : tinfer::bf16::from_float(v);
          std::memcpy(&storage[i], &b, 2);
        }
      }
      const auto w = tinfer::WeightView::dense(t, storage.data(), s.rows, s.cols);
      const std::int64_t ldx = s.cols + 5, ldy = s.rows + 3, r0 = 2;
      std::vector<float> x(static_cast<std::size_t>(s.nx * ldx) + 1);
      for (auto& v : x) v = d(rng);
      const float* xp = x.data() + 1;  // misaligned activations
      std::vector<float> want(static_cast<std::size_t>(s.rows));
      for (k::Isa isa : isas) {
        const auto multi = k::kernel_table(isa).dot_rows_multi_for(t);
        ASSERT_NE(multi, nullptr);
        std::vector<float> y(static_cast<std::size_t>(s.nx * ldy), -1.0f);
        multi(w, xp, ldx, s.nx, y.data(), ldy, r0, s.rows);
        for (int j = 0; j < s.nx; ++j) {
          scalar.dot_rows_for(t)(w, xp + j * ldx, want.data(), 0, s.rows);
          for (std::int64_t r = 0; r < ldy; ++r) {
            const float got = y[static_cast<std::size_t>(j * ldy + r)];
            if (r < r0 || r >= s.rows) {
              ASSERT_EQ(got, -1.0f) << "wrote outside rows [r0, r1), row " << r;
              continue;
            }
            ASSERT_EQ(std::bit_cast<std::uint32_t>(got), std::bit_cast<std::uint32_t>(want[static_cast<std::size_t>(r)]))
                << tinfer::dtype_name(t) << " isa " << k::isa_name(isa) << " " << s.rows << "x" << s.cols << " nx " << s.nx
                << " token " << j << " row " << r;
          }
        }
      }
    }
  }
}

}  // namespace
