// tinfer/kernels/scalar/q16_dot.hpp: scalar integer dot products of quantized weight rows with
// 16-bit quantized activations (ActFormat::Q16_32 / Q16_K, quantize_activations.hpp): the
// default path for Q8_0, Q4_0, Q4_K and Q6_K weights, and the twin of the SIMD versions, which
// give the same result bit for bit.
//
// The order every ISA implements. Per (weight row, activation row): 16 float lanes, +0 at the
// start. Per block (32 values; 256 for the K types), weight quants q (offsets applied: Q8_0 q,
// Q4_0 n - 8, Q6_K n - 32, Q4_K n times its sub-block scale sc, Q6_K q times sc) and activation
// quants a with scale dx, lane l gets the exact int32
//     P_l = sum over the block's 32-value chunks c of (q[c][2l] a[c][2l] + q[c][2l+1] a[c][2l+1])
// (for the K types each chunk's pair carries its scale: Q4_K sc_c, Q6_K sc of 16 values, i.e.
// chunk element 2l < 16 uses the first, >= 16 the second) — the pairing of vpmaddwd / vpdpwssd —
// and then lane_l = fma(float(P_l), s, lane_l) with s = float(d_w) * dx rounded once. Q4_K also
// keeps one float M = fma(float(sum_j m_j bsum_j), float(dmin) * dx, M) per super-block (exact
// integer inside). Result: reduce16(lanes) (scalar/dot_rows.hpp's tree) - M.
// int32 bounds per lane (|a| <= 32767): Q8_0 / Q4_0 2 products of |q| <= 128; Q4_K 16 of
// |sc q| <= 63 * 15; Q6_K 16 of |sc q| <= 128 * 32 (2147418112 < 2^31 - 1).
//
// Every kernel handles `nx` activation rows at once (x_j at xq + j * x_stride bytes, result
// y[j * ldy + r]); the result for one activation row does not depend on nx, so a batched product
// (matmul) equals the matrix-vector products row by row, bit for bit.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/quantize_activations.hpp"
#include "tinfer/kernels/scalar/dot_rows.hpp"

namespace tinfer::kernels {

/// y[j * ldy + r] = dot(W[r, :], x_j) for r in [r0, r1) and j in [0, nx), with x_j the 16-bit
/// quantized activations at (const std::byte*)xq + j * x_stride.
using Q16RowsFn = void (*)(const WeightView& w, const void* xq, std::size_t x_stride, int nx, float* y,
                           std::int64_t ldy, std::int64_t r0, std::int64_t r1);

/// Whether a weight type has 16-bit-activation kernels, and the activation format they take.
constexpr ActFormat q16_format(DType t) noexcept {
  switch (t) {
    case DType::Q8_0:
    case DType::Q4_0: return ActFormat::Q16_32;
    case DType::Q4_K:
    case DType::Q6_K: return ActFormat::Q16_K;
    default: return ActFormat::None;
  }
}

namespace scalar {

namespace q16detail {
template <class B>
B load(const std::byte* p) noexcept {
  B b;
  std::memcpy(&b, p, sizeof(B));
  return b;
}

/// Adds one block to the 16 lanes: lane_l = fma(float(P_l), sc, lane_l).
inline void fma16(const std::int32_t* p, float sc, float* acc) noexcept {
  for (int l = 0; l < 16; ++l) acc[l] = std::fma(static_cast<float>(p[l]), sc, acc[l]);
}

inline void block(const quant::block_q8_0& b, const quant::block_q16x32& x, float* acc, float&) noexcept {
  std::int32_t p[16];
  for (int l = 0; l < 16; ++l) p[l] = b.qs[2 * l] * x.qs[2 * l] + b.qs[2 * l + 1] * x.qs[2 * l + 1];
  fma16(p, b.d.to_float() * x.d, acc);
}
inline void block(const quant::block_q4_0& b, const quant::block_q16x32& x, float* acc, float&) noexcept {
  int q[32];
  for (int l = 0; l < 16; ++l) {
    q[l] = (b.qs[l] & 0xF) - 8;
    q[l + 16] = (b.qs[l] >> 4) - 8;
  }
  std::int32_t p[16];
  for (int l = 0; l < 16; ++l) p[l] = q[2 * l] * x.qs[2 * l] + q[2 * l + 1] * x.qs[2 * l + 1];
  fma16(p, b.d.to_float() * x.d, acc);
}
inline void block(const quant::block_q4_K& b, const quant::block_q16xK& x, float* acc, float& accm) noexcept {
  std::int32_t p[16] = {};
  std::int32_t summ = 0;
  for (int j = 0; j < 8; ++j) {
    std::uint8_t sc, m;
    quant::detail::scale_min_k4(j, b.scales, sc, m);
    const std::uint8_t* qs = b.qs + 32 * (j / 2);
    int q[32];
    for (int e = 0; e < 32; ++e) q[e] = sc * (j % 2 == 0 ? (qs[e] & 0xF) : (qs[e] >> 4));
    const std::int16_t* a = x.qs + 32 * j;
    for (int l = 0; l < 16; ++l) p[l] += q[2 * l] * a[2 * l] + q[2 * l + 1] * a[2 * l + 1];
    summ += static_cast<std::int32_t>(m) * x.bsums[j];
  }
  fma16(p, b.d.to_float() * x.d, acc);
  accm = std::fma(static_cast<float>(summ), b.dmin.to_float() * x.d, accm);
}
inline void block(const quant::block_q6_K& b, const quant::block_q16xK& x, float* acc, float&) noexcept {
  std::int32_t p[16] = {};
  for (int h = 0; h < 2; ++h) {
    const std::uint8_t* ql = b.ql + 64 * h;
    const std::uint8_t* qh = b.qh + 32 * h;
    int q[128];
    for (int l = 0; l < 32; ++l) {
      q[l] = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      q[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      q[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      q[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
    }
    for (int e = 0; e < 128; ++e) q[e] *= b.scales[8 * h + e / 16];
    for (int c = 0; c < 4; ++c) {
      const int* qc = q + 32 * c;
      const std::int16_t* a = x.qs + 128 * h + 32 * c;
      for (int l = 0; l < 16; ++l) p[l] += qc[2 * l] * a[2 * l] + qc[2 * l + 1] * a[2 * l + 1];
    }
  }
  fma16(p, b.d.to_float() * x.d, acc);
}
}  // namespace q16detail

/// The scalar Q16RowsFn of weight type T (Q8_0, Q4_0, Q4_K or Q6_K).
template <DType T>
void q16_rows(const WeightView& w, const void* xq, std::size_t x_stride, int nx, float* y, std::int64_t ldy,
              std::int64_t r0, std::int64_t r1) noexcept {
  using B = quant::block_of_t<T>;
  using A = std::conditional_t<q16_format(T) == ActFormat::Q16_K, quant::block_q16xK, quant::block_q16x32>;
  constexpr std::int64_t bs = static_cast<std::int64_t>(sizeof(B));
  const std::int64_t nb = w.cols / (q16_format(T) == ActFormat::Q16_K ? quant::kQK_K : quant::kQK);
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* row = w.row(r);
    for (int j = 0; j < nx; ++j) {
      const std::byte* xj = static_cast<const std::byte*>(xq) + static_cast<std::size_t>(j) * x_stride;
      float acc[16] = {};
      float accm = 0.0f;
      for (std::int64_t i = 0; i < nb; ++i) {
        q16detail::block(q16detail::load<B>(row + i * bs), q16detail::load<A>(xj + static_cast<std::size_t>(i) * sizeof(A)), acc, accm);
      }
      y[j * ldy + r] = reduce16(acc) - accm;
    }
  }
}

}  // namespace scalar
}  // namespace tinfer::kernels
