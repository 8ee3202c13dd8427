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

/// y[j * ldy + r] = dot(W[r, :], x + j * ldx) for r in [r0, r1), j in [0, NX): each weight
/// vector is loaded and widened once for NX activation rows (the register tile of matmul).
/// Every activation row has its own four accumulators, filled in the same order for any NX, so
/// the result for a row does not depend on NX.
template <class T, int NX>
TINFER_TARGET_AVX512 void dot_rows_tile(const WeightView& w, const float* x, std::int64_t ldx, float* y,
                                        std::int64_t ldy, std::int64_t r0, std::int64_t r1) noexcept {
  const std::int64_t n = w.cols;
  for (std::int64_t r = r0; r < r1; ++r) {
    const T* row = reinterpret_cast<const T*>(w.row(r));
    __m512 a0[NX], a1[NX], a2[NX], a3[NX];
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) a0[j] = a1[j] = a2[j] = a3[j] = _mm512_setzero_ps();
    std::int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
      const __m512 w0 = load16(row + i), w1 = load16(row + i + 16), w2 = load16(row + i + 32), w3 = load16(row + i + 48);
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
        const float* xj = x + j * ldx + i;
        a0[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xj), a0[j]);
        a1[j] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xj + 16), a1[j]);
        a2[j] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(xj + 32), a2[j]);
        a3[j] = _mm512_fmadd_ps(w3, _mm512_loadu_ps(xj + 48), a3[j]);
      }
    }
    for (; i + 16 <= n; i += 16) {
      const __m512 w0 = load16(row + i);
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) a0[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + j * ldx + i), a0[j]);
    }
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
      const __m512 w0 = load16_masked(row + i, m);
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) a1[j] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x + j * ldx + i), a1[j]);
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
      y[j * ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0[j], a1[j]), _mm512_add_ps(a2[j], a3[j])));
    }
  }
}

template <class T>
TINFER_TARGET_AVX512 void dot_rows(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  dot_rows_tile<T, 1>(w, x, 0, y, 0, r0, r1);
}

/// The multi-row form: nx activation rows (stride ldx), results y[j * ldy + r].
template <class T>
TINFER_TARGET_AVX512 void dot_rows_multi(const WeightView& w, const float* x, std::int64_t ldx, int nx, float* y,
                                         std::int64_t ldy, std::int64_t r0, std::int64_t r1) noexcept {
  for (int j = 0; j < nx; j += 4) {
    const float* xj = x + j * ldx;
    float* yj = y + j * ldy;
    switch (nx - j) {
      case 1: dot_rows_tile<T, 1>(w, xj, ldx, yj, ldy, r0, r1); break;
      case 2: dot_rows_tile<T, 2>(w, xj, ldx, yj, ldy, r0, r1); break;
      case 3: dot_rows_tile<T, 3>(w, xj, ldx, yj, ldy, r0, r1); break;
      default: dot_rows_tile<T, 4>(w, xj, ldx, yj, ldy, r0, r1); break;
    }
  }
}

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
