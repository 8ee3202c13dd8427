// The 16-bit-activation path (the default for Q8_0, Q4_0, Q4_K, Q6_K) and the batched matmul.
//
// 1. The AVX2 and AVX-512 VNNI kernels against the scalar twin (scalar/q16_dot.hpp), BIT FOR BIT:
//    all of them take the same exact int32 lane sums and the same float operations in the same
//    order (the order is defined in scalar/q16_dot.hpp), for every block count, misaligned
//    weights and activations, every batch size and row sub-range.
// 2. The scalar twin against the float reference (dequantized weights times float x). The
//    activation quantization moves x_i by at most d_b / 2 = amax_b / 65534, so
//        |q16 - ref| <= sum_i |w_i| d_b / 2 (1 + 1e-5) + 2 (n + nb + 8) u (S + sum |w_i x_i|).
// 3. matmul (any batch size, with or without threads, every ISA and activation mode) equals
//    matvec row by row bit for bit: the same kernels add in the same order per row; and in the
//    default (Q16) and Float modes every ISA equals the scalar path bit for bit.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "test_assets.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/kernels/dispatch.hpp"

namespace {

namespace k = tinfer::kernels;
namespace q = tinfer::quant;
using tinfer::DType;
using tinfer::f16;

bool is_k(DType t) { return tinfer::dtype_info(t)->block_size == 256; }
std::size_t block_bytes(DType t) { return tinfer::dtype_info(t)->block_bytes; }
int block_size(DType t) { return static_cast<int>(tinfer::dtype_info(t)->block_size); }

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
  std::vector<float> x;       // nx rows of cols
  std::vector<std::byte> xq;  // nx quantized rows, stride `stride`
  std::size_t stride = 0;
  std::size_t misalign = 0;
};

Data make(DType t, std::int64_t rows, std::int64_t nblocks, int nx, Fill fill, bool extreme_x, std::size_t misalign,
          std::mt19937& rng) {
  Data d;
  d.rows = rows;
  d.misalign = misalign;
  d.cols = nblocks * block_size(t);
  const std::size_t rb = static_cast<std::size_t>(nblocks) * block_bytes(t);
  d.storage.resize(static_cast<std::size_t>(rows) * rb + 64 + misalign);
  fill_blocks(t, d.storage.data() + misalign, rows * nblocks, fill, rng);
  d.w = tinfer::WeightView::dense(t, d.storage.data() + misalign, rows, d.cols);
  std::normal_distribution<float> nd(0, 1);
  d.x.resize(static_cast<std::size_t>(d.cols * nx));
  for (std::size_t i = 0; i < d.x.size(); ++i) d.x[i] = extreme_x ? ((i * 7 + 3) % 5 < 2 ? -3.0f : 3.0f) : nd(rng);
  const k::ActFormat af = k::q16_format(t);
  d.stride = k::activation_bytes(af, d.cols) + 8 + misalign;  // an odd stride: misaligned rows
  d.xq.resize(d.stride * static_cast<std::size_t>(nx) + 64);
  for (int j = 0; j < nx; ++j) {
    k::quantize_activations(af, d.x.data() + j * d.cols, d.cols, d.xq.data() + misalign + static_cast<std::size_t>(j) * d.stride);
  }
  return d;
}

// Dequantized activations of row j, and their block scales.
void dequantized_x(DType t, const Data& d, int j, std::vector<float>& xd, std::vector<float>& scale) {
  const std::size_t n = static_cast<std::size_t>(d.cols);
  xd.resize(n);
  scale.resize(n);
  const std::byte* p = d.xq.data() + d.misalign + static_cast<std::size_t>(j) * d.stride;
  for (std::size_t i = 0; i < n; ++i) {
    if (k::q16_format(t) == k::ActFormat::Q16_32) {
      q::block_q16x32 b;
      std::memcpy(&b, p + (i / 32) * sizeof(b), sizeof(b));
      xd[i] = b.d * b.qs[i % 32];
      scale[i] = b.d;
    } else {
      q::block_q16xK b;
      std::memcpy(&b, p + (i / 256) * sizeof(b), sizeof(b));
      xd[i] = b.d * b.qs[i % 256];
      scale[i] = b.d;
    }
  }
}

struct Bounds {
  double S, wabs_dx, wx;
};

Bounds bounds(DType t, const Data& d, std::int64_t r, int j) {
  std::vector<float> xd, xs;
  dequantized_x(t, d, j, xd, xs);
  const std::size_t bb = block_bytes(t);
  const std::int64_t nb = d.cols / block_size(t);
  std::vector<float> w(static_cast<std::size_t>(d.cols)), m(static_cast<std::size_t>(d.cols), 0.0f);
  std::vector<std::byte> row(d.w.row_bytes);
  q::dequantize_row(t, d.w.row(r), w.data(), d.cols);
  if (has_min(t) && nb > 0) {  // nb == 0: an empty row (memcpy must not see a null pointer)
    std::memcpy(row.data(), d.w.row(r), d.w.row_bytes);
    for (std::int64_t i = 0; i < nb; ++i) zero_quants(t, row.data() + static_cast<std::size_t>(i) * bb);
    q::dequantize_row(t, row.data(), m.data(), d.cols);
  }
  Bounds bo{0, 0, 0};
  for (std::size_t i = 0; i < w.size(); ++i) {
    bo.S += (std::fabs(w[i]) + 2.0 * std::fabs(m[i])) * std::fabs(xd[i]);
    bo.wabs_dx += std::fabs(w[i]) * xs[i] / 2;
    bo.wx += std::fabs(w[i] * d.x[static_cast<std::size_t>(j * d.cols) + i]);
  }
  return bo;
}

template <DType T>
void check_type() {
  std::mt19937 rng(77 + static_cast<unsigned>(T));
  const double u = std::ldexp(1.0, -24);
  struct Simd {
    const char* name;
    k::Q16RowsFn fn;
  };
  std::vector<Simd> impls;
  if (k::cpu_features().avx2) impls.push_back({"avx2", k::avx2::q16_rows<T>});
  if (k::cpu_features().avx512_vnni) impls.push_back({"avx512vnni", k::avx512::q16_rows<T>});
  std::vector<std::int64_t> counts = {0, 1, 2, 3, 4, 5, 7, 8, 11, 17};
  if (!is_k(T)) counts.push_back(64 + 5);
  const auto& ref_table = k::kernel_table(k::Isa::Scalar, k::Activations::Float);
  for (Fill fill : {Fill::Random, Fill::AllFF, Fill::AllZero, Fill::ZeroScales}) {
    for (bool extreme_x : {false, true}) {
      for (std::int64_t nb : counts) {
        for (std::size_t misalign : {0u, 1u, 3u}) {
          const std::int64_t rows = 7;  // register tiles of 4 and 2 rows, then single rows
          const int nx = 6;
          Data d = make(T, rows, nb, nx, fill, extreme_x, misalign, rng);
          const std::byte* xq = d.xq.data() + misalign;
          std::vector<float> ys(static_cast<std::size_t>(rows * nx)), yr(static_cast<std::size_t>(rows));
          k::scalar::q16_rows<T>(d.w, xq, d.stride, nx, ys.data(), rows, 0, rows);
          for (int j = 0; j < nx; ++j) {
            ref_table.dot_rows_for(T)(d.w, d.x.data() + j * d.cols, yr.data(), 0, rows);
            for (std::int64_t r = 0; r < rows; ++r) {
              const Bounds bo = bounds(T, d, r, j);
              const double tol = bo.wabs_dx * (1 + 1e-5) + 2.0 * static_cast<double>(d.cols + nb + 8) * u * (bo.S + bo.wx) + 1e-30;
              const float v = ys[static_cast<std::size_t>(j * rows + r)];
              ASSERT_LE(std::fabs(static_cast<double>(v) - yr[static_cast<std::size_t>(r)]), tol)
                  << tinfer::dtype_name(T) << " scalar q16 vs float reference, nb " << nb << " row " << r << " act " << j;
            }
          }
          for (const Simd& im : impls) {
          // Every batch size 1..nx, and a sub-range of rows (only [r0, r1) is written).
          std::vector<float> y1(static_cast<std::size_t>(rows * nx), -1.0f);
          im.fn(d.w, xq, d.stride, nx, y1.data(), rows, 1, rows);
          for (int j = 0; j < nx; ++j) EXPECT_EQ(y1[static_cast<std::size_t>(j * rows)], -1.0f);
          im.fn(d.w, xq, d.stride, nx, y1.data(), rows, 0, 1);
          for (int j = 0; j < nx; ++j) {
            for (std::int64_t r = 0; r < rows; ++r) {
              const auto idx = static_cast<std::size_t>(j * rows + r);
              ASSERT_EQ(std::bit_cast<std::uint32_t>(y1[idx]), std::bit_cast<std::uint32_t>(ys[idx]))
                  << tinfer::dtype_name(T) << " " << im.name << " vs scalar twin, nb " << nb << " row " << r << " act " << j
                  << ": " << y1[idx] << " vs " << ys[idx];
            }
          }
          for (int nsub = 1; nsub < nx; ++nsub) {
            std::vector<float> y2(static_cast<std::size_t>(rows * nsub));
            im.fn(d.w, xq, d.stride, nsub, y2.data(), rows, 0, rows);
            for (std::size_t i = 0; i < y2.size(); ++i) ASSERT_EQ(std::bit_cast<std::uint32_t>(y2[i]), std::bit_cast<std::uint32_t>(y1[i])) << im.name << " batch of " << nsub;
          }
          }
        }
      }
    }
  }
}

TEST(Q16Dot, Q8_0) { check_type<DType::Q8_0>(); }
TEST(Q16Dot, Q4_0) { check_type<DType::Q4_0>(); }
TEST(Q16Dot, Q4_K) { check_type<DType::Q4_K>(); }
TEST(Q16Dot, Q6_K) { check_type<DType::Q6_K>(); }

// 16-bit activation quantization: within d / 2 per element (d = amax / 32767), plus the float
// rounding of x / d (relative u = 2^-24 of up to 32767, i.e. <= 4 u |x| with the product d q),
// sums consistent.
TEST(Q16Dot, ActivationQuantizationBounds) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 2);
  std::vector<float> x(512);
  for (auto& v : x) v = nd(rng);
  for (int i = 0; i < 32; ++i) x[static_cast<std::size_t>(64 + i)] = 0.0f;
  std::vector<q::block_q16x32> a(16);
  k::quantize_q16x32(x.data(), a.data(), 512);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto& b = a[i / 32];
    EXPECT_LE(std::fabs(x[i] - b.d * b.qs[i % 32]), b.d / 2 + 4 * std::ldexp(std::fabs(x[i]), -24) + 1e-30);
    EXPECT_GE(b.qs[i % 32], -32767);
  }
  EXPECT_EQ(a[2].d, 0.0f);
  std::vector<q::block_q16xK> ak(2);
  k::quantize_q16xK(x.data(), ak.data(), 512);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto& b = ak[i / 256];
    EXPECT_LE(std::fabs(x[i] - b.d * b.qs[i % 256]), b.d / 2 + 4 * std::ldexp(std::fabs(x[i]), -24) + 1e-30);
    EXPECT_GE(b.qs[i % 256], -32767);
  }
  for (const auto& b : ak)
    for (int g = 0; g < 8; ++g) {
      int s = 0;
      for (int j = 0; j < 32; ++j) s += b.qs[32 * g + j];
      EXPECT_EQ(b.bsums[g], s);
    }
}

// matmul equals matvec row by row, bit for bit, for every type, ISA, mode, batch size and
// thread count; and the default mode takes the 16-bit kernels for the four types.
TEST(Matmul, EqualsMatvecPerRow) {
  std::mt19937 rng(11);
  tinfer::ThreadPool pool(2);
  std::normal_distribution<float> nd(0, 1);
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q5_K,
                  DType::Q6_K}) {
    const std::int64_t rows = 203, nb = 3;
    const std::int64_t cols = nb * 256 + (tinfer::dtype_info(t)->block_size == 1 ? 7 : 0);
    const std::size_t bb = tinfer::dtype_info(t)->block_bytes, bsz = tinfer::dtype_info(t)->block_size;
    std::vector<std::byte> storage(static_cast<std::size_t>(rows * cols) / bsz * bb + 64);
    if (bsz == 1) {
      for (std::size_t i = 0; i < storage.size() / bb; ++i) {
        const float v = nd(rng) * 0.1f;
        if (t == DType::F32) std::memcpy(storage.data() + 4 * i, &v, 4);
        else {
          const std::uint16_t h = t == DType::F16 ? f16::from_float(v) : tinfer::bf16::from_float(v);
          std::memcpy(storage.data() + 2 * i, &h, 2);
        }
      }
    } else {
      fill_blocks(t, storage.data(), rows * cols / static_cast<std::int64_t>(bsz), Fill::Random, rng);
    }
    const auto w = tinfer::WeightView::dense(t, storage.data(), rows, cols);
    const std::int64_t ldx = cols + 3, ldy = rows + 5;
    std::vector<float> x(static_cast<std::size_t>(9 * ldx));
    for (auto& v : x) v = nd(rng);
    for (k::Activations act : {k::Activations::Float, k::Activations::Q8, k::Activations::Q16}) {
      for (k::Isa isa : {k::Isa::Scalar, k::Isa::Avx2, k::Isa::Avx512}) {
        const auto& tab = k::kernel_table(isa, act);
        if (act == k::Activations::Q16 && k::q16_format(t) != k::ActFormat::None) {
          EXPECT_NE(tab.q16_for(t), nullptr);
        }
        for (std::int64_t n : {1, 2, 3, 4, 5, 9}) {
          std::vector<float> ym(static_cast<std::size_t>(n * ldy), -7.0f), ymt(ym.size(), -7.0f), yv(static_cast<std::size_t>(rows));
          k::matmul(w, x.data(), n, ldx, ym.data(), ldy, nullptr, tab);
          k::matmul(w, x.data(), n, ldx, ymt.data(), ldy, &pool, tab);
          if (act != k::Activations::Q8) {
            // Default and Float modes: every ISA gives the scalar table's result bit for bit.
            std::vector<float> ysc(ym.size(), -7.0f);
            k::matmul(w, x.data(), n, ldx, ysc.data(), ldy, nullptr, k::kernel_table(k::Isa::Scalar, act));
            ASSERT_EQ(std::memcmp(ysc.data(), ym.data(), ym.size() * sizeof(float)), 0)
                << tinfer::dtype_name(t) << " isa " << k::isa_name(isa) << " differs from scalar, n " << n;
          }
          for (std::int64_t i = 0; i < n; ++i) {
            k::matvec(w, x.data() + i * ldx, yv.data(), nullptr, tab);
            for (std::int64_t r = 0; r < rows; ++r) {
              const auto idx = static_cast<std::size_t>(i * ldy + r);
              ASSERT_EQ(ym[idx], yv[static_cast<std::size_t>(r)]) << tinfer::dtype_name(t) << " n " << n << " row " << i;
              ASSERT_EQ(ymt[idx], yv[static_cast<std::size_t>(r)]) << tinfer::dtype_name(t) << " threads, n " << n;
            }
            EXPECT_EQ(ym[static_cast<std::size_t>(i * ldy + rows)], -7.0f);  // padding untouched
          }
        }
      }
    }
  }
}

// Every matrix of the quantized and half-precision reference models: matmul over 5 activation
// rows (tiles of 4 and 1) and matvec give the scalar table's result bit for bit on every ISA,
// in the default (Q16) mode.
TEST(Matmul, ReferenceModelTensorsBitIdenticalAcrossIsas) {
  for (const char* name : {"tiny-llama-Q8_0.gguf", "tiny-llama-Q4_K.gguf", "tiny-gpt2-Q6_K.gguf", "tiny-gpt2-Q4_0.gguf",
                           "tiny-gpt2-F16.gguf", "tiny-llama-Q4_0.gguf", "tiny-llama-BF16.gguf", "tiny-llama-f32.gguf"}) {
    const auto path = tinfer::testing::assets_dir() / "gguf" / name;
    TINFER_REQUIRE_FILE(path);
    const auto f = tinfer::io::GgufFile::open(path.string());
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0, 1);
    int checked = 0;
    for (const auto& t : f.tensors()) {
      if (t.dims.size() != 2) continue;
      const auto w = tinfer::WeightView::dense(t.type, f.tensor_data(t).data(), t.n_rows(), t.row_length());
      std::vector<float> x(static_cast<std::size_t>(w.cols * 5));
      for (auto& v : x) v = nd(rng);
      const auto sz = static_cast<std::size_t>(w.rows * 5);
      std::vector<float> ys(sz), ya(sz);
      k::matmul(w, x.data(), 5, w.cols, ys.data(), w.rows, nullptr, k::kernel_table(k::Isa::Scalar, k::Activations::Q16));
      for (k::Isa isa : {k::Isa::Avx2, k::Isa::Avx512}) {
        k::matmul(w, x.data(), 5, w.cols, ya.data(), w.rows, nullptr, k::kernel_table(isa, k::Activations::Q16));
        ASSERT_EQ(std::memcmp(ys.data(), ya.data(), sz * sizeof(float)), 0) << name << " " << t.name << " isa " << k::isa_name(isa);
        k::matvec(w, x.data(), ya.data(), nullptr, k::kernel_table(isa, k::Activations::Q16));
        ASSERT_EQ(std::memcmp(ys.data(), ya.data(), static_cast<std::size_t>(w.rows) * sizeof(float)), 0) << name << " " << t.name;
      }
      ++checked;
    }
    EXPECT_GT(checked, 0) << name;
  }
}

}  // namespace
