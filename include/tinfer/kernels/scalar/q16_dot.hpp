// tinfer/kernels/scalar/q16_dot.hpp: scalar integer dot products of quantized weight rows with
// 16-bit quantized activations (ActFormat::Q16_32 / Q16_K, quantize_activations.hpp): the
// default path for Q8_0, Q4_0, Q4_K and Q6_K weights, and the twin of the SIMD versions.
//
// Per block b, with weight quants q (offsets applied: Q8_0 q, Q4_0 n - 8, Q6_K n - 32, Q4_K n),
// activation quants a and scale dx, the integer sums are exact (int64 here; the SIMD lanes
// provably stay inside int32, see avx512/q16_dot.hpp):
//   Q8_0, Q4_0:  y += (dw * dx) * sum(q a)
//   Q4_K:        y += (d * dx) * sum_j sc_j sum_j(q a) - (dmin * dx) * sum_j m_j sum_j(a)
//   Q6_K:        y += (d * dx) * sum_g sc_g sum_g(q a)
// Only the conversion of those integers to float and the order of the float additions differ
// between this twin and the SIMD kernels.
//
// Every kernel handles `nx` activation rows at once (x_j at xq + j * x_stride bytes, result
// y[j * ldy + r]); the result for one activation row does not depend on nx, so a batched product
// (matmul) equals the matrix-vector products row by row, bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/quantize_activations.hpp"

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

inline float block(const quant::block_q8_0& b, const quant::block_q16x32& x) noexcept {
  std::int64_t s = 0;
  for (int l = 0; l < 32; ++l) s += static_cast<std::int64_t>(b.qs[l]) * x.qs[l];
  return (b.d.to_float() * x.d) * static_cast<float>(s);
}
inline float block(const quant::block_q4_0& b, const quant::block_q16x32& x) noexcept {
  std::int64_t s = 0;
  for (int l = 0; l < 16; ++l) {
    s += static_cast<std::int64_t>((b.qs[l] & 0xF) - 8) * x.qs[l];
    s += static_cast<std::int64_t>((b.qs[l] >> 4) - 8) * x.qs[l + 16];
  }
  return (b.d.to_float() * x.d) * static_cast<float>(s);
}
inline float block(const quant::block_q4_K& b, const quant::block_q16xK& x) noexcept {
  std::int64_t sumi = 0, summ = 0;
  for (int j = 0; j < 8; ++j) {
    std::uint8_t sc, m;
    quant::detail::scale_min_k4(j, b.scales, sc, m);
    const std::uint8_t* qs = b.qs + 32 * (j / 2);
    std::int64_t s = 0;
    for (int l = 0; l < 32; ++l) s += static_cast<std::int64_t>(j % 2 == 0 ? (qs[l] & 0xF) : (qs[l] >> 4)) * x.qs[32 * j + l];
    sumi += sc * s;
    summ += static_cast<std::int64_t>(m) * x.bsums[j];
  }
  return (b.d.to_float() * x.d) * static_cast<float>(sumi) - (b.dmin.to_float() * x.d) * static_cast<float>(summ);
}
inline float block(const quant::block_q6_K& b, const quant::block_q16xK& x) noexcept {
  std::int64_t sumi = 0;
  for (int h = 0; h < 2; ++h) {
    const std::uint8_t* ql = b.ql + 64 * h;
    const std::uint8_t* qh = b.qh + 32 * h;
    const std::int16_t* a = x.qs + 128 * h;
    int q[128];
    for (int l = 0; l < 32; ++l) {
      q[l] = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      q[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      q[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      q[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
    }
    for (int g = 0; g < 8; ++g) {
      std::int64_t s = 0;
      for (int l = 0; l < 16; ++l) s += static_cast<std::int64_t>(q[16 * g + l]) * a[16 * g + l];
      sumi += b.scales[8 * h + g] * s;
    }
  }
  return (b.d.to_float() * x.d) * static_cast<float>(sumi);
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
      const auto* x = reinterpret_cast<const A*>(static_cast<const std::byte*>(xq) + static_cast<std::size_t>(j) * x_stride);
      float acc = 0.0f;
      for (std::int64_t i = 0; i < nb; ++i) acc += q16detail::block(q16detail::load<B>(row + i * bs), x[i]);
      y[j * ldy + r] = acc;
    }
  }
}

}  // namespace scalar
}  // namespace tinfer::kernels
