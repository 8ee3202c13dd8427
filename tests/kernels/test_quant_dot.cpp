// The quantized-activation path of the quantized weight types.
//
// 1. Every SIMD build (avx2, avx2vnni, avx512-vnni; those this CPU runs) against the scalar
//    integer twin. Integer sums per block are exact in both; only the float products
//    scale * int and their sum are rounded, in a different order. Each float term t is bounded
//    by |t| <= sum_{i in block} e_i |xq_i|, with e_i = |w_i| + 2 |m_i| (w_i the dequantized
//    weight, m_i its block offset/min, so |d sc q_i| <= |w_i| + |m_i|), and each path adds at
//    most nb + 4 rounded terms per lane chain, so
//        |simd - scalar| <= 2 (nb + 4) u S,  S = sum_i e_i |xq_i|,  u = 2^-24.
// 2. The quantized-activation result against the float reference (dequantized weights times
//    float x, scalar::dot_rows_dequantized). Activation quantization moves x_i by at most
//    d_b / 2 = amax_b / 254 (d_b the activation block scale), so
//        |quant - ref| <= sum_i |w_i| d_b(i) / 2 (1 + 1e-5) + 2 (n + nb + 8) u (S + sum |w_i x_i|).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tinfer/kernels/dispatch.hpp"

namespace {

namespace k = tinfer::kernels;
namespace q = tinfer::quant;
using tinfer::DType;
using tinfer::f16;

using QFn = k::QuantDotRowsFn;

bool is_k(DType t) { return tinfer::dtype_info(t)->block_size == 256; }
std::size_t block_bytes(DType t) { return tinfer::dtype_info(t)->block_bytes; }
int block_size(DType t) { return static_cast<int>(tinfer::dtype_info(t)->block_size); }

struct Impl {
  std::string name;
  QFn fn;
};

template <DType T>
std::vector<Impl> simd_impls() {
  std::vector<Impl> v;
  const auto& f = k::cpu_features();
  if (f.avx2) v.push_back({"avx2", k::avx2::quant_dot_rows<T>});
  if (f.avx_vnni) v.push_back({"avx2vnni", k::avx2vnni::quant_dot_rows<T>});
  if (f.avx512_vnni) v.push_back({"avx512vnni", k::avx512::quant_dot_rows<T>});
  if constexpr (T == DType::Q8_0 || T == DType::Q4_0) {
    if (f.avx512_vnni) v.push_back({"avx512vnni-zmm", k::avx512::quant_dot_rows_zmm<T>});
  }
  return v;
}

// Byte offsets of the f16 scales (d, then m/dmin if any) in each block.
std::vector<std::size_t> scale_offsets(DType t) {
  switch (t) {
    case DType::Q4_0: return {offsetof(q::block_q4_0, d)};
    case DType::Q4_1: return {offsetof(q::block_q4_1, d), offsetof(q::block_q4_1, m)};
    case DType::Q5_0: return {offsetof(q::block_q5_0, d)};
    case DType::Q5_1: return {offsetof(q::block_q5_1, d), offsetof(q::block_q5_1, m)};
    case DType::Q8_0: return {offsetof(q::block_q8_0, d)};
    case DType::Q2_K: return {offsetof(q::block_q2_K, d), offsetof(q::block_q2_K, dmin)};
    case DType::Q3_K: return {offsetof(q::block_q3_K, d)};
    case DType::Q4_K: return {offsetof(q::block_q4_K, d), offsetof(q::block_q4_K, dmin)};
    case DType::Q5_K: return {offsetof(q::block_q5_K, d), offsetof(q::block_q5_K, dmin)};
    case DType::Q6_K: return {offsetof(q::block_q6_K, d)};
    default: return {};
  }
}
bool has_min(DType t) { return scale_offsets(t).size() == 2; }

// Zeroes the quants of a block (keeps scales), so dequantizing it gives the block's offsets.
void zero_quants(DType t, std::byte* b) {
  switch (t) {
    case DType::Q4_1: std::memset(b + offsetof(q::block_q4_1, qs), 0, 16); break;
    case DType::Q5_1:
      std::memset(b + offsetof(q::block_q5_1, qs), 0, 16);
      std::memset(b + offsetof(q::block_q5_1, qh), 0, 4);
      break;
    case DType::Q2_K: std::memset(b + offsetof(q::block_q2_K, qs), 0, 64); break;
    case DType::Q4_K: std::memset(b + offsetof(q::block_q4_K, qs), 0, 128); break;
    case DType::Q5_K:
      std::memset(b + offsetof(q::block_q5_K, qs), 0, 128);
      std::memset(b + offsetof(q::block_q5_K, qh), 0, 32);
      break;
    default: break;
  }
}

enum class Fill { Random, AllFF, AllZero, ZeroScales };

// Random bytes everywhere, then sane f16 scales (or the extreme patterns).
void fill_blocks(DType t, std::byte* dst, std::int64_t nblocks, Fill fill, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> sc(0.001f, 0.05f);
  const std::size_t bb = block_bytes(t);
  for (std::int64_t i = 0; i < nblocks; ++i) {
    std::byte* b = dst + static_cast<std::size_t>(i) * bb;
    for (std::size_t j = 0; j < bb; ++j) {
      b[j] = fill == Fill::AllFF ? std::byte{0xFF} : fill == Fill::AllZero ? std::byte{0} : static_cast<std::byte>(byte(rng));
    }
    bool first = true;
    for (std::size_t off : scale_offsets(t)) {
      float v = fill == Fill::ZeroScales ? 0.0f : sc(rng) * (byte(rng) < 128 ? 1.0f : -1.0f);
      if (!first && fill != Fill::ZeroScales) v = std::fabs(v);
      const std::uint16_t h = f16::from_float(v);
      std::memcpy(b + off, &h, 2);
      first = false;
    }
  }
}

struct Data {
  std::int64_t rows, cols;
  std::vector<std::byte> storage;
  tinfer::WeightView w;
  std::vector<float> x;
  std::vector<std::uint32_t> xq;
  k::ActFormat act;
};

Data make(DType t, std::int64_t rows, std::int64_t nblocks, Fill fill, bool extreme_x, std::size_t misalign, std::mt19937& rng) {
  Data d;
  d.rows = rows;
  d.cols = nblocks * block_size(t);
  const std::size_t rb = static_cast<std::size_t>(nblocks) * block_bytes(t);
  d.storage.resize(static_cast<std::size_t>(rows) * rb + 64 + misalign);
  fill_blocks(t, d.storage.data() + misalign, rows * nblocks, fill, rng);
  d.w = tinfer::WeightView::dense(t, d.storage.data() + misalign, rows, d.cols);
  std::normal_distribution<float> nd(0, 1);
  d.x.resize(static_cast<std::size_t>(d.cols));
  for (std::size_t i = 0; i < d.x.size(); ++i) d.x[i] = extreme_x ? ((i * 7 + 3) % 5 < 2 ? -3.0f : 3.0f) : nd(rng);
  d.act = is_k(t) ? k::ActFormat::Q8_K : k::ActFormat::Q8_32;
  d.xq.resize(k::activation_bytes(d.act, d.cols) / 4 + 1);
  k::quantize_activations(d.act, d.x.data(), d.cols, d.xq.data());
  return d;
}

// Dequantized activations and their block scales.
void dequantized_x(const Data& d, std::vector<float>& xd, std::vector<float>& scale) {
  xd.resize(d.x.size());
  scale.resize(d.x.size());
  if (d.act == k::ActFormat::Q8_32) {
    const auto* b = reinterpret_cast<const q::block_q8x32*>(d.xq.data());
    for (std::size_t i = 0; i < xd.size(); ++i) {
      xd[i] = b[i / 32].d * b[i / 32].qs[i % 32];
      scale[i] = b[i / 32].d;
    }
  } else {
    const auto* b = reinterpret_cast<const q::block_q8xK*>(d.xq.data());
    for (std::size_t i = 0; i < xd.size(); ++i) {
      xd[i] = b[i / 256].d * b[i / 256].qs[i % 256];
      scale[i] = b[i / 256].d;
    }
  }
}

struct Bounds {
  std::vector<double> S, wabs_dx, wx;  // per row: sum e|xq|, sum |w| d_b / 2, sum |w x|
};

Bounds bounds(DType t, const Data& d) {
  std::vector<float> xd, xs;
  dequantized_x(d, xd, xs);
  Bounds bo;
  const std::size_t bb = block_bytes(t);
  const std::int64_t nb = d.cols / block_size(t);
  std::vector<float> w(static_cast<std::size_t>(d.cols)), m(static_cast<std::size_t>(d.cols), 0.0f);
  std::vector<std::byte> row(d.w.row_bytes);
  for (std::int64_t r = 0; r < d.rows; ++r) {
    q::dequantize_row(t, d.w.row(r), w.data(), d.cols);
    if (has_min(t)) {
      std::memcpy(row.data(), d.w.row(r), d.w.row_bytes);
      for (std::int64_t i = 0; i < nb; ++i) zero_quants(t, row.data() + static_cast<std::size_t>(i) * bb);
      q::dequantize_row(t, row.data(), m.data(), d.cols);
    }
    double s = 0, a = 0, wx = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      s += (std::fabs(w[i]) + 2.0 * std::fabs(m[i])) * std::fabs(xd[i]);
      a += std::fabs(w[i]) * xs[i] / 2;
      wx += std::fabs(w[i] * d.x[i]);
    }
    bo.S.push_back(s);
    bo.wabs_dx.push_back(a);
    bo.wx.push_back(wx);
  }
  return bo;
}

template <DType T>
void check_type() {
  std::mt19937 rng(1234 + static_cast<unsigned>(T));
  const double u = std::ldexp(1.0, -24);
  const auto& ref_table = k::kernel_table(k::Isa::Scalar);
  const auto impls = simd_impls<T>();
  std::vector<std::int64_t> counts = {1, 2, 3, 4, 5, 6, 7, 8, 11, 17};
  if (!is_k(T)) counts.push_back(64 + 5);
  int checked = 0;
  for (Fill fill : {Fill::Random, Fill::AllFF, Fill::AllZero, Fill::ZeroScales}) {
    for (bool extreme_x : {false, true}) {
      for (std::int64_t nb : counts) {
        for (std::size_t misalign : {0u, 1u, 3u}) {
          const std::int64_t rows = 5;
          Data d = make(T, rows, nb, fill, extreme_x, misalign, rng);
          const Bounds bo = bounds(T, d);
          std::vector<float> ys(static_cast<std::size_t>(rows)), yr(static_cast<std::size_t>(rows));
          k::scalar::quant_dot_rows<T>(d.w, d.xq.data(), ys.data(), 0, rows);
          ref_table.dot_rows_for(T)(d.w, d.x.data(), yr.data(), 0, rows);
          for (std::int64_t r = 0; r < rows; ++r) {
            const auto ri = static_cast<std::size_t>(r);
            const double tol_q = bo.wabs_dx[ri] * (1 + 1e-5) +
                                 2.0 * static_cast<double>(d.cols + nb + 8) * u * (bo.S[ri] + bo.wx[ri]) + 1e-30;
            ASSERT_LE(std::fabs(static_cast<double>(ys[ri]) - yr[ri]), tol_q)
                << tinfer::dtype_name(T) << " scalar vs float reference, nb " << nb << " row " << r;
          }
          for (const Impl& im : impls) {
            std::vector<float> y(static_cast<std::size_t>(rows), -1.0f);
            // Also a sub-range, to check that only [r0, r1) is written.
            im.fn(d.w, d.xq.data(), y.data(), 1, rows);
            EXPECT_EQ(y[0], -1.0f);
            im.fn(d.w, d.xq.data(), y.data(), 0, 1);
            for (std::int64_t r = 0; r < rows; ++r) {
              const auto ri = static_cast<std::size_t>(r);
              const double tol = 2.0 * static_cast<double>(nb + 4) * u * bo.S[ri];
              ASSERT_LE(std::fabs(static_cast<double>(y[ri]) - ys[ri]), tol)
                  << tinfer::dtype_name(T) << " " << im.name << " vs scalar twin, nb " << nb << " row " << r << " fill "
                  << static_cast<int>(fill) << " misalign " << misalign << ": " << y[ri] << " vs " << ys[ri];
              ++checked;
            }
          }
        }
      }
    }
  }
  if (!impls.empty()) {
    EXPECT_GT(checked, 0);
  }
}

TEST(QuantDot, Q8_0) { check_type<DType::Q8_0>(); }
TEST(QuantDot, Q4_0) { check_type<DType::Q4_0>(); }
TEST(QuantDot, Q4_1) { check_type<DType::Q4_1>(); }
TEST(QuantDot, Q5_0) { check_type<DType::Q5_0>(); }
TEST(QuantDot, Q5_1) { check_type<DType::Q5_1>(); }
TEST(QuantDot, Q2_K) { check_type<DType::Q2_K>(); }
TEST(QuantDot, Q3_K) { check_type<DType::Q3_K>(); }
TEST(QuantDot, Q4_K) { check_type<DType::Q4_K>(); }
TEST(QuantDot, Q5_K) { check_type<DType::Q5_K>(); }
TEST(QuantDot, Q6_K) { check_type<DType::Q6_K>(); }

// Activation quantization: within d / 2 per element, scales amax / 127, sums consistent.
TEST(QuantDot, ActivationQuantizationBounds) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 2);
  std::vector<float> x(512);
  for (auto& v : x) v = nd(rng);
  for (int i = 0; i < 32; ++i) x[static_cast<std::size_t>(64 + i)] = 0.0f;  // an all-zero block
  std::vector<q::block_q8x32> a(16);
  k::quantize_q8x32(x.data(), a.data(), 512);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto& b = a[i / 32];
    EXPECT_LE(std::fabs(x[i] - b.d * b.qs[i % 32]), b.d / 2 * (1 + 1e-5) + 1e-30);
  }
  EXPECT_EQ(a[2].d, 0.0f);
  for (const auto& b : a) {
    int s = 0;
    for (auto v : b.qs) s += v;
    EXPECT_EQ(b.isum, s);
    EXPECT_EQ(b.s, b.d * static_cast<float>(s));
  }
  std::vector<q::block_q8xK> ak(2);
  k::quantize_q8xK(x.data(), ak.data(), 512);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto& b = ak[i / 256];
    EXPECT_LE(std::fabs(x[i] - b.d * b.qs[i % 256]), b.d / 2 * (1 + 1e-5) + 1e-30);
    EXPECT_GE(b.qs[i % 256], -127);
  }
  for (const auto& b : ak)
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += b.qs[16 * g + j];
      EXPECT_EQ(b.bsums[g], s);
    }
}

// matvec takes the quantized path for every quantized type and ISA, with and without threads,
// and agrees with that ISA's kernel called directly.
TEST(QuantDot, MatvecUsesPreparedActivations) {
  std::mt19937 rng(9);
  tinfer::ThreadPool pool(2);
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K,
                  DType::Q5_K, DType::Q6_K}) {
    for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512}) {
      const auto& tab = k::kernel_table(isa);
      const k::QuantDot qd = tab.quant_dot_for(t);
      ASSERT_NE(qd.rows, nullptr);
      Data d = make(t, 300, 8, Fill::Random, false, 0, rng);
      std::vector<float> y1(300), y2(300), y3(300);
      k::matvec(d.w, d.x.data(), y1.data(), nullptr, tab);
      k::matvec(d.w, d.x.data(), y2.data(), &pool, tab);
      qd.rows(d.w, d.xq.data(), y3.data(), 0, 300);
      for (std::size_t r = 0; r < 300; ++r) {
        EXPECT_EQ(y1[r], y3[r]) << tinfer::dtype_name(t);
        EXPECT_EQ(y2[r], y3[r]) << tinfer::dtype_name(t);
      }
    }
  }
}

}  // namespace
