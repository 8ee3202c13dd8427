// tinfer/kernels/avx512/interleaved_dot.hpp: AVX-512 VNNI kernels of interleaved Q8_0 / Q4_0 /
// Q4_K / Q6_K weights (kernels/interleave.hpp: layout and order of operations) with 16-bit activations. One
// zmm lane per weight row of a 16-row group: for each pair of columns, one register of the 16
// rows' int16 pairs, and one vpdpwssd per activation row with that row's pair broadcast. The
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

namespace tinfer::kernels::avx512 {

#define TQI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

namespace qidetail {
/// How far ahead of the weights being read the kernels prefetch (bytes): groups follow each
/// other in memory, so the weights are one stream, but one token does little work per line and
/// the hardware prefetcher alone leaves the stream at ~60% of the bandwidth (Q4_K, one thread).
/// 8 KiB rather than 4: the F16 groups' measurement (avx512/dot_rows.hpp), and in the model
/// Q4_K_M TinyLlama decoded faster in 5 of 5 alternating pairs (median +7%), Q8_0 no different.
inline constexpr int kAhead = 8192;

/// Pair k of a group block's quants (`q` = the block past its 32 bytes of scales) for the 16
/// rows: lane r = value 2k (low word) and 2k + 1 (high word) of row r, as int16 (Q4_0: 0..15).
template <DType T>
TQI_TARGET inline __m512i pair(const std::byte* q, int k) noexcept {
  if constexpr (T == DType::Q8_0) {
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * k)));
  } else {
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16 * k)));
    // (b | b << 12) & 0x000F000F: the low nibble in word 0, the high nibble in word 1.
    return _mm512_ternarylogic_epi32(b, _mm512_slli_epi32(b, 12), _mm512_set1_epi32(0x000F000F), 0xA8);
  }
}

TQI_TARGET inline std::int32_t load_i32(const std::byte* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

/// Groups [g0, g1) times NX activation rows; C independent integer chains per activation row
/// (more when NX is small, so one token is not bound by vpdpwssd's latency).
template <DType T, int NX>
TQI_TARGET void groups(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                       std::int64_t g0, std::int64_t g1) noexcept {
  using A = quant::block_q16x32;
  constexpr std::size_t bs = T == DType::Q8_0 ? sizeof(quant::block_q8_0) : sizeof(quant::block_q4_0);
  constexpr std::size_t gb = static_cast<std::size_t>(kInterleave) * bs;
  constexpr int C = NX == 1 ? 4 : NX == 2 ? 2 : 1;
  const std::int64_t nb = w.cols / quant::kQK;
  for (std::int64_t g = g0; g < g1; ++g) {
    const std::byte* grp = w.data + static_cast<std::size_t>(g * kInterleave) * w.row_bytes;
    __m512 acc[NX];
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[j] = _mm512_setzero_ps();
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::byte* blk = grp + static_cast<std::size_t>(b) * gb;
      const std::byte* a[NX];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) a[j] = xq + static_cast<std::size_t>(j) * xs + static_cast<std::size_t>(b) * sizeof(A);
      __m512i p[NX][C];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
        // Q4_0's offset: sum (n - 8) a = sum n a - 8 sum a, exact in int32.
        p[j][0] = T == DType::Q4_0 ? _mm512_set1_epi32(-8 * load_i32(a[j] + offsetof(A, sum))) : _mm512_setzero_si512();
        _Pragma("GCC unroll 4") for (int c = 1; c < C; ++c) p[j][c] = _mm512_setzero_si512();
      }
      const std::byte* q = blk + 32;
      _Pragma("GCC unroll 16") for (std::size_t off = 0; off < gb; off += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(blk) + off + kAhead, _MM_HINT_T0);
      }
      _Pragma("GCC unroll 16") for (int k = 0; k < 16; ++k) {
        const __m512i wk = pair<T>(q, k);
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          p[j][k % C] = _mm512_dpwssd_epi32(p[j][k % C], wk, _mm512_set1_epi32(load_i32(a[j] + offsetof(A, qs) + 4 * k)));
        }
      }
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
        __m512i s = p[j][0];
        _Pragma("GCC unroll 4") for (int c = 1; c < C; ++c) s = _mm512_add_epi32(s, p[j][c]);
        float dx;
        std::memcpy(&dx, a[j] + offsetof(A, d), 4);
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc[j]);
      }
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _mm512_storeu_ps(y + j * ldy + g * kInterleave, acc[j]);
  }
}

/// Q4_K: groups [g0, g1) times NX activation rows (kernels/interleave.hpp: per super-block, two
/// sub-blocks' exact sums scaled by their 6-bit scales in int32, one fma per sub-block pair,
/// then the mins). The nibbles enter vpdpwssd unscaled (0..15), so a quad of 8 columns is one
/// load and two operations per column pair.
template <int NX>
TQI_TARGET void groups_k(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                         std::int64_t g0, std::int64_t g1) noexcept {
  using A = quant::block_q16xK;
  constexpr std::size_t gb = static_cast<std::size_t>(kInterleave) * sizeof(quant::block_q4_K);
  constexpr int C = NX == 1 ? 4 : NX == 2 ? 2 : 1;
  const std::int64_t nb = w.cols / quant::kQK_K;
  const __m512i nib = _mm512_set1_epi32(0x000F000F);
  const __m512i m6 = _mm512_set1_epi32(0x3F3F3F3F), m4 = _mm512_set1_epi32(0x0F0F0F0F), hi2 = _mm512_set1_epi32(0x30303030);
  const __m512i byte = _mm512_set1_epi32(0xFF);
  alignas(64) std::int32_t sc[8][16], mn[8][16];
  for (std::int64_t g = g0; g < g1; ++g) {
    const std::byte* grp = w.data + static_cast<std::size_t>(g * kInterleave) * w.row_bytes;
    __m512 acc[NX];
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[j] = _mm512_setzero_ps();
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::byte* blk = grp + static_cast<std::size_t>(b) * gb;
      const std::byte* a[NX];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) a[j] = xq + static_cast<std::size_t>(j) * xs + static_cast<std::size_t>(b) * sizeof(A);
      {  // the 16 rows' scales and mins, one int32 lane per row (the bit layout of scale_min_k4)
        const __m512i u0 = _mm512_loadu_si512(blk + 64), u1 = _mm512_loadu_si512(blk + 128), u2 = _mm512_loadu_si512(blk + 192);
        const __m512i s_lo = _mm512_and_si512(u0, m6), m_lo = _mm512_and_si512(u1, m6);
        const __m512i s_hi = _mm512_or_si512(_mm512_and_si512(u2, m4), _mm512_and_si512(_mm512_srli_epi32(u0, 2), hi2));
        const __m512i m_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), m4), _mm512_and_si512(_mm512_srli_epi32(u1, 2), hi2));
        _Pragma("GCC unroll 4") for (int q = 0; q < 4; ++q) {
          _mm512_store_si512(sc[q], _mm512_and_si512(_mm512_srli_epi32(s_lo, 8 * q), byte));
          _mm512_store_si512(sc[4 + q], _mm512_and_si512(_mm512_srli_epi32(s_hi, 8 * q), byte));
          _mm512_store_si512(mn[q], _mm512_and_si512(_mm512_srli_epi32(m_lo, 8 * q), byte));
          _mm512_store_si512(mn[4 + q], _mm512_and_si512(_mm512_srli_epi32(m_hi, 8 * q), byte));
        }
      }
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
      const __m512 dm = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32)));
      for (int h = 0; h < 4; ++h) {
        __m512i t[NX];
        _Pragma("GCC unroll 2") for (int u = 0; u < 2; ++u) {
          const int sb = 2 * h + u;
          __m512i p[NX][C];
          _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _Pragma("GCC unroll 4") for (int c = 0; c < C; ++c) p[j][c] = _mm512_setzero_si512();
          _Pragma("GCC unroll 4") for (int tq = 0; tq < 4; ++tq) {
            const int quad = 4 * sb + tq;
            _mm_prefetch(reinterpret_cast<const char*>(blk) + 256 + 64 * quad + kAhead, _MM_HINT_T0);
            const __m512i qv = _mm512_loadu_si512(blk + 256 + 64 * quad);
            _Pragma("GCC unroll 4") for (int pp = 0; pp < 4; ++pp) {
              const __m512i wk = _mm512_and_si512(pp == 0 ? qv : _mm512_srli_epi32(qv, 4 * pp), nib);
              _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
                const __m512i xa = _mm512_set1_epi32(load_i32(a[j] + offsetof(A, qs) + 4 * (4 * quad + pp)));
                p[j][(4 * tq + pp) % C] = _mm512_dpwssd_epi32(p[j][(4 * tq + pp) % C], wk, xa);
              }
            }
          }
          const __m512i scv = _mm512_load_si512(sc[sb]);
          _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
            __m512i s = p[j][0];
            _Pragma("GCC unroll 4") for (int c = 1; c < C; ++c) s = _mm512_add_epi32(s, p[j][c]);
            s = _mm512_mullo_epi32(s, scv);
            t[j] = u == 0 ? s : _mm512_add_epi32(t[j], s);
          }
        }
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          float dx;
          std::memcpy(&dx, a[j] + offsetof(A, d), 4);
          acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t[j]), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc[j]);
        }
      }
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
        __m512i m = _mm512_mullo_epi32(_mm512_load_si512(mn[0]), _mm512_set1_epi32(load_i32(a[j] + offsetof(A, bsums))));
        _Pragma("GCC unroll 8") for (int sb = 1; sb < 8; ++sb) {
          m = _mm512_add_epi32(m, _mm512_mullo_epi32(_mm512_load_si512(mn[sb]), _mm512_set1_epi32(load_i32(a[j] + offsetof(A, bsums) + 4 * sb))));
        }
        float dx;
        std::memcpy(&dx, a[j] + offsetof(A, d), 4);
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(dm, _mm512_set1_ps(-dx)), acc[j]);
      }
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _mm512_storeu_ps(y + j * ldy + g * kInterleave, acc[j]);
  }
}

/// Q6_K: groups [g0, g1) times NX activation rows (kernels/interleave.hpp: per 16 columns one
/// exact int32 sum, converted and scaled by d sc_j into a per-super-block float t, then t dx).
template <int NX>
TQI_TARGET void groups_k6(const WeightView& w, const std::byte* xq, std::size_t xs, float* y, std::int64_t ldy,
                          std::int64_t g0, std::int64_t g1) noexcept {
  using A = quant::block_q16xK;
  constexpr std::size_t gb = static_cast<std::size_t>(kInterleave) * sizeof(quant::block_q6_K);
  constexpr int C = NX == 1 ? 2 : 1;
  const std::int64_t nb = w.cols / quant::kQK_K;
  const __m512i sel = _mm512_set1_epi32(0x3C003C00);
  alignas(64) float dsc[16][16];
  for (std::int64_t g = g0; g < g1; ++g) {
    const std::byte* grp = w.data + static_cast<std::size_t>(g * kInterleave) * w.row_bytes;
    __m512 acc[NX];
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[j] = _mm512_setzero_ps();
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::byte* blk = grp + static_cast<std::size_t>(b) * gb;
      const std::byte* a[NX];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) a[j] = xq + static_cast<std::size_t>(j) * xs + static_cast<std::size_t>(b) * sizeof(A);
      const __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
      _Pragma("GCC unroll 4") for (int q = 0; q < 4; ++q) {  // d * sc_j for the 16 rows (exact)
        const __m512i pl = _mm512_loadu_si512(blk + 32 + 64 * q);
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; ++k) {
          const __m512i sc = _mm512_srai_epi32(_mm512_slli_epi32(pl, 24 - 8 * k), 24);
          _mm512_store_ps(dsc[4 * q + k], _mm512_mul_ps(dv, _mm512_cvtepi32_ps(sc)));
        }
      }
      __m512 t[NX];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) t[j] = _mm512_setzero_ps();
      for (int u = 0; u < 16; ++u) {
        const std::byte* unit = blk + 288 + 192 * u;
        _Pragma("GCC unroll 3") for (int c = 0; c < 3; ++c) _mm_prefetch(reinterpret_cast<const char*>(unit) + kAhead + 64 * c, _MM_HINT_T0);
        const __m512i la = _mm512_loadu_si512(unit), lb = _mm512_loadu_si512(unit + 64), hv = _mm512_loadu_si512(unit + 128);
        __m512i p[NX][C];
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _Pragma("GCC unroll 4") for (int c = 0; c < C; ++c) p[j][c] = _mm512_setzero_si512();
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; ++i) {
          const __m512i l = i < 4 ? la : lb;
          // The nibbles to bits 10..13 of each word, the high bits to 14..15; select, and the
          // arithmetic shift sign-extends q - 32.
          const __m512i ls = i % 4 == 3 ? _mm512_srli_epi32(l, 2) : _mm512_slli_epi32(l, 10 - 4 * (i % 4));
          const __m512i hs = i == 7 ? hv : _mm512_slli_epi32(hv, 14 - 2 * i);
          const __m512i wv = _mm512_srai_epi16(_mm512_ternarylogic_epi32(ls, hs, sel, 0xE4), 10);
          _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
            const __m512i xa = _mm512_set1_epi32(load_i32(a[j] + offsetof(A, qs) + 4 * (8 * u + i)));
            p[j][i % C] = _mm512_dpwssd_epi32(p[j][i % C], wv, xa);
          }
        }
        const __m512 ds = _mm512_load_ps(dsc[u]);
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
          __m512i s = p[j][0];
          _Pragma("GCC unroll 4") for (int c = 1; c < C; ++c) s = _mm512_add_epi32(s, p[j][c]);
          t[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), ds, t[j]);
        }
      }
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
        float dx;
        std::memcpy(&dx, a[j] + offsetof(A, d), 4);
        acc[j] = _mm512_fmadd_ps(t[j], _mm512_set1_ps(dx), acc[j]);
      }
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _mm512_storeu_ps(y + j * ldy + g * kInterleave, acc[j]);
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

/// The AVX-512 VNNI Q16RowsFn of an interleaved Q8_0 / Q4_0 / Q4_K / Q6_K view. Rows [r0, r1) should start
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
        for (int j = 0; j < nx; j += 8) {
          const std::byte* xj = x + static_cast<std::size_t>(j) * x_stride;
          float* yj = y + j * ldy;
          switch (std::min(nx - j, 8)) {
            case 1: qidetail::group_rows<T, 1>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 2: qidetail::group_rows<T, 2>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 3: qidetail::group_rows<T, 3>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 4: qidetail::group_rows<T, 4>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 5: qidetail::group_rows<T, 5>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 6: qidetail::group_rows<T, 6>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 7: qidetail::group_rows<T, 7>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            default: qidetail::group_rows<T, 8>(w, xj, x_stride, yj, ldy, g, g + 1); break;
          }
        }
      },
      [&](std::int64_t a, std::int64_t b) { scalar::q16i_rows<T>(w, xq, x_stride, nx, y, ldy, a, b); });
}

#undef TQI_TARGET

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
