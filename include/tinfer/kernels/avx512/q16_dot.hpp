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

/// Q4_K's eight 6-bit scales and mins (12 packed bytes) as 8 bytes each, little-endian in a
/// uint64: the bit layout of scale_min_k4 with 32-bit word operations.
inline void k4_scales(const std::byte* q, std::uint64_t& sc, std::uint64_t& mn) noexcept {
  std::uint32_t u0, u1, u2;
  std::memcpy(&u0, q, 4);
  std::memcpy(&u1, q + 4, 4);
  std::memcpy(&u2, q + 8, 4);
  const std::uint32_t s_lo = u0 & 0x3f3f3f3fu, m_lo = u1 & 0x3f3f3f3fu;
  const std::uint32_t s_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
  const std::uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
  sc = s_lo | (static_cast<std::uint64_t>(s_hi) << 32);
  mn = m_lo | (static_cast<std::uint64_t>(m_hi) << 32);
}

// One Q8_0 / Q4_0 block i into the accumulators acc[0..NX).
template <DType T, int NX, class A>
TQ16_TARGET inline __attribute__((always_inline)) void block32(const std::byte* b, const A* const* x, std::int64_t i,
                                                               __m512* acc) noexcept {
  using B = quant::block_of_t<T>;
  __m512i wq;
  if constexpr (T == DType::Q8_0) {
    wq = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + offsetof(B, qs))));
  } else {
    const __m256i z = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + offsetof(B, qs))));
    const __m512i n = _mm512_inserti64x4(_mm512_castsi256_si512(z), _mm256_srli_epi16(z, 4), 1);
    wq = _mm512_sub_epi16(_mm512_and_si512(n, _mm512_set1_epi16(0x0F)), _mm512_set1_epi16(8));
  }
  // dw broadcast to all lanes straight from its f16 bits (no scalar round trip).
  std::uint16_t dh;
  std::memcpy(&dh, b, 2);
  const __m512 dw = _mm512_cvtph_ps(_mm256_set1_epi16(static_cast<short>(dh)));
  _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
    const __m512i p = _mm512_dpwssd_epi32(_mm512_setzero_si512(), wq, ld(x[j][i].qs));
    acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_set1_ps(x[j][i].d)), acc[j]);
  }
}

template <DType T, int NX>
TQ16_TARGET void rows_nx(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                         std::int64_t r0, std::int64_t r1) noexcept {
  using B = quant::block_of_t<T>;
  constexpr std::int64_t bs = static_cast<std::int64_t>(sizeof(B));
  constexpr bool kq = q16_format(T) == ActFormat::Q16_K;
  using A = std::conditional_t<kq, quant::block_q16xK, quant::block_q16x32>;
  const std::int64_t nb = w.cols / (kq ? quant::kQK_K : quant::kQK);
  const A* x[NX];
  _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) x[j] = reinterpret_cast<const A*>(xq + static_cast<std::size_t>(j) * xs);
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* row = w.row(r);
    if constexpr (!kq) {
      // Two accumulators per activation row (even / odd blocks): the FMA latency, not the
      // loads, would otherwise bound one-row decoding.
      __m512 acc0[NX], acc1[NX];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc0[j] = acc1[j] = _mm512_setzero_ps();
      std::int64_t i = 0;
      for (; i + 2 <= nb; i += 2) {
        block32<T, NX>(row + i * bs, x, i, acc0);
        block32<T, NX>(row + (i + 1) * bs, x, i + 1, acc1);
      }
      if (i < nb) block32<T, NX>(row + i * bs, x, i, acc0);
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) y[j * ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[j], acc1[j]));
    } else {
    __m512 acc[NX];
    __m256 accm[NX];
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
      acc[j] = _mm512_setzero_ps();
      accm[j] = _mm256_setzero_ps();
    }
    for (std::int64_t i = 0; i < nb; ++i) {
      const std::byte* b = row + i * bs;
      if constexpr (T == DType::Q4_K) {
        std::uint64_t sc64, mn64;
        k4_scales(b + offsetof(B, scales), sc64, mn64);
        const __m512i scw = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc64))));
        const __m256 mf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(mn64))));
        __m512i p[NX];
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) p[j] = _mm512_setzero_si512();
        const std::byte* qs = b + offsetof(B, qs);
        _Pragma("GCC unroll 8") for (int k = 0; k < 4; ++k) {
          const __m512i z = zx256(qs + 32 * k);
          const __m512i lo = _mm512_mullo_epi16(_mm512_and_si512(z, _mm512_set1_epi16(0x0F)),
                                                _mm512_permutexvar_epi16(_mm512_set1_epi16(static_cast<short>(2 * k)), scw));
          const __m512i hi = _mm512_mullo_epi16(_mm512_srli_epi16(z, 4),
                                                _mm512_permutexvar_epi16(_mm512_set1_epi16(static_cast<short>(2 * k + 1)), scw));
          _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
            // Each sub-block pair's products are summed on their own, then added: short
            // dependency chains (vpdpwssd has a latency of several cycles).
            const __m512i t = _mm512_dpwssd_epi32(_mm512_madd_epi16(lo, ld(x[j][i].qs + 64 * k)), hi, ld(x[j][i].qs + 64 * k + 32));
            p[j] = _mm512_add_epi32(p[j], t);
          }
        }
        const float d = f16_at(b + offsetof(B, d)), dmin = f16_at(b + offsetof(B, dmin));
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[j]), _mm512_set1_ps(d * x[j][i].d), acc[j]);
          // mins: m_k * sum_k(a) in float lanes (exact up to rounding; |sum_k(a)| < 2^24).
          const __m256 bs_f = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[j][i].bsums)));
          accm[j] = _mm256_fmadd_ps(_mm256_mul_ps(mf, bs_f), _mm256_set1_ps(dmin * x[j][i].d), accm[j]);
        }
      } else {
        static_assert(T == DType::Q6_K);
        __m512i p[NX];
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) p[j] = _mm512_setzero_si512();
        const __m512i m4 = _mm512_set1_epi16(0x0F), m30 = _mm512_set1_epi16(0x30), o32 = _mm512_set1_epi16(32);
        _Pragma("GCC unroll 8") for (int h = 0; h < 2; ++h) {
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
          __m512i wq[4];
          _Pragma("GCC unroll 8") for (int g = 0; g < 4; ++g) {
            // Words 0..15 take scale 2g, words 16..31 scale 2g + 1.
            const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi16(static_cast<short>(2 * g)),
                                                   _mm256_set1_epi16(static_cast<short>(2 * g + 1)), 1);
            wq[g] = _mm512_mullo_epi16(_mm512_sub_epi16(q[g], o32), _mm512_permutexvar_epi16(idx, sc));
          }
          _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
            const std::int16_t* a = x[j][i].qs + 128 * h;
            const __m512i t0 = _mm512_dpwssd_epi32(_mm512_madd_epi16(wq[0], ld(a)), wq[1], ld(a + 32));
            const __m512i t1 = _mm512_dpwssd_epi32(_mm512_madd_epi16(wq[2], ld(a + 64)), wq[3], ld(a + 96));
            p[j] = _mm512_add_epi32(p[j], _mm512_add_epi32(t0, t1));
          }
        }
        const float d = f16_at(b + offsetof(B, d));
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[j]), _mm512_set1_ps(d * x[j][i].d), acc[j]);
      }
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
      const __m128 m = _mm_add_ps(_mm256_castps256_ps128(accm[j]), _mm256_extractf128_ps(accm[j], 1));
      const __m128 m2 = _mm_add_ps(m, _mm_movehl_ps(m, m));
      y[j * ldy + r] = _mm512_reduce_add_ps(acc[j]) - _mm_cvtss_f32(_mm_add_ss(m2, _mm_movehdup_ps(m2)));
    }
    }
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
