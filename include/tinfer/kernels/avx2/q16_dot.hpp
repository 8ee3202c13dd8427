// tinfer/kernels/avx2/q16_dot.hpp: AVX2 kernels of the 16-bit-activation path
// (scalar/q16_dot.hpp is the twin and defines the order of every operation; the results are
// identical bit for bit): weight quants widened to int16 (offsets applied, K types times their
// sub-block scale), vpmaddwd for pairs of int16 products. The 16 lanes of the twin are two ymm:
// lanes 0..7 from values 0..15 of each 32-value chunk, lanes 8..15 from values 16..31.
// int32 bounds: as in the twin (each lane holds the same products).
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/quantize_activations.hpp"
#include "tinfer/kernels/scalar/q16_dot.hpp"

namespace tinfer::kernels::avx2 {

#define TQ16A_TARGET __attribute__((target("avx2,fma,f16c")))

namespace q16detail {
TQ16A_TARGET inline float f16_at(const std::byte* p) noexcept {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
TQ16A_TARGET inline __m256i zx128(const void* p) noexcept {
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(static_cast<const __m128i*>(p)));
}
TQ16A_TARGET inline float hsum(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float act_d(const std::byte* a) noexcept {
  float d;
  std::memcpy(&d, a, 4);
  return d;
}
TQ16A_TARGET inline __m256i ldx(const std::byte* a, std::size_t qs_off, int off) noexcept {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + qs_off + 2 * off));
}
TQ16A_TARGET inline void fma16(__m256i plo, __m256i phi, __m256 s, __m256& lo, __m256& hi) noexcept {
  lo = _mm256_fmadd_ps(_mm256_cvtepi32_ps(plo), s, lo);
  hi = _mm256_fmadd_ps(_mm256_cvtepi32_ps(phi), s, hi);
}

/// RM weight rows from r times NX activation rows; lo/hi are lanes 0..7 / 8..15.
template <DType T, int RM, int NX>
TQ16A_TARGET inline void tile(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                              std::int64_t r) noexcept {
  using B = quant::block_of_t<T>;
  constexpr std::int64_t bs = static_cast<std::int64_t>(sizeof(B));
  constexpr bool kq = q16_format(T) == ActFormat::Q16_K;
  using A = std::conditional_t<kq, quant::block_q16xK, quant::block_q16x32>;
  constexpr std::size_t qo = offsetof(A, qs);
  const std::int64_t nb = w.cols / (kq ? quant::kQK_K : quant::kQK);
  __m256 lo[RM][NX], hi[RM][NX];
  float accm[RM][NX];
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
    lo[m][j] = hi[m][j] = _mm256_setzero_ps();
    accm[m][j] = 0.0f;
  }
  for (std::int64_t i = 0; i < nb; ++i) {
    const std::byte* xa[NX];
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) xa[j] = xq + static_cast<std::size_t>(j) * xs + static_cast<std::size_t>(i) * sizeof(A);
    _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
      const std::byte* b = w.row(r + m) + i * bs;
      // The same place in the next tile of rows: RM short interleaved streams defeat the
      // hardware prefetcher (one row at a time is a single sequential stream).
      if constexpr (RM > 1) _mm_prefetch(reinterpret_cast<const char*>(b) + RM * w.row_bytes, _MM_HINT_T0);
      if constexpr (T == DType::Q8_0 || T == DType::Q4_0) {
        __m256i w0, w1;
        if constexpr (T == DType::Q8_0) {
          const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + offsetof(B, qs)));
          w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
          w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
        } else {
          const __m256i z = zx128(b + offsetof(B, qs));
          w0 = _mm256_sub_epi16(_mm256_and_si256(z, _mm256_set1_epi16(0x0F)), _mm256_set1_epi16(8));
          w1 = _mm256_sub_epi16(_mm256_srli_epi16(z, 4), _mm256_set1_epi16(8));
        }
        const float dw = f16_at(b);
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          fma16(_mm256_madd_epi16(w0, ldx(xa[j], qo, 0)), _mm256_madd_epi16(w1, ldx(xa[j], qo, 16)),
                _mm256_set1_ps(dw * act_d(xa[j])), lo[m][j], hi[m][j]);
        }
      } else if constexpr (T == DType::Q4_K) {
        std::uint8_t sc[8], mn[8];
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; ++k) quant::detail::scale_min_k4(k, reinterpret_cast<const std::uint8_t*>(b + offsetof(B, scales)), sc[k], mn[k]);
        __m256i plo[NX], phi[NX];
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) plo[j] = phi[j] = _mm256_setzero_si256();
        const std::byte* qs = b + offsetof(B, qs);
        const __m256i m4 = _mm256_set1_epi16(0x0F);
        _Pragma("GCC unroll 8") for (int k = 0; k < 4; ++k) {
          const __m256i z0 = zx128(qs + 32 * k), z1 = zx128(qs + 32 * k + 16);
          const __m256i s0 = _mm256_set1_epi16(sc[2 * k]), s1 = _mm256_set1_epi16(sc[2 * k + 1]);
          const __m256i l0 = _mm256_mullo_epi16(_mm256_and_si256(z0, m4), s0), l1 = _mm256_mullo_epi16(_mm256_and_si256(z1, m4), s0);
          const __m256i h0 = _mm256_mullo_epi16(_mm256_srli_epi16(z0, 4), s1), h1 = _mm256_mullo_epi16(_mm256_srli_epi16(z1, 4), s1);
          _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
            const int a = 64 * k;
            plo[j] = _mm256_add_epi32(plo[j], _mm256_add_epi32(_mm256_madd_epi16(l0, ldx(xa[j], qo, a)), _mm256_madd_epi16(h0, ldx(xa[j], qo, a + 32))));
            phi[j] = _mm256_add_epi32(phi[j], _mm256_add_epi32(_mm256_madd_epi16(l1, ldx(xa[j], qo, a + 16)), _mm256_madd_epi16(h1, ldx(xa[j], qo, a + 48))));
          }
        }
        const float d = f16_at(b + offsetof(B, d)), dmin = f16_at(b + offsetof(B, dmin));
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          std::int32_t bsums[8];
          std::memcpy(bsums, xa[j] + offsetof(A, bsums), sizeof(bsums));
          std::int32_t summ = 0;
          _Pragma("GCC unroll 8") for (int k = 0; k < 8; ++k) summ += static_cast<std::int32_t>(mn[k]) * bsums[k];
          const float dx = act_d(xa[j]);
          fma16(plo[j], phi[j], _mm256_set1_ps(d * dx), lo[m][j], hi[m][j]);
          accm[m][j] = std::fma(static_cast<float>(summ), dmin * dx, accm[m][j]);
        }
      } else {
        static_assert(T == DType::Q6_K);
        const __m256i m4 = _mm256_set1_epi16(0x0F), m30 = _mm256_set1_epi16(0x30), o32 = _mm256_set1_epi16(32);
        const auto* scales = reinterpret_cast<const std::int8_t*>(b + offsetof(B, scales));
        __m256i p[2][NX];  // [half][j]: values 0..15 / 16..31 of each chunk
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) p[0][j] = p[1][j] = _mm256_setzero_si256();
        _Pragma("GCC unroll 8") for (int h = 0; h < 2; ++h) {
          _Pragma("GCC unroll 8") for (int half = 0; half < 2; ++half) {
            const __m256i ql0 = zx128(b + offsetof(B, ql) + 64 * h + 16 * half);
            const __m256i ql1 = zx128(b + offsetof(B, ql) + 64 * h + 32 + 16 * half);
            const __m256i qh = zx128(b + offsetof(B, qh) + 32 * h + 16 * half);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            q[2] = _mm256_or_si256(_mm256_srli_epi16(ql0, 4), _mm256_and_si256(qh, m30));
            q[3] = _mm256_or_si256(_mm256_srli_epi16(ql1, 4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            _Pragma("GCC unroll 8") for (int g = 0; g < 4; ++g) {
              const __m256i wq = _mm256_mullo_epi16(_mm256_sub_epi16(q[g], o32), _mm256_set1_epi16(scales[8 * h + 2 * g + half]));
              _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
                p[half][j] = _mm256_add_epi32(p[half][j], _mm256_madd_epi16(wq, ldx(xa[j], qo, 128 * h + 32 * g + 16 * half)));
              }
            }
          }
        }
        const float d = f16_at(b + offsetof(B, d));
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) fma16(p[0][j], p[1][j], _mm256_set1_ps(d * act_d(xa[j])), lo[m][j], hi[m][j]);
      }
    }
  }
  _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
    y[j * ldy + r + m] = hsum(_mm256_add_ps(lo[m][j], hi[m][j])) - accm[m][j];
  }
}

template <DType T, int NX>
TQ16A_TARGET void rows_nx(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                          std::int64_t r0, std::int64_t r1) noexcept {
  constexpr bool kq = q16_format(T) == ActFormat::Q16_K;
  constexpr int RM = kq ? 1 : NX == 1 ? 4 : NX == 2 ? 2 : 1;
  std::int64_t r = r0;
  for (; r + RM <= r1; r += RM) tile<T, RM, NX>(w, xq, xs, y, ldy, r);
  for (; r < r1; ++r) tile<T, 1, NX>(w, xq, xs, y, ldy, r);
}
}  // namespace q16detail

/// The AVX2 Q16RowsFn of weight type T (Q8_0, Q4_0, Q4_K or Q6_K).
template <DType T>
TQ16A_TARGET void q16_rows(const WeightView& w, const void* xq, std::size_t x_stride, int nx, float* y, std::int64_t ldy,
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

#undef TQ16A_TARGET

}  // namespace tinfer::kernels::avx2
