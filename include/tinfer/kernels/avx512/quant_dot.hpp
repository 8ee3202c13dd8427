// tinfer/kernels/avx512/quant_dot.hpp: the quantized-weight integer dot products for AVX-512
// with VNNI (vpdpbusd on 256-bit registers, AVX512VL), built from the shared kernel bodies of
// avx2/quant_dot_body.inc. Used when cpu_features().avx512_vnni; an AVX-512 machine without
// VNNI runs the AVX2 kernels.
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

namespace tinfer::kernels::avx512 {

#define TQ_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

TQ_TARGET inline __m256i dot_u8s8(__m256i w, __m256i x) noexcept {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x);
}
TQ_TARGET inline __m256i dot_u8s8_scaled(__m256i w, __m256i x, int lo, int hi) noexcept {
  return _mm256_mullo_epi32(dot_u8s8(w, x), _mm256_set_m128i(_mm_set1_epi32(hi), _mm_set1_epi32(lo)));
}

#include "tinfer/kernels/avx2/quant_dot_body.inc"

/// 512-bit kernels for Q8_0 and Q4_0: two blocks per register (block i in lanes 0..7, i + 1 in
/// 8..15), the odd last block with the 256-bit code above. Same integer sums per block.
template <DType T>
TQ_TARGET void quant_dot_rows_zmm(const WeightView& w, const void* xq, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  static_assert(T == DType::Q8_0 || T == DType::Q4_0);
  using B = quant::block_of_t<T>;
  constexpr std::int64_t bs = static_cast<std::int64_t>(sizeof(B));
  const auto* x = static_cast<const quant::block_q8x32*>(xq);
  const std::int64_t nb = w.cols / quant::kQK;
  const __m512i zero = _mm512_setzero_si512();
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::byte* row = w.row(r);
    __m512 acc = _mm512_setzero_ps();
    std::int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
      const std::byte* b0 = row + i * bs;
      const std::byte* b1 = b0 + bs;
      __m512i wv;
      if constexpr (T == DType::Q8_0) {
        wv = _mm512_inserti64x4(_mm512_castsi256_si512(loadu(b0 + offsetof(B, qs))), loadu(b1 + offsetof(B, qs)), 1);
      } else {
        const __m512i n = _mm512_inserti64x4(_mm512_castsi256_si512(nibbles32(b0 + offsetof(B, qs))), nibbles32(b1 + offsetof(B, qs)), 1);
        wv = _mm512_sub_epi8(n, _mm512_set1_epi8(8));
      }
      const __m512i xv = _mm512_inserti64x4(_mm512_castsi256_si512(loadu(x[i].qs)), loadu(x[i + 1].qs), 1);
      // |w| (u8; |-128| = 128) times x negated where w < 0.
      const __m512i xs = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(wv), zero, xv);
      const __m512i p = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(wv), xs);
      const __m512 sc = _mm512_insertf32x8(_mm512_set1_ps(f16_at(b0) * x[i].d), _mm256_set1_ps(f16_at(b1) * x[i + 1].d), 1);
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc);
    }
    float tail = 0.0f;
    if (i < nb) {
      const std::byte* b = row + i * bs;
      const __m256i xv = loadu(x[i].qs);
      __m256i p;
      if constexpr (T == DType::Q8_0) p = dot_s8s8(loadu(b + offsetof(B, qs)), xv);
      else p = dot_s8s8(_mm256_sub_epi8(nibbles32(b + offsetof(B, qs)), _mm256_set1_epi8(8)), xv);
      tail = hsum_q(_mm256_mul_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16_at(b) * x[i].d)));
    }
    y[r] = _mm512_reduce_add_ps(acc) + tail;
  }
}

#undef TQ_TARGET

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
