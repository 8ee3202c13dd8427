// tinfer/kernels/avx512/dot_rows.hpp: AVX-512 (F/BW/VL/DQ) versions of the row dot products.
// Compiled with target attributes; only called when cpu_features() reports AVX-512.
#pragma once

// GCC 12's AVX-512 intrinsic headers start some conversions from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports when inlined; the value is never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cstdint>

#include "tinfer/core/float16.hpp"
#include "tinfer/core/weight_view.hpp"

#define TINFER_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

namespace tinfer::kernels::avx512 {

TINFER_TARGET_AVX512 inline __m512 load16(const float* p) noexcept { return _mm512_loadu_ps(p); }
TINFER_TARGET_AVX512 inline __m512 load16(const f16* p) noexcept {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
TINFER_TARGET_AVX512 inline __m512 load16(const bf16* p) noexcept {
  const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
// Masked loads for the tail (n % 16 elements), so no scalar loop is needed.
TINFER_TARGET_AVX512 inline __m512 load16_masked(const float* p, __mmask16 m) noexcept { return _mm512_maskz_loadu_ps(m, p); }
TINFER_TARGET_AVX512 inline __m512 load16_masked(const f16* p, __mmask16 m) noexcept {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
TINFER_TARGET_AVX512 inline __m512 load16_masked(const bf16* p, __mmask16 m) noexcept {
  const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

template <class T>
TINFER_TARGET_AVX512 void dot_rows(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  const std::int64_t n = w.cols;
  for (std::int64_t r = r0; r < r1; ++r) {
    const T* row = reinterpret_cast<const T*>(w.row(r));
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    std::int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
      a0 = _mm512_fmadd_ps(load16(row + i), _mm512_loadu_ps(x + i), a0);
      a1 = _mm512_fmadd_ps(load16(row + i + 16), _mm512_loadu_ps(x + i + 16), a1);
      a2 = _mm512_fmadd_ps(load16(row + i + 32), _mm512_loadu_ps(x + i + 32), a2);
      a3 = _mm512_fmadd_ps(load16(row + i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(load16(row + i), _mm512_loadu_ps(x + i), a0);
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
      a1 = _mm512_fmadd_ps(load16_masked(row + i, m), _mm512_maskz_loadu_ps(m, x + i), a1);
    }
    y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
}

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
