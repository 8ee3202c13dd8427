// Every ISA path of the row dot products against the scalar twin, BIT FOR BIT: all of them add
// in the 16-lane order of scalar/dot_rows.hpp (fma per element, fixed reduction tree), for
// sizes 0..2x the widest vector (and odd larger ones), misaligned rows and inputs, any number
// of rows (register tiles of 1, 2 and 4 rows) and of activation rows (dot_rows_multi). The
// scalar twin itself is checked against the exact sum (in double): at most n + 4 roundings
// of partial sums bounded by sum|w_i x_i|, so |twin - exact| <= (n + 4) eps sum|w_i x_i|
// (eps = 2^-24); the tolerance is twice that.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "tinfer/core/float16.hpp"
#include "tinfer/kernels/dispatch.hpp"

namespace {

namespace k = tinfer::kernels;
using tinfer::DType;

std::vector<k::Isa> supported_isas() {
  std::vector<k::Isa> v = {k::Isa::Scalar};
  if (k::max_supported_isa() >= k::Isa::Avx2) v.push_back(k::Isa::Avx2);
  if (k::max_supported_isa() >= k::Isa::Avx512) v.push_back(k::Isa::Avx512);
  return v;
}

struct Case {
  DType type;
  std::size_t elem_bytes;
};

void fill_row(DType type, std::byte* dst, const std::vector<float>& v) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (type == DType::F32) std::memcpy(dst + 4 * i, &v[i], 4);
    else {
      const std::uint16_t b = type == DType::F16 ? tinfer::f16::from_float(v[i]) : tinfer::bf16::from_float(v[i]);
      std::memcpy(dst + 2 * i, &b, 2);
    }
  }
}

TEST(DotRows, EveryIsaMatchesScalarTwin) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0, 1);
  std::vector<std::int64_t> sizes;
  for (int n = 0; n <= 140; ++n) sizes.push_back(n);
  for (int n : {255, 256, 257, 1000, 1023, 4096 + 7}) sizes.push_back(n);
  const auto& scalar = k::kernel_table(k::Isa::Scalar);
  for (Case c : {Case{DType::F32, 4}, Case{DType::F16, 2}, Case{DType::BF16, 2}}) {
    for (auto n : sizes) {
      const std::int64_t rows = n % 2 == 0 ? 7 : 5;  // 4-row tiles plus single rows
      for (std::size_t misalign : {0u, 1u}) {
        // Rows stored with an odd element offset so loads are unaligned.
        const std::size_t row_bytes = static_cast<std::size_t>(n) * c.elem_bytes;
        std::vector<std::byte> storage(rows * row_bytes + 64 + misalign * c.elem_bytes);
        std::byte* base = storage.data() + misalign * c.elem_bytes;
        std::vector<std::vector<float>> wv(rows, std::vector<float>(static_cast<std::size_t>(n)));
        for (auto& row : wv)
          for (auto& v : row) v = d(rng);
        for (std::int64_t r = 0; r < rows; ++r) fill_row(c.type, base + r * row_bytes, wv[static_cast<std::size_t>(r)]);
        std::vector<float> xs(static_cast<std::size_t>(n) + 1);
        for (auto& v : xs) v = d(rng);
        const float* x = xs.data() + misalign;
        const auto w = tinfer::WeightView::dense(c.type, base, rows, n);
        std::vector<float> want(rows);
        scalar.dot_rows_for(c.type)(w, x, want.data(), 0, rows);
        for (std::int64_t r = 0; r < rows; ++r) {
          const auto u = static_cast<std::size_t>(r);
          double mag = 0, exact = 0;
          for (std::int64_t i = 0; i < n; ++i) {
            std::uint16_t b = 0;
            float wi = wv[u][static_cast<std::size_t>(i)];
            if (c.type != DType::F32) {
              std::memcpy(&b, base + r * row_bytes + 2 * i, 2);
              wi = c.type == DType::F16 ? tinfer::f16::to_float(b) : tinfer::bf16::to_float(b);
            }
            mag += std::fabs(static_cast<double>(wi) * x[i]);
            exact += static_cast<double>(wi) * x[i];
          }
          ASSERT_LE(std::fabs(want[u] - exact), 2.0 * static_cast<double>(n + 4) * 0x1p-24 * mag + 1e-30)
              << tinfer::dtype_name(c.type) << " scalar twin vs exact, n " << n;
        }
        for (k::Isa isa : supported_isas()) {
          std::vector<float> got(rows, -1.0f);
          k::kernel_table(isa).dot_rows_for(c.type)(w, x, got.data(), 0, rows);
          for (std::int64_t r = 0; r < rows; ++r) {
            const auto u = static_cast<std::size_t>(r);
            ASSERT_EQ(std::bit_cast<std::uint32_t>(got[u]), std::bit_cast<std::uint32_t>(want[u]))
                << tinfer::dtype_name(c.type) << " isa " << k::isa_name(isa) << " n " << n << " row " << r << " misalign " << misalign
                << ": got " << got[u] << " scalar " << want[u];
          }
          // Several activation rows at once (the matmul tile), with a row sub-range.
          if (const auto multi = k::kernel_table(isa).dot_rows_multi_for(c.type); multi != nullptr) {
            const int nx = 6;
            const std::int64_t ldx = n + 3, ldy = rows + 1;
            std::vector<float> xm(static_cast<std::size_t>(nx * ldx) + 1);
            for (auto& v : xm) v = d(rng);
            std::vector<float> ym(static_cast<std::size_t>(nx * ldy), -1.0f), y1(rows);
            multi(w, xm.data() + misalign, ldx, nx, ym.data(), ldy, 1, rows);
            for (int j = 0; j < nx; ++j) {
              scalar.dot_rows_for(c.type)(w, xm.data() + misalign + j * ldx, y1.data(), 0, rows);
              EXPECT_EQ(ym[static_cast<std::size_t>(j * ldy)], -1.0f);
              for (std::int64_t r = 1; r < rows; ++r) {
                ASSERT_EQ(std::bit_cast<std::uint32_t>(ym[static_cast<std::size_t>(j * ldy + r)]),
                          std::bit_cast<std::uint32_t>(y1[static_cast<std::size_t>(r)]))
                    << tinfer::dtype_name(c.type) << " multi isa " << k::isa_name(isa) << " n " << n << " act " << j << " row " << r;
              }
            }
          }
        }
      }
    }
  }
}

TEST(DotRows, MatvecSplitsRowsIdenticallyForAnyThreadCount) {
  const std::int64_t rows = 3000, cols = 1024;
  std::vector<tinfer::f16> w(static_cast<std::size_t>(rows * cols));
  std::vector<float> x(cols);
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0, 1);
  for (auto& v : w) v = tinfer::f16(d(rng));
  for (auto& v : x) v = d(rng);
  const auto view = tinfer::WeightView::dense(DType::F16, w.data(), rows, cols);
  std::vector<float> y1(rows);
  k::matvec(view, x.data(), y1.data(), nullptr);
  for (int t : {2, 3}) {
    tinfer::ThreadPool pool(t);
    std::vector<float> y(rows);
    k::matvec(view, x.data(), y.data(), &pool);
    EXPECT_EQ(y, y1);
  }
}

TEST(DotRows, DispatchReportsUnsupportedTypes) {
  EXPECT_THROW(k::kernel_table(k::Isa::Scalar).dot_rows_for(DType::I64), tinfer::UnsupportedError);
  // Asking for a level above the machine's is clamped, never an illegal instruction.
  EXPECT_LE(static_cast<int>(k::kernel_table(k::Isa::Avx512).isa), static_cast<int>(k::max_supported_isa()));
}

TEST(CpuFeatures, ConsistentWithCompilerBuiltins) {
  const auto& f = k::cpu_features();
  if (f.avx2) {
    EXPECT_TRUE(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  }
  if (f.avx512) {
    EXPECT_TRUE(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"));
  }
  if (f.avx512_vnni) {
    EXPECT_TRUE(__builtin_cpu_supports("avx512vnni"));
  }
}

}  // namespace
