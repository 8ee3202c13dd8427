// tinfer/kernels/avx512/q16_dot.hpp: AVX-512 VNNI kernels of the 16-bit-activation path
// (scalar/q16_dot.hpp is the twin and defines the order of every operation; the results are
// identical bit for bit). Weight quants are widened to int16 (with their offsets applied and,
// for the K types, multiplied by the sub-block scale, which still fits int16) and vpdpwssd adds
// each pair of int16 products into its int32 lane: the 16 lanes of one zmm are the 16 lanes of
// the scalar twin.
//
// Register tiles: Q8_0 / Q4_0 take RM weight rows times up to 4 activation rows at once (each
// decoded weight block used for every activation row, each activation block for every weight
// row; RM independent accumulation chains also hide the FMA latency when decoding one token);
// the K types one row times up to 4 activation rows. Every (row, activation row) keeps its own
// lanes in the same order for any tile shape.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/avx2/quantize_activations.hpp"
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

/// The 16-lane reduction of scalar::reduce16.
TQ16_TARGET inline float reduce16(__m512 v) noexcept {
  const __m256 t8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
/// 32 activation quants of super-block `a` from index `off`.
TQ16_TARGET inline __m512i xqs(const std::byte* a, int off) noexcept {
  return _mm512_loadu_si512(a + offsetof(quant::block_q16xK, qs) + 2 * off);
}
/// The float scale of an activation block (read with memcpy: blocks may be misaligned).
inline float act_d(const std::byte* a) noexcept {
  float d;
  std::memcpy(&d, a, 4);
  return d;
}

/// The 32 quants of a Q8_0 / Q4_0 block as int16, in element order (offset applied).
template <DType T>
TQ16_TARGET inline __m512i unpack32(const std::byte* b) noexcept {
  using B = quant::block_of_t<T>;
  if constexpr (T == DType::Q8_0) {
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + offsetof(B, qs))));
  } else {
    // The 16 bytes twice, widened: words 0..15 and 16..31 both hold qs[0..15]; shifting the
    // upper half by 4 gives the high nibbles (values 16..31) in place.
    const __m256i q2 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + offsetof(B, qs))));
    const __m512i sh = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    const __m512i n = _mm512_srlv_epi16(_mm512_cvtepu8_epi16(q2), sh);
    return _mm512_sub_epi16(_mm512_and_si512(n, _mm512_set1_epi16(0x0F)), _mm512_set1_epi16(8));
  }
}

/// Q8_0 / Q4_0: rows r..r+RM times activation rows 0..NX.
template <DType T, int RM, int NX>
TQ16_TARGET inline void tile32(const WeightView& w, const std::byte* xq, std::size_t xs, std::int64_t nb, float* y,
                               std::int64_t ldy, std::int64_t r) noexcept {
  using B = quant::block_of_t<T>;
  using A = quant::block_q16x32;
  constexpr std::int64_t bs = static_cast<std::int64_t>(sizeof(B));
  const std::byte* row[RM];
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) row[m] = w.row(r + m);
  const std::int64_t pf = RM * static_cast<std::int64_t>(w.row_bytes);
  __m512 acc[RM][NX];
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[m][j] = _mm512_setzero_ps();
  for (std::int64_t i = 0; i < nb; ++i) {
    __m512i wq[RM];
    __m512 dw[RM];
    _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
      const std::byte* b = row[m] + i * bs;
      // The same place in the next tile of rows: RM short interleaved streams defeat the
      // hardware prefetcher (rows are contiguous, one row at a time is a single stream).
      if constexpr (RM > 1) _mm_prefetch(reinterpret_cast<const char*>(b) + pf, _MM_HINT_T0);
      wq[m] = unpack32<T>(b);
      std::uint16_t dh;
      std::memcpy(&dh, b, 2);
      dw[m] = _mm512_cvtph_ps(_mm256_set1_epi16(static_cast<short>(dh)));  // f16 -> float, exact
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
      const std::byte* a = xq + static_cast<std::size_t>(j) * xs + static_cast<std::size_t>(i) * sizeof(A);
      const __m512i xv = _mm512_loadu_si512(a + offsetof(A, qs));
      const __m512 dx = _mm512_set1_ps(act_d(a));
      _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
        const __m512i p = _mm512_dpwssd_epi32(_mm512_setzero_si512(), wq[m], xv);
        acc[m][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[m], dx), acc[m][j]);
      }
    }
  }
  _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) y[j * ldy + r + m] = reduce16(acc[m][j]);
}

template <DType T, int NX>
TQ16_TARGET void rows32(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                        std::int64_t r0, std::int64_t r1) noexcept {
  const std::int64_t nb = w.cols / quant::kQK;
  std::int64_t r = r0;
  constexpr int RM = 4;
  for (; r + RM <= r1; r += RM) tile32<T, RM, NX>(w, xq, xs, nb, y, ldy, r);
  for (; r < r1; ++r) tile32<T, 1, NX>(w, xq, xs, nb, y, ldy, r);
}

/// The K types: one row at a time times NX activation rows.
template <DType T, int NX>
TQ16_TARGET void rows_k(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                        std::int64_t r0, std::int64_t r1) noexcept {
  using B = quant::block_of_t<T>;
  constexpr std::int64_t bs = static_cast<std::int64_t>(sizeof(B));
  using A = quant::block_q16xK;
  const std::int64_t nb = w.cols / quant::kQK_K;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* row = w.row(r);
    __m512 acc[NX];
    float accm[NX];
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
      acc[j] = _mm512_setzero_ps();
      accm[j] = 0.0f;
    }
    for (std::int64_t i = 0; i < nb; ++i) {
      const std::byte* b = row + i * bs;
      const std::byte* xa[NX];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) xa[j] = xq + static_cast<std::size_t>(j) * xs + static_cast<std::size_t>(i) * sizeof(A);
      if constexpr (T == DType::Q4_K) {
        std::uint64_t sc64, mn64;
        k4_scales(b + offsetof(B, scales), sc64, mn64);
        const __m512i scw = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc64))));
        const __m256i mi = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(mn64)));
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
            // Exact int32 sums: the order of the integer additions does not matter.
            const __m512i t = _mm512_dpwssd_epi32(_mm512_madd_epi16(lo, xqs(xa[j], 64 * k)), hi, xqs(xa[j], 64 * k + 32));
            p[j] = _mm512_add_epi32(p[j], t);
          }
        }
        const float d = f16_at(b + offsetof(B, d)), dmin = f16_at(b + offsetof(B, dmin));
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          const float dx = act_d(xa[j]);
          acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[j]), _mm512_set1_ps(d * dx), acc[j]);
          const __m256i bsum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa[j] + offsetof(A, bsums)));
          const std::int32_t summ = avx2::qadetail::sum8(  // AVX2 code, inlined here
              _mm256_mullo_epi32(mi, bsum));
          accm[j] = std::fma(static_cast<float>(summ), dmin * dx, accm[j]);
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
            const int a = 128 * h;
            const __m512i t0 = _mm512_dpwssd_epi32(_mm512_madd_epi16(wq[0], xqs(xa[j], a)), wq[1], xqs(xa[j], a + 32));
            const __m512i t1 = _mm512_dpwssd_epi32(_mm512_madd_epi16(wq[2], xqs(xa[j], a + 64)), wq[3], xqs(xa[j], a + 96));
            p[j] = _mm512_add_epi32(p[j], _mm512_add_epi32(t0, t1));
          }
        }
        const float d = f16_at(b + offsetof(B, d));
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[j]), _mm512_set1_ps(d * act_d(xa[j])), acc[j]);
      }
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) y[j * ldy + r] = reduce16(acc[j]) - accm[j];
  }
}

template <DType T, int NX>
TQ16_TARGET void rows_any(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                          std::int64_t r0, std::int64_t r1) noexcept {
  if constexpr (q16_format(T) == ActFormat::Q16_K) rows_k<T, NX>(w, xq, xs, y, ldy, r0, r1);
  else rows32<T, NX>(w, xq, xs, y, ldy, r0, r1);
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
      case 1: q16detail::rows_any<T, 1>(w, xj, x_stride, yj, ldy, r0, r1); break;
      case 2: q16detail::rows_any<T, 2>(w, xj, x_stride, yj, ldy, r0, r1); break;
      case 3: q16detail::rows_any<T, 3>(w, xj, x_stride, yj, ldy, r0, r1); break;
      default: q16detail::rows_any<T, 4>(w, xj, x_stride, yj, ldy, r0, r1); break;
    }
  }
}

#undef TQ16_TARGET

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
