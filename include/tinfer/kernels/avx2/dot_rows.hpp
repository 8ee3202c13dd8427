// tinfer/kernels/avx2/dot_rows.hpp: AVX2+FMA+F16C versions of the row dot products.
// Compiled with target attributes, so no -march is needed; only called when cpu_features()
// reports AVX2 (see kernels/dispatch.hpp).
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

#define TINFER_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace tinfer::kernels::avx2 {

TINFER_TARGET_AVX2 inline float hsum(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Loads 8 weights of each type widened to float.
TINFER_TARGET_AVX2 inline __m256 load8(const float* p) noexcept { return _mm256_loadu_ps(p); }
TINFER_TARGET_AVX2 inline __m256 load8(const f16* p) noexcept {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
TINFER_TARGET_AVX2 inline __m256 load8(const bf16* p) noexcept {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
inline float to_f32(float v) noexcept { return v; }
inline float to_f32(f16 v) noexcept { return v.to_float(); }
inline float to_f32(bf16 v) noexcept { return v.to_float(); }

template <class T>
TINFER_TARGET_AVX2 void dot_rows(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  const std::int64_t n = w.cols;
  for (std::int64_t r = r0; r < r1; ++r) {
    const T* row = reinterpret_cast<const T*>(w.row(r));
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
      a0 = _mm256_fmadd_ps(load8(row + i), _mm256_loadu_ps(x + i), a0);
      a1 = _mm256_fmadd_ps(load8(row + i + 8), _mm256_loadu_ps(x + i + 8), a1);
      a2 = _mm256_fmadd_ps(load8(row + i + 16), _mm256_loadu_ps(x + i + 16), a2);
      a3 = _mm256_fmadd_ps(load8(row + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load8(row + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; ++i) s += to_f32(row[i]) * x[i];
    y[r] = s;
  }
}

}  // namespace tinfer::kernels::avx2

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
