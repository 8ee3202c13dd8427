// tinfer/kernels/avx512/interleaved_dot.hpp: AVX-512 VNNI kernels of interleaved Q8_0 / Q4_0
// weights (kernels/interleave.hpp: layout and order of operations) with 16-bit activations. One
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
}  // namespace qidetail

/// The AVX-512 VNNI Q16RowsFn of an interleaved Q8_0 / Q4_0 view. Rows [r0, r1) should start
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
            case 1: qidetail::groups<T, 1>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 2: qidetail::groups<T, 2>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 3: qidetail::groups<T, 3>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 4: qidetail::groups<T, 4>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 5: qidetail::groups<T, 5>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 6: qidetail::groups<T, 6>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            case 7: qidetail::groups<T, 7>(w, xj, x_stride, yj, ldy, g, g + 1); break;
            default: qidetail::groups<T, 8>(w, xj, x_stride, yj, ldy, g, g + 1); break;
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
