// tinfer/kernels/avx2/dot_rows.hpp: AVX2+FMA+F16C versions of the row dot products.
// Compiled with target attributes, so no -march is needed; only called when cpu_features()
// reports AVX2 (see kernels/dispatch.hpp).
#pragma once

// GCC 12's AVX-512 intrinsic headers start some conversions from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports when inlined; the value is never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <cstdint>
#include <cstring>

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
/// One element as float, read with memcpy (rows may be misaligned).
template <class T>
inline float elem(const T* p) noexcept {
  if constexpr (sizeof(T) == 4) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  } else {
    std::uint16_t b;
    std::memcpy(&b, p, 2);
    return T::to_float(b);
  }
}

/// The 16-lane order of scalar/dot_rows.hpp in two ymm (lanes 0..7, 8..15): 16 -> 8 is lo + hi.
TINFER_TARGET_AVX2 inline float reduce16(__m256 lo, __m256 hi) noexcept { return hsum(_mm256_add_ps(lo, hi)); }

/// A register tile of RM weight rows times NX activation rows in the 16-lane order of
/// scalar::dot16 (two ymm per (row, token)); the result does not depend on RM or NX.
template <class T, int RM, int NX>
TINFER_TARGET_AVX2 inline void dot_tile(const WeightView& w, const float* x, std::int64_t ldx, float* y,
                                        std::int64_t ldy, std::int64_t r) noexcept {
  const std::int64_t n = w.cols;
  const T* row[RM];
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) row[m] = reinterpret_cast<const T*>(w.float_row(r + m, sizeof(T)));
  // Elements per 16 columns: 1 in plain rows, 16 inside interleaved groups (the caller keeps a
  // tile's rows on one side of w.interleaved_rows).
  const std::int64_t cs = w.float_block_step(r) / 16;
  // In groups, the next tile's rows (when they are grouped too) at the same columns.
  const T* next = cs != 1 && r + 2 * RM <= w.interleaved_rows ? reinterpret_cast<const T*>(w.float_row(r + RM, sizeof(T))) : nullptr;
  __m256 lo[RM][NX], hi[RM][NX];
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) lo[m][j] = hi[m][j] = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if (next != nullptr) {
      _Pragma("GCC unroll 8") for (int c = 0; c < RM * 16 * static_cast<int>(sizeof(T)); c += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(next + i * cs) + c, _MM_HINT_T0);
      }
    }
    _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
      // Prefetch the next tile of rows (see avx512/dot_rows.hpp).
      if constexpr (RM > 1) if (cs == 1) _mm_prefetch(reinterpret_cast<const char*>(row[m] + i) + RM * w.row_bytes, _MM_HINT_T0);
      const __m256 w0 = load8(row[m] + i * cs), w1 = load8(row[m] + i * cs + 8);
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
        lo[m][j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + j * ldx + i), lo[m][j]);
        hi[m][j] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + j * ldx + i + 8), hi[m][j]);
      }
    }
  }
  if (i < n) {
    // The last n - i elements (< 16) through zero-padded copies; lanes past the end keep their
    // value (blend), as in the scalar twin.
    const int rem = static_cast<int>(n - i);
    alignas(32) float wt[16], xt[16];
    alignas(32) std::int32_t mk[16];
    for (int l = 0; l < 16; ++l) mk[l] = l < rem ? -1 : 0;
    const __m256 k0 = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mk)));
    const __m256 k1 = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mk + 8)));
    for (int m = 0; m < RM; ++m) {
      for (int l = 0; l < 16; ++l) wt[l] = l < rem ? elem(row[m] + i + l) : 0.0f;
      for (int j = 0; j < NX; ++j) {
        for (int l = 0; l < 16; ++l) xt[l] = l < rem ? x[j * ldx + i + l] : 0.0f;
        lo[m][j] = _mm256_blendv_ps(lo[m][j], _mm256_fmadd_ps(_mm256_load_ps(wt), _mm256_load_ps(xt), lo[m][j]), k0);
        hi[m][j] = _mm256_blendv_ps(hi[m][j], _mm256_fmadd_ps(_mm256_load_ps(wt + 8), _mm256_load_ps(xt + 8), hi[m][j]), k1);
      }
    }
  }
  _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) y[j * ldy + r + m] = reduce16(lo[m][j], hi[m][j]);
}

template <class T, int NX>
TINFER_TARGET_AVX2 void dot_rows_tile(const WeightView& w, const float* x, std::int64_t ldx, float* y, std::int64_t ldy,
                                      std::int64_t r0, std::int64_t r1) noexcept {
  constexpr int RM = NX == 1 ? 4 : 2;
  if (r0 < w.interleaved_rows && w.interleaved_rows < r1) {  // tiles stay on one side of the layout change
    dot_rows_tile<T, NX>(w, x, ldx, y, ldy, r0, w.interleaved_rows);
    dot_rows_tile<T, NX>(w, x, ldx, y, ldy, w.interleaved_rows, r1);
    return;
  }
  std::int64_t r = r0;
  for (; r + RM <= r1; r += RM) dot_tile<T, RM, NX>(w, x, ldx, y, ldy, r);
  for (; r < r1; ++r) dot_tile<T, 1, NX>(w, x, ldx, y, ldy, r);
}

template <class T>
TINFER_TARGET_AVX2 void dot_rows(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  dot_rows_tile<T, 1>(w, x, 0, y, 0, r0, r1);
}

/// nx activation rows (stride ldx), results y[j * ldy + r], two at a time.
template <class T>
TINFER_TARGET_AVX2 void dot_rows_multi(const WeightView& w, const float* x, std::int64_t ldx, int nx, float* y,
                                       std::int64_t ldy, std::int64_t r0, std::int64_t r1) noexcept {
  int j = 0;
  for (; j + 2 <= nx; j += 2) dot_rows_tile<T, 2>(w, x + j * ldx, ldx, y + j * ldy, ldy, r0, r1);
  if (j < nx) dot_rows_tile<T, 1>(w, x + j * ldx, ldx, y + j * ldy, ldy, r0, r1);
}

}  // namespace tinfer::kernels::avx2

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
