// tinfer/kernels/avx512/q16_dot.hpp: AVX-512 VNNI kernels of the 16-bit-activation path
// (scalar/q16_dot.hpp is the twin and states the arithmetic). Weight quants are widened to
// int16 (with their offsets applied and, for the K types, multiplied by the sub-block scale,
// which still fits int16) and vpdpwssd adds pairs of int16 products into int32 lanes.
//
// int32 bounds per lane (|a| <= 32767): Q8_0 / Q4_0: 2 products of |q| <= 128 per block;
// Q4_K: 16 products of |sc q| <= 63 * 15 per super-block (5e8); Q6_K: 16 products of
// |sc q| <= 128 * 32 = 4096 per super-block (2147418112 < 2^31 - 1). Each super-block's lanes
// are converted to float and scaled, then added up in float.
//
// Up to 4 activation rows per call share each decoded weight block (the register tile of
// matmul); every activation row has its own accumulators in the same order as with one row.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/quantize_activations.hpp"
#include "tinfer/kernels/scalar/q16_dot.hpp"

namespace tinfer::kernels::avx512 {

#define TQ16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

namespace q16detail {
TQ16_TARGET inline float f16_at(const std::byte* p) noexcept {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
TQ16_TARGET inline __m512i zx256(const void* p) noexcept {
  return _mm512_cvtepu8_epi16(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
}
TQ16_TARGET inline __m512i ld(const std::int16_t* p) noexcept { return _mm512_loadu_si512(p); }

template <DType T, int NX>
TQ16_TARGET void rows_nx(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                         std::int64_t r0, std::int64_t r1) noexcept {
  using B = quant::block_of_t<T>;
  constexpr std::int64_t bs = static_cast<std::int64_t>(sizeof(B));
  constexpr bool kq = q16_format(T) == ActFormat::Q16_K;
  using A = std::conditional_t<kq, quant::block_q16xK, quant::block_q16x32>;
  const std::int64_t nb = w.cols / (kq ? quant::kQK_K : quant::kQK);
  const A* x[NX];
  for (int j = 0; j < NX; ++j) x[j] = reinterpret_cast<const A*>(xq + static_cast<std::size_t>(j) * xs);
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* row = w.row(r);
    __m512 acc[NX];
    float accm[NX];
    for (int j = 0; j < NX; ++j) {
      acc[j] = _mm512_setzero_ps();
      accm[j] = 0.0f;
    }
    for (std::int64_t i = 0; i < nb; ++i) {
      const std::byte* b = row + i * bs;
      if constexpr (T == DType::Q8_0 || T == DType::Q4_0) {
        __m512i wq;
        if constexpr (T == DType::Q8_0) {
          wq = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + offsetof(B, qs))));
        } else {
          const __m256i z = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + offsetof(B, qs))));
          const __m512i n = _mm512_inserti64x4(_mm512_castsi256_si512(z), _mm256_srli_epi16(z, 4), 1);
          wq = _mm512_sub_epi16(_mm512_and_si512(n, _mm512_set1_epi16(0x0F)), _mm512_set1_epi16(8));
        }
        const float dw = f16_at(b);
        for (int j = 0; j < NX; ++j) {
          const __m512i p = _mm512_dpwssd_epi32(_mm512_setzero_si512(), wq, ld(x[j][i].qs));
          acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_set1_ps(dw * x[j][i].d), acc[j]);
        }
      } else if constexpr (T == DType::Q4_K) {
        std::uint8_t sc[8], mn[8];
        for (int k = 0; k < 8; ++k) quant::detail::scale_min_k4(k, reinterpret_cast<const std::uint8_t*>(b + offsetof(B, scales)), sc[k], mn[k]);
        __m512i p[NX];
        for (int j = 0; j < NX; ++j) p[j] = _mm512_setzero_si512();
        const std::byte* qs = b + offsetof(B, qs);
        for (int k = 0; k < 4; ++k) {
          const __m512i z = zx256(qs + 32 * k);
          const __m512i lo = _mm512_mullo_epi16(_mm512_and_si512(z, _mm512_set1_epi16(0x0F)), _mm512_set1_epi16(sc[2 * k]));
          const __m512i hi = _mm512_mullo_epi16(_mm512_srli_epi16(z, 4), _mm512_set1_epi16(sc[2 * k + 1]));
          for (int j = 0; j < NX; ++j) {
            p[j] = _mm512_dpwssd_epi32(p[j], lo, ld(x[j][i].qs + 64 * k));
            p[j] = _mm512_dpwssd_epi32(p[j], hi, ld(x[j][i].qs + 64 * k + 32));
          }
        }
        const float d = f16_at(b + offsetof(B, d)), dmin = f16_at(b + offsetof(B, dmin));
        for (int j = 0; j < NX; ++j) {
          std::int64_t summ = 0;
          for (int k = 0; k < 8; ++k) summ += static_cast<std::int64_t>(mn[k]) * x[j][i].bsums[k];
          acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[j]), _mm512_set1_ps(d * x[j][i].d), acc[j]);
          accm[j] += (dmin * x[j][i].d) * static_cast<float>(summ);
        }
      } else {
        static_assert(T == DType::Q6_K);
        __m512i p[NX];
        for (int j = 0; j < NX; ++j) p[j] = _mm512_setzero_si512();
        const __m512i m4 = _mm512_set1_epi16(0x0F), m30 = _mm512_set1_epi16(0x30), o32 = _mm512_set1_epi16(32);
        for (int h = 0; h < 2; ++h) {
          const __m512i ql0 = zx256(b + offsetof(B, ql) + 64 * h);
          const __m512i ql1 = zx256(b + offsetof(B, ql) + 64 * h + 32);
          const __m512i qh = zx256(b + offsetof(B, qh) + 32 * h);
          std::int64_t s8;
          std::memcpy(&s8, b + offsetof(B, scales) + 8 * h, 8);
          const __m512i sc = _mm512_castsi128_si512(_mm_cvtepi8_epi16(_mm_cvtsi64_si128(s8)));
          __m512i q[4];
          q[0] = _mm512_or_si512(_mm512_and_si512(ql0, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 4), m30));
          q[1] = _mm512_or_si512(_mm512_and_si512(ql1, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 2), m30));
          q[2] = _mm512_or_si512(_mm512_srli_epi16(ql0, 4), _mm512_and_si512(qh, m30));
          q[3] = _mm512_or_si512(_mm512_srli_epi16(ql1, 4), _mm512_and_si512(_mm512_srli_epi16(qh, 2), m30));
          for (int g = 0; g < 4; ++g) {
            // Words 0..15 take scale 2g, words 16..31 scale 2g + 1.
            const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi16(static_cast<short>(2 * g)),
                                                   _mm256_set1_epi16(static_cast<short>(2 * g + 1)), 1);
            const __m512i wq = _mm512_mullo_epi16(_mm512_sub_epi16(q[g], o32), _mm512_permutexvar_epi16(idx, sc));
            for (int j = 0; j < NX; ++j) p[j] = _mm512_dpwssd_epi32(p[j], wq, ld(x[j][i].qs + 128 * h + 32 * g));
          }
        }
        const float d = f16_at(b + offsetof(B, d));
        for (int j = 0; j < NX; ++j) acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[j]), _mm512_set1_ps(d * x[j][i].d), acc[j]);
      }
    }
    for (int j = 0; j < NX; ++j) y[j * ldy + r] = _mm512_reduce_add_ps(acc[j]) - accm[j];
  }
}
}  // namespace q16detail

/// The AVX-512 VNNI Q16RowsFn of weight type T (Q8_0, Q4_0, Q4_K or Q6_K); nx in [0, 4] per
/// call is fastest (larger nx loops over groups of 4).
template <DType T>
TQ16_TARGET void q16_rows(const WeightView& w, const void* xq, std::size_t x_stride, int nx, float* y, std::int64_t ldy,
                          std::int64_t r0, std::int64_t r1) noexcept {
  const auto* x = static_cast<const std::byte*>(xq);
  for (int j = 0; j < nx; j += 4) {
    const std::byte* xj = x + static_cast<std::size_t>(j) * x_stride;
    float* yj = y + j * ldy;
    switch (nx - j) {
      case 1: q16detail::rows_nx<T, 1>(w, xj, x_stride, yj, ldy, r0, r1); break;
      case 2: q16detail::rows_nx<T, 2>(w, xj, x_stride, yj, ldy, r0, r1); break;
      case 3: q16detail::rows_nx<T, 3>(w, xj, x_stride, yj, ldy, r0, r1); break;
      default: q16detail::rows_nx<T, 4>(w, xj, x_stride, yj, ldy, r0, r1); break;
    }
  }
}

#undef TQ16_TARGET

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
