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

#undef TQ_TARGET

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
