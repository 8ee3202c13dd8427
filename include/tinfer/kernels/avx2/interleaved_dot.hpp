// tinfer/kernels/avx2/interleaved_dot.hpp: AVX2 kernels of interleaved Q8_0 / Q4_0
// weights (kernels/interleave.hpp: layout and order of operations) with 16-bit activations. One
// ymm lane per weight row, a 16-row group as two halves of 8: for each pair of columns, one
// register of 8 rows' int16 pairs, and one vpmaddwd + vpaddd per activation row with that row's
// pair broadcast (plain AVX2, so any AVX2 CPU runs it). The
// block's integer sums are exact, so splitting them over several chains changes nothing; the
// float steps are lane-wise exactly those of the scalar twin.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/interleave.hpp"
#include "tinfer/kernels/quantize_activations.hpp"

namespace tinfer::kernels::avx2 {

#define TQI_TARGET __attribute__((target("avx2,fma,f16c")))

namespace qidetail {
/// Pair k of a group block's quants (`q` = the block past its 32 bytes of scales) for rows
/// 8h .. 8h + 7: lane r = value 2k (low word) and 2k + 1 (high word), as int16 (Q4_0: 0..15).
template <DType T>
TQI_TARGET inline __m256i pair(const std::byte* q, int k, int h) noexcept {
  if constexpr (T == DType::Q8_0) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 32 * k + 16 * h)));
  } else {
    const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 16 * k + 8 * h)));
    // (b | b << 12) & 0x000F000F: the low nibble in word 0, the high nibble in word 1.
    return _mm256_and_si256(_mm256_or_si256(b, _mm256_slli_epi32(b, 12)), _mm256_set1_epi32(0x000F000F));
  }
}

TQI_TARGET inline std::int32_t load_i32(const std::byte* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

/// Groups [g0, g1) times NX activation rows, each group as two halves of 8 rows; C independent
/// integer chains per activation row when NX is small.
template <DType T, int NX>
TQI_TARGET void groups(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                       std::int64_t g0, std::int64_t g1) noexcept {
  using A = quant::block_q16x32;
  constexpr std::size_t bs = T == DType::Q8_0 ? sizeof(quant::block_q8_0) : sizeof(quant::block_q4_0);
  constexpr std::size_t gb = static_cast<std::size_t>(kInterleave) * bs;
  constexpr int C = NX == 1 ? 2 : 1;
  const std::int64_t nb = w.cols / quant::kQK;
  for (std::int64_t g = g0; g < g1; ++g) {
    const std::byte* grp = w.data + static_cast<std::size_t>(g * kInterleave) * w.row_bytes;
    for (int h = 0; h < 2; ++h) {
      __m256 acc[NX];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[j] = _mm256_setzero_ps();
      for (std::int64_t b = 0; b < nb; ++b) {
        const std::byte* blk = grp + static_cast<std::size_t>(b) * gb;
        const std::byte* a[NX];
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) a[j] = xq + static_cast<std::size_t>(j) * xs + static_cast<std::size_t>(b) * sizeof(A);
        __m256i p[NX][C];
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          // Q4_0's offset: sum (n - 8) a = sum n a - 8 sum a, exact in int32.
          p[j][0] = T == DType::Q4_0 ? _mm256_set1_epi32(-8 * load_i32(a[j] + offsetof(A, sum))) : _mm256_setzero_si256();
          _Pragma("GCC unroll 4") for (int c = 1; c < C; ++c) p[j][c] = _mm256_setzero_si256();
        }
        const std::byte* q = blk + 32;
        _Pragma("GCC unroll 16") for (int k = 0; k < 16; ++k) {
          const __m256i wk = pair<T>(q, k, h);
          _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
            const __m256i xa = _mm256_set1_epi32(load_i32(a[j] + offsetof(A, qs) + 4 * k));
            p[j][k % C] = _mm256_add_epi32(p[j][k % C], _mm256_madd_epi16(wk, xa));
          }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * h)));
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          __m256i s = p[j][0];
          _Pragma("GCC unroll 4") for (int c = 1; c < C; ++c) s = _mm256_add_epi32(s, p[j][c]);
          float dx;
          std::memcpy(&dx, a[j] + offsetof(A, d), 4);
          acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(dx)), acc[j]);
        }
      }
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _mm256_storeu_ps(y + j * ldy + g * kInterleave + 8 * h, acc[j]);
    }
  }
}

/// Q4_K: groups [g0, g1) times NX activation rows, each group as two halves of 8 rows (the
/// order of kernels/interleave.hpp; the AVX-512 kernel's steps on 8 lanes).
template <int NX>
TQI_TARGET void groups_k(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                         std::int64_t g0, std::int64_t g1) noexcept {
  using A = quant::block_q16xK;
  constexpr std::size_t gb = static_cast<std::size_t>(kInterleave) * sizeof(quant::block_q4_K);
  constexpr int C = NX == 1 ? 2 : 1;
  const std::int64_t nb = w.cols / quant::kQK_K;
  const __m256i nib = _mm256_set1_epi32(0x000F000F);
  const __m256i m6 = _mm256_set1_epi32(0x3F3F3F3F), m4 = _mm256_set1_epi32(0x0F0F0F0F), hi2 = _mm256_set1_epi32(0x30303030);
  const __m256i byte = _mm256_set1_epi32(0xFF);
  alignas(32) std::int32_t sc[8][8], mn[8][8];
  for (std::int64_t g = g0; g < g1; ++g) {
    const std::byte* grp = w.data + static_cast<std::size_t>(g * kInterleave) * w.row_bytes;
    for (int hh = 0; hh < 2; ++hh) {
      __m256 acc[NX];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[j] = _mm256_setzero_ps();
      for (std::int64_t b = 0; b < nb; ++b) {
        const std::byte* blk = grp + static_cast<std::size_t>(b) * gb;
        const std::byte* a[NX];
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) a[j] = xq + static_cast<std::size_t>(j) * xs + static_cast<std::size_t>(b) * sizeof(A);
        {
          const std::byte* pl = blk + 64 + 32 * hh;  // the three scale planes, this half's 8 dwords
          const __m256i u0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pl));
          const __m256i u1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pl + 64));
          const __m256i u2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pl + 128));
          const __m256i s_lo = _mm256_and_si256(u0, m6), m_lo = _mm256_and_si256(u1, m6);
          const __m256i s_hi = _mm256_or_si256(_mm256_and_si256(u2, m4), _mm256_and_si256(_mm256_srli_epi32(u0, 2), hi2));
          const __m256i m_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), m4), _mm256_and_si256(_mm256_srli_epi32(u1, 2), hi2));
          _Pragma("GCC unroll 4") for (int q = 0; q < 4; ++q) {
            _mm256_store_si256(reinterpret_cast<__m256i*>(sc[q]), _mm256_and_si256(_mm256_srli_epi32(s_lo, 8 * q), byte));
            _mm256_store_si256(reinterpret_cast<__m256i*>(sc[4 + q]), _mm256_and_si256(_mm256_srli_epi32(s_hi, 8 * q), byte));
            _mm256_store_si256(reinterpret_cast<__m256i*>(mn[q]), _mm256_and_si256(_mm256_srli_epi32(m_lo, 8 * q), byte));
            _mm256_store_si256(reinterpret_cast<__m256i*>(mn[4 + q]), _mm256_and_si256(_mm256_srli_epi32(m_hi, 8 * q), byte));
          }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * hh)));
        const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 32 + 16 * hh)));
        for (int h = 0; h < 4; ++h) {
          __m256i t[NX];
          _Pragma("GCC unroll 2") for (int u = 0; u < 2; ++u) {
            const int sb = 2 * h + u;
            __m256i p[NX][C];
            _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _Pragma("GCC unroll 4") for (int c = 0; c < C; ++c) p[j][c] = _mm256_setzero_si256();
            _Pragma("GCC unroll 4") for (int tq = 0; tq < 4; ++tq) {
              const int quad = 4 * sb + tq;
              const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 256 + 64 * quad + 32 * hh));
              _Pragma("GCC unroll 4") for (int pp = 0; pp < 4; ++pp) {
                const __m256i wk = _mm256_and_si256(pp == 0 ? qv : _mm256_srli_epi32(qv, 4 * pp), nib);
                _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
                  const __m256i xa = _mm256_set1_epi32(load_i32(a[j] + offsetof(A, qs) + 4 * (4 * quad + pp)));
                  p[j][(4 * tq + pp) % C] = _mm256_add_epi32(p[j][(4 * tq + pp) % C], _mm256_madd_epi16(wk, xa));
                }
              }
            }
            const __m256i scv = _mm256_load_si256(reinterpret_cast<const __m256i*>(sc[sb]));
            _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
              __m256i s = p[j][0];
              _Pragma("GCC unroll 4") for (int c = 1; c < C; ++c) s = _mm256_add_epi32(s, p[j][c]);
              s = _mm256_mullo_epi32(s, scv);
              t[j] = u == 0 ? s : _mm256_add_epi32(t[j], s);
            }
          }
          _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
            float dx;
            std::memcpy(&dx, a[j] + offsetof(A, d), 4);
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t[j]), _mm256_mul_ps(dw, _mm256_set1_ps(dx)), acc[j]);
          }
        }
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          __m256i m = _mm256_mullo_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(mn[0])),
                                         _mm256_set1_epi32(load_i32(a[j] + offsetof(A, bsums))));
          _Pragma("GCC unroll 8") for (int sb = 1; sb < 8; ++sb) {
            m = _mm256_add_epi32(m, _mm256_mullo_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(mn[sb])),
                                                       _mm256_set1_epi32(load_i32(a[j] + offsetof(A, bsums) + 4 * sb))));
          }
          float dx;
          std::memcpy(&dx, a[j] + offsetof(A, d), 4);
          acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), _mm256_mul_ps(dm, _mm256_set1_ps(-dx)), acc[j]);
        }
      }
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _mm256_storeu_ps(y + j * ldy + g * kInterleave + 8 * hh, acc[j]);
    }
  }
}

/// Q6_K: groups [g0, g1) times NX activation rows, each group as two halves of 8 rows (the
/// AVX-512 kernel's steps on 8 lanes).
template <int NX>
TQI_TARGET void groups_k6(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                          std::int64_t g0, std::int64_t g1) noexcept {
  using A = quant::block_q16xK;
  constexpr std::size_t gb = static_cast<std::size_t>(kInterleave) * sizeof(quant::block_q6_K);
  constexpr int C = NX == 1 ? 2 : 1;
  const std::int64_t nb = w.cols / quant::kQK_K;
  const __m256i sel = _mm256_set1_epi32(0x3C003C00);
  alignas(32) float dsc[16][8];
  for (std::int64_t g = g0; g < g1; ++g) {
    const std::byte* grp = w.data + static_cast<std::size_t>(g * kInterleave) * w.row_bytes;
    for (int hh = 0; hh < 2; ++hh) {
      __m256 acc[NX];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[j] = _mm256_setzero_ps();
      for (std::int64_t b = 0; b < nb; ++b) {
        const std::byte* blk = grp + static_cast<std::size_t>(b) * gb;
        const std::byte* a[NX];
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) a[j] = xq + static_cast<std::size_t>(j) * xs + static_cast<std::size_t>(b) * sizeof(A);
        const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * hh)));
        _Pragma("GCC unroll 4") for (int q = 0; q < 4; ++q) {
          const __m256i pl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32 + 64 * q + 32 * hh));
          _Pragma("GCC unroll 4") for (int k = 0; k < 4; ++k) {
            const __m256i sc = _mm256_srai_epi32(_mm256_slli_epi32(pl, 24 - 8 * k), 24);
            _mm256_store_ps(dsc[4 * q + k], _mm256_mul_ps(dv, _mm256_cvtepi32_ps(sc)));
          }
        }
        __m256 t[NX];
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) t[j] = _mm256_setzero_ps();
        for (int u = 0; u < 16; ++u) {
          const std::byte* unit = blk + 288 + 192 * u + 32 * hh;
          const __m256i la = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(unit));
          const __m256i lb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(unit + 64));
          const __m256i hv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(unit + 128));
          __m256i p[NX][C];
          _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _Pragma("GCC unroll 4") for (int c = 0; c < C; ++c) p[j][c] = _mm256_setzero_si256();
          _Pragma("GCC unroll 8") for (int i = 0; i < 8; ++i) {
            const __m256i l = i < 4 ? la : lb;
            const __m256i ls = i % 4 == 3 ? _mm256_srli_epi32(l, 2) : _mm256_slli_epi32(l, 10 - 4 * (i % 4));
            const __m256i hs = i == 7 ? hv : _mm256_slli_epi32(hv, 14 - 2 * i);
            const __m256i wv = _mm256_srai_epi16(_mm256_or_si256(_mm256_and_si256(ls, sel), _mm256_andnot_si256(sel, hs)), 10);
            _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
              const __m256i xa = _mm256_set1_epi32(load_i32(a[j] + offsetof(A, qs) + 4 * (8 * u + i)));
              p[j][i % C] = _mm256_add_epi32(p[j][i % C], _mm256_madd_epi16(wv, xa));
            }
          }
          const __m256 ds = _mm256_load_ps(dsc[u]);
          _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
            __m256i s = p[j][0];
            _Pragma("GCC unroll 4") for (int c = 1; c < C; ++c) s = _mm256_add_epi32(s, p[j][c]);
            t[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), ds, t[j]);
          }
        }
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          float dx;
          std::memcpy(&dx, a[j] + offsetof(A, d), 4);
          acc[j] = _mm256_fmadd_ps(t[j], _mm256_set1_ps(dx), acc[j]);
        }
      }
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _mm256_storeu_ps(y + j * ldy + g * kInterleave + 8 * hh, acc[j]);
    }
  }
}

/// The group kernel of type T for NX activation rows.
template <DType T, int NX>
TQI_TARGET void group_rows(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                           std::int64_t g0, std::int64_t g1) noexcept {
  if constexpr (T == DType::Q4_K) groups_k<NX>(w, xq, xs, y, ldy, g0, g1);
  else if constexpr (T == DType::Q6_K) groups_k6<NX>(w, xq, xs, y, ldy, g0, g1);
  else groups<T, NX>(w, xq, xs, y, ldy, g0, g1);
}
}  // namespace qidetail

/// The AVX2 Q16RowsFn of an interleaved Q8_0 / Q4_0 / Q4_K / Q6_K view. Rows [r0, r1) should start
/// on a group boundary (a row inside a group, and rows past the last group, take the scalar
/// twin, which gives the same bits).
template <DType T>
TQI_TARGET void q16i_rows(const WeightView& w, const void* xq, std::size_t x_stride, int nx, float* y, std::int64_t ldy,
                          std::int64_t r0, std::int64_t r1) {
  const auto* x = static_cast<const std::byte*>(xq);
  // Groups outermost, so a group's weights stay in L1/L2 while every activation row passes.
  split_interleaved(
      w, r0, r1,
      [&](std::int64_t g) {
        for (int j = 0; j < nx; j += 4) {
          const std::byte* xj = x + static_cast<std::size_t>(j) * x_stride;
          float* yj = y + j * ldy;
          switch (std::min(nx - j, 4)) {
            case 1: qidetail::group_rows<T, 1>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 2: qidetail::group_rows<T, 2>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 3: qidetail::group_rows<T, 3>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            default: qidetail::group_rows<T, 4>(w, xj, x_stride, yj, ldy, g, g + 1); break;
          }
        }
      },
      [&](std::int64_t a, std::int64_t b) { scalar::q16i_rows<T>(w, xq, x_stride, nx, y, ldy, a, b); });
}

#undef TQI_TARGET

}  // namespace tinfer::kernels::avx2

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
