// tinfer/kernels/avx512/quantize_activations.hpp: the 16-bit activation quantizer
// (ActFormat::Q16_32) with AVX-512. Every step is an IEEE operation the scalar version
// (kernels/quantize_activations.hpp) also does: the maximum of |x| (exact in any order; a NaN
// is skipped as the scalar comparison skips it), d = amax / 32767 and 1 / d as scalars, x * (1 / d),
// + or - 0.5 by the sign, truncation and clamping; so the quants, scale and sum are the same
// bits as the scalar one's, and every ISA's kernels see the same activations.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinfer/kernels/quantize_activations.hpp"

namespace tinfer::kernels::avx512 {

#define TQA_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

/// quantize_q16x32 (n a multiple of 32) into `dst` (any alignment).
TQA_TARGET inline void quantize_q16x32(const float* x, std::int64_t n, void* dst) noexcept {
  auto* out = static_cast<std::byte*>(dst);
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(0x80000000u)));
  const __m512i lo = _mm512_set1_epi32(-32767), hi = _mm512_set1_epi32(32767);
  for (std::int64_t b = 0; b < n / quant::kQK; ++b, x += quant::kQK, out += sizeof(quant::block_q16x32)) {
    const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    // max(|x|, m) returns m when |x| is NaN, as the scalar `a > amax ? a : amax` does.
    __m512 m = _mm512_max_ps(_mm512_and_ps(x0, abs_mask), _mm512_setzero_ps());
    m = _mm512_max_ps(_mm512_and_ps(x1, abs_mask), m);
    const float amax = _mm512_reduce_max_ps(m);
    const float d = amax / 32767.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    __m512i q[2];
    const __m512 xs[2] = {x0, x1};
    for (int h = 0; h < 2; ++h) {
      const __m512 v = _mm512_mul_ps(xs[h], vid);
      // v + (v < 0 ? -0.5 : 0.5): -0.0 takes -0.5 here and +0.5 in the scalar code, and both
      // truncate to 0.
      const __m512 r = _mm512_add_ps(v, _mm512_or_ps(half, _mm512_and_ps(v, sign)));
      q[h] = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvttps_epi32(r), lo), hi);
    }
    const std::int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
    quant::block_q16x32 blk{};
    blk.d = d;
    blk.sum = sum;
    std::memcpy(out, &blk, offsetof(quant::block_q16x32, qs));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + offsetof(quant::block_q16x32, qs)), _mm512_cvtepi32_epi16(q[0]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + offsetof(quant::block_q16x32, qs) + 32), _mm512_cvtepi32_epi16(q[1]));
  }
}

/// quantize_q16xK (n a multiple of 256) into `dst` (any alignment): the same per-element steps
/// over a super-block, and the exact sum of each 32 quants.
TQA_TARGET inline void quantize_q16xK(const float* x, std::int64_t n, void* dst) noexcept {
  auto* out = static_cast<std::byte*>(dst);
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(0x80000000u)));
  const __m512i lo = _mm512_set1_epi32(-32767), hi = _mm512_set1_epi32(32767);
  using B = quant::block_q16xK;
  for (std::int64_t b = 0; b < n / quant::kQK_K; ++b, x += quant::kQK_K, out += sizeof(B)) {
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < quant::kQK_K; i += 16) m = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(x + i), abs_mask), m);
    const float amax = _mm512_reduce_max_ps(m);
    const float d = amax / 32767.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    B blk{};
    blk.d = d;
    for (int g = 0; g < quant::kQK_K / 32; ++g) {
      __m512i q[2];
      for (int h = 0; h < 2; ++h) {
        const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + 32 * g + 16 * h), vid);
        const __m512 r = _mm512_add_ps(v, _mm512_or_ps(half, _mm512_and_ps(v, sign)));
        q[h] = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvttps_epi32(r), lo), hi);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(blk.qs + 32 * g + 16 * h), _mm512_cvtepi32_epi16(q[h]));
      }
      blk.bsums[g] = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
    }
    std::memcpy(out, &blk, sizeof blk);
  }
}

#undef TQA_TARGET

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
