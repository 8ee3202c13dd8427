// tinfer/kernels/scalar/quant_dot.hpp: scalar integer dot products of quantized weight rows with
// 8-bit quantized activations (quantize_activations.hpp). The twins of the SIMD kernels: the
// same integer sums per block (exact), times the same scales; only the order in which the
// float products are added differs in the SIMD versions.
//
// Per block / super-block b, with weight quants q, activation quants a, activation scale dx:
//   Q8_0, Q4_0, Q5_0:  y += (dw * dx) * sum(q a)
//   Q4_1, Q5_1:        y += (dw * dx) * sum(q a) + m * s          (s = dx * sum(a))
//   Q4_K, Q5_K, Q2_K:  y += (d * dx) * sum_j sc_j sum(q a) - (dmin * dx) * sum_j m_j sum_j(a)
//   Q6_K, Q3_K:        y += (d * dx) * sum_j sc_j sum(q a)        (q signed)
#pragma once

#include <cstdint>
#include <cstring>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/quantize_activations.hpp"

namespace tinfer::kernels::scalar {

namespace qdetail {
template <class B>
B load_block(const std::byte* p) noexcept {
  B b;
  std::memcpy(&b, p, sizeof(B));
  return b;
}

// Weight quants of one legacy block (signed for *_0, unsigned for *_1).
inline void unpack(const quant::block_q4_0& b, int* q) noexcept {
  for (int j = 0; j < 16; ++j) {
    q[j] = (b.qs[j] & 0xF) - 8;
    q[j + 16] = (b.qs[j] >> 4) - 8;
  }
}
inline void unpack(const quant::block_q4_1& b, int* q) noexcept {
  for (int j = 0; j < 16; ++j) {
    q[j] = b.qs[j] & 0xF;
    q[j + 16] = b.qs[j] >> 4;
  }
}
inline void unpack(const quant::block_q5_0& b, int* q) noexcept {
  const std::uint32_t qh = quant::detail::load_u32_le(b.qh);
  for (int j = 0; j < 16; ++j) {
    q[j] = ((b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4)) - 16;
    q[j + 16] = ((b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4)) - 16;
  }
}
inline void unpack(const quant::block_q5_1& b, int* q) noexcept {
  const std::uint32_t qh = quant::detail::load_u32_le(b.qh);
  for (int j = 0; j < 16; ++j) {
    q[j] = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
    q[j + 16] = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
  }
}
inline void unpack(const quant::block_q8_0& b, int* q) noexcept {
  for (int j = 0; j < 32; ++j) q[j] = b.qs[j];
}

template <class B>
constexpr bool has_min() {
  return std::is_same_v<B, quant::block_q4_1> || std::is_same_v<B, quant::block_q5_1>;
}

inline int dot16(const int* q, const std::int8_t* a) noexcept {
  int s = 0;
  for (int l = 0; l < 16; ++l) s += q[l] * a[l];
  return s;
}
}  // namespace qdetail

/// One legacy block: (dw * dx) * sum(q a) [+ m * s], and the integer sum.
template <class B>
float dot_block(const B& b, const quant::block_q8x32& x) noexcept {
  int q[32];
  qdetail::unpack(b, q);
  int isum = 0;
  for (int j = 0; j < 32; ++j) isum += q[j] * x.qs[j];
  float r = (b.d.to_float() * x.d) * static_cast<float>(isum);
  if constexpr (qdetail::has_min<B>()) r += b.m.to_float() * x.s;
  return r;
}

/// Integer parts of one K super-block: sumi = sum_j sc_j sum(q a), summ = sum_j m_j sum_j(a).
inline void dot_kblock(const quant::block_q4_K& b, const quant::block_q8xK& x, int& sumi, int& summ) noexcept {
  sumi = summ = 0;
  for (int j = 0; j < 8; ++j) {
    std::uint8_t sc, m;
    quant::detail::scale_min_k4(j, b.scales, sc, m);
    const std::uint8_t* qs = b.qs + 32 * (j / 2);
    int s = 0;
    for (int l = 0; l < 32; ++l) s += ((j % 2 == 0) ? (qs[l] & 0xF) : (qs[l] >> 4)) * x.qs[32 * j + l];
    sumi += sc * s;
    summ += m * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
  }
}
inline void dot_kblock(const quant::block_q5_K& b, const quant::block_q8xK& x, int& sumi, int& summ) noexcept {
  sumi = summ = 0;
  for (int j = 0; j < 8; ++j) {
    std::uint8_t sc, m;
    quant::detail::scale_min_k4(j, b.scales, sc, m);
    const std::uint8_t* qs = b.qs + 32 * (j / 2);
    int s = 0;
    for (int l = 0; l < 32; ++l) {
      const int lo = (j % 2 == 0) ? (qs[l] & 0xF) : (qs[l] >> 4);
      const int hi = (b.qh[l] >> j) & 1;
      s += (lo | (hi << 4)) * x.qs[32 * j + l];
    }
    sumi += sc * s;
    summ += m * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
  }
}
inline void dot_kblock(const quant::block_q6_K& b, const quant::block_q8xK& x, int& sumi, int& summ) noexcept {
  sumi = summ = 0;
  for (int h = 0; h < 2; ++h) {
    const std::uint8_t* ql = b.ql + 64 * h;
    const std::uint8_t* qh = b.qh + 32 * h;
    const std::int8_t* a = x.qs + 128 * h;
    int q[128];
    for (int l = 0; l < 32; ++l) {
      q[l] = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      q[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      q[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      q[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
    }
    for (int g = 0; g < 8; ++g) sumi += b.scales[8 * h + g] * qdetail::dot16(q + 16 * g, a + 16 * g);
  }
}
inline void dot_kblock(const quant::block_q2_K& b, const quant::block_q8xK& x, int& sumi, int& summ) noexcept {
  sumi = summ = 0;
  for (int i = 0; i < 16; ++i) {
    // Sub-block i: half i / 8, shift 2 * ((i % 8) / 2), bytes 16 * (i % 2) .. + 15.
    const std::uint8_t* q = b.qs + 32 * (i / 8) + 16 * (i % 2);
    const int shift = 2 * ((i % 8) / 2);
    int qv[16];
    for (int l = 0; l < 16; ++l) qv[l] = (q[l] >> shift) & 3;
    sumi += (b.scales[i] & 0xF) * qdetail::dot16(qv, x.qs + 16 * i);
    summ += (b.scales[i] >> 4) * x.bsums[i];
  }
}
inline void dot_kblock(const quant::block_q3_K& b, const quant::block_q8xK& x, int& sumi, int& summ) noexcept {
  sumi = summ = 0;
  int scales[16];
  quant::detail::unpack_q3_k_scales(b.scales, scales);
  for (int i = 0; i < 16; ++i) {
    const int half = i / 8, shift = 2 * ((i % 8) / 2), off = 16 * (i % 2);
    const std::uint8_t* q = b.qs + 32 * half + off;
    const std::uint8_t m = static_cast<std::uint8_t>(1u << (4 * half + shift / 2));
    int qv[16];
    for (int l = 0; l < 16; ++l) qv[l] = ((q[l] >> shift) & 3) - ((b.hmask[off + l] & m) ? 0 : 4);
    sumi += scales[i] * qdetail::dot16(qv, x.qs + 16 * i);
  }
}

template <class B>
float dot_block(const B& b, const quant::block_q8xK& x) noexcept {
  int sumi, summ;
  dot_kblock(b, x, sumi, summ);
  float r = (b.d.to_float() * x.d) * static_cast<float>(sumi);
  if constexpr (requires { b.dmin; }) r -= (b.dmin.to_float() * x.d) * static_cast<float>(summ);
  return r;
}

/// y[r] = sum over blocks of dot_block(row r's block, activation block), for r in [r0, r1).
template <DType T>
void quant_dot_rows(const WeightView& w, const void* xq, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  using B = quant::block_of_t<T>;
  constexpr bool k = sizeof(B) > 40;
  using A = std::conditional_t<k, quant::block_q8xK, quant::block_q8x32>;
  const auto* x = static_cast<const A*>(xq);
  const std::int64_t nb = w.cols / (k ? quant::kQK_K : quant::kQK);
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* row = w.row(r);
    float acc = 0.0f;
    for (std::int64_t i = 0; i < nb; ++i) acc += dot_block(qdetail::load_block<B>(row + i * static_cast<std::int64_t>(sizeof(B))), x[i]);
    y[r] = acc;
  }
}

}  // namespace tinfer::kernels::scalar
