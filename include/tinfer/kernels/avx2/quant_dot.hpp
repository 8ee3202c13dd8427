// tinfer/kernels/avx2/quant_dot.hpp: AVX2 integer dot products of quantized weight rows with
// 8-bit activations (quantize_activations.hpp), in two builds of the same kernels
// (avx2/quant_dot_body.inc):
//   namespace avx2:      u8 x s8 products with vpmaddubsw + vpmaddwd;
//   namespace avx2vnni:  AVX-VNNI vpdpbusd (Alder Lake and later), when cpu_features().avx_vnni.
// Compiled with target attributes; only called when cpu_features() reports the ISA.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/quantize_activations.hpp"

namespace tinfer::kernels::avx2 {

#define TQ_TARGET __attribute__((target("avx2,fma,f16c")))

TQ_TARGET inline __m256i dot_u8s8(__m256i w, __m256i x) noexcept {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}
TQ_TARGET inline __m256i dot_u8s8_scaled(__m256i w, __m256i x, int lo, int hi) noexcept {
  const __m256i s = _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(hi)), _mm_set1_epi16(static_cast<short>(lo)));
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), s);
}

#include "tinfer/kernels/avx2/quant_dot_body.inc"

#undef TQ_TARGET

}  // namespace tinfer::kernels::avx2

namespace tinfer::kernels::avx2vnni {

#define TQ_TARGET __attribute__((target("avx2,fma,f16c,avxvnni")))

TQ_TARGET inline __m256i dot_u8s8(__m256i w, __m256i x) noexcept {
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), w, x);
}
TQ_TARGET inline __m256i dot_u8s8_scaled(__m256i w, __m256i x, int lo, int hi) noexcept {
  return _mm256_mullo_epi32(dot_u8s8(w, x), _mm256_set_m128i(_mm_set1_epi32(hi), _mm_set1_epi32(lo)));
}

#include "tinfer/kernels/avx2/quant_dot_body.inc"

#undef TQ_TARGET

}  // namespace tinfer::kernels::avx2vnni
