// tinfer/kernels/avx2/quantize_activations.hpp: the 16-bit activation quantizers
// (ActFormat::Q16_32 and Q16_K) with AVX2, the same IEEE steps as the scalar version
// (kernels/quantize_activations.hpp) and the AVX-512 one: the maximum of |x| (exact in any order;
// a NaN is skipped as the scalar comparison skips it), d = amax / 32767 and 1 / d as scalars,
// x * (1 / d), + or - 0.5 by the sign, truncation and clamping. So scale, sums and quants are the
// same bits on every ISA, and every ISA's kernels see the same activations.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinfer/kernels/quantize_activations.hpp"

namespace tinfer::kernels::avx2 {

#define TQA2_TARGET __attribute__((target("avx2,fma")))

namespace qadetail {
/// The largest lane (lanes are +0 or |x|, never NaN, so the order does not matter).
TQA2_TARGET inline float max8(__m256 m) noexcept {
  __m128 v = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  v = _mm_max_ps(v, _mm_movehl_ps(v, v));
  v = _mm_max_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}
/// The exact sum of 8 int32 lanes.
TQA2_TARGET inline std::int32_t sum8(__m256i v) noexcept {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}
/// max(|x[i]|, m) for 8 values: max_ps returns its second operand when the first is NaN, as the
/// scalar `a > amax ? a : amax` keeps amax.
TQA2_TARGET inline __m256 absmax(const float* x, __m256 m) noexcept {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  return _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x), abs_mask), m);
}
/// The quants of 8 values as int32: trunc(v + (v < 0 ? -0.5 : 0.5)) clamped to +-32767, with
/// v = x * id (-0.0 takes -0.5 here and +0.5 in the scalar code; both truncate to 0; a NaN or an
/// out-of-range value converts to INT_MIN, as cvttss2si does in the scalar code, and clamps).
TQA2_TARGET inline __m256i quant8(const float* x, __m256 vid) noexcept {
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
  const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), vid);
  const __m256 r = _mm256_add_ps(v, _mm256_or_ps(_mm256_set1_ps(0.5f), _mm256_and_ps(v, sign)));
  return _mm256_min_epi32(_mm256_max_epi32(_mm256_cvttps_epi32(r), _mm256_set1_epi32(-32767)), _mm256_set1_epi32(32767));
}
/// 16 quants (a: values 0..7, b: 8..15) stored as int16 in order.
TQA2_TARGET inline void store16(std::int16_t* q, __m256i a, __m256i b) noexcept {
  // packs works per 128-bit lane ([a0-3 b0-3 | a4-7 b4-7]); the permute restores the order.
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8));
}
/// d and 1 / d of a block whose largest |x| is amax, as the scalar code computes them.
inline void scales(float amax, float& d, float& id) noexcept {
  d = amax / 32767.0f;
  id = d != 0.0f ? 1.0f / d : 0.0f;
}
}  // namespace qadetail

/// quantize_q16x32 (n a multiple of 32) into `dst` (any alignment).
TQA2_TARGET inline void quantize_q16x32(const float* x, std::int64_t n, void* dst) noexcept {
  using namespace qadetail;
  auto* out = static_cast<std::byte*>(dst);
  for (std::int64_t b = 0; b < n / quant::kQK; ++b, x += quant::kQK, out += sizeof(quant::block_q16x32)) {
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < quant::kQK; i += 8) m = absmax(x + i, m);
    quant::block_q16x32 blk{};
    float id;
    scales(max8(m), blk.d, id);
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i q0 = quant8(x, vid), q1 = quant8(x + 8, vid), q2 = quant8(x + 16, vid), q3 = quant8(x + 24, vid);
    store16(blk.qs, q0, q1);
    store16(blk.qs + 16, q2, q3);
    blk.sum = sum8(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
    std::memcpy(out, &blk, sizeof blk);
  }
}

/// quantize_q16xK (n a multiple of 256) into `dst` (any alignment): the same per-element steps
/// over a super-block, and the exact sum of each 32 quants.
TQA2_TARGET inline void quantize_q16xK(const float* x, std::int64_t n, void* dst) noexcept {
  using namespace qadetail;
  using B = quant::block_q16xK;
  auto* out = static_cast<std::byte*>(dst);
  for (std::int64_t b = 0; b < n / quant::kQK_K; ++b, x += quant::kQK_K, out += sizeof(B)) {
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < quant::kQK_K; i += 8) m = absmax(x + i, m);
    B blk{};
    float id;
    scales(max8(m), blk.d, id);
    const __m256 vid = _mm256_set1_ps(id);
    for (int g = 0; g < quant::kQK_K / 32; ++g) {
      const float* xg = x + 32 * g;
      const __m256i q0 = quant8(xg, vid), q1 = quant8(xg + 8, vid), q2 = quant8(xg + 16, vid), q3 = quant8(xg + 24, vid);
      store16(blk.qs + 32 * g, q0, q1);
      store16(blk.qs + 32 * g + 16, q2, q3);
      blk.bsums[g] = sum8(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
    }
    std::memcpy(out, &blk, sizeof blk);
  }
}

#undef TQA2_TARGET

}  // namespace tinfer::kernels::avx2
