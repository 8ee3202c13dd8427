// tinfer/kernels/avx512/dot_rows.hpp: AVX-512 (F/BW/VL/DQ) versions of the row dot products.
// Compiled with target attributes; only called when cpu_features() reports AVX-512.
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
// Masked loads for the tail (n % 16 elements), so no scalar loop is needed (bits of disabled
// lanes are zero, never read from memory).
TINFER_TARGET_AVX512 inline __m512 load16_masked(const float* p, __mmask16 m) noexcept { return _mm512_maskz_loadu_ps(m, p); }
TINFER_TARGET_AVX512 inline __m512 load16_masked(const f16* p, __mmask16 m) noexcept {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
TINFER_TARGET_AVX512 inline __m512 load16_masked(const bf16* p, __mmask16 m) noexcept {
  const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

/// The 16-lane order of scalar/dot_rows.hpp, one zmm per lane set: 16 -> 8 -> 4 -> 2 -> 1.
TINFER_TARGET_AVX512 inline float reduce16(__m512 v) noexcept {
  const __m256 t8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// y[j * ldy + r + m] = dot(W[r + m, :], x + j * ldx) for m in [0, RM), j in [0, NX): a register
/// tile of RM weight rows times NX activation rows (RM * NX accumulators, each weight vector
/// loaded once for NX tokens, each activation vector once for RM rows). Every (row, token) has
/// its own 16 lanes filled in the order of scalar::dot16, so the result does not depend on RM,
/// NX or the caller.
template <class T, int RM, int NX>
TINFER_TARGET_AVX512 inline void dot_tile(const WeightView& w, const float* x, std::int64_t ldx, float* y,
                                          std::int64_t ldy, std::int64_t r) noexcept {
  const std::int64_t n = w.cols;
  const T* row[RM];
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) row[m] = reinterpret_cast<const T*>(w.row(r + m));
  __m512 acc[RM][NX];
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[m][j] = _mm512_setzero_ps();
  std::int64_t i = 0;
  if constexpr (RM <= NX) {
    // Weights in registers, one activation vector at a time (RM * NX + RM + 1 zmm).
    for (; i + 16 <= n; i += 16) {
      __m512 wv[RM];
      _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
        // Prefetch the next tile of rows (RM short interleaved streams defeat the hardware
        // prefetcher; one row at a time is a single sequential stream).
        if constexpr (RM > 1) _mm_prefetch(reinterpret_cast<const char*>(row[m] + i) + RM * w.row_bytes, _MM_HINT_T0);
        wv[m] = load16(row[m] + i);
      }
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
        const __m512 xv = _mm512_loadu_ps(x + j * ldx + i);
        _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) acc[m][j] = _mm512_fmadd_ps(wv[m], xv, acc[m][j]);
      }
    }
  } else {
    // Activations in registers, one weight vector at a time (RM * NX + NX + 1 zmm).
    for (; i + 16 <= n; i += 16) {
      __m512 xv[NX];
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) xv[j] = _mm512_loadu_ps(x + j * ldx + i);
      _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
        _mm_prefetch(reinterpret_cast<const char*>(row[m] + i) + RM * w.row_bytes, _MM_HINT_T0);
        const __m512 wv = load16(row[m] + i);
        _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[m][j] = _mm512_fmadd_ps(wv, xv[j], acc[m][j]);
      }
    }
  }
  if (i < n) {
    // Lanes past the end keep their value (mask3: the addend passes through), as in the scalar twin.
    const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
    _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
      const __m512 wv = load16_masked(row[m] + i, k);
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
        acc[m][j] = _mm512_mask3_fmadd_ps(wv, _mm512_maskz_loadu_ps(k, x + j * ldx + i), acc[m][j], k);
      }
    }
  }
  _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) y[j * ldy + r + m] = reduce16(acc[m][j]);
}

/// Rows [r0, r1) times NX activation rows: tiles of 4 rows, then single rows (the matvec form).
template <class T, int NX>
TINFER_TARGET_AVX512 void dot_rows_tile(const WeightView& w, const float* x, std::int64_t ldx, float* y,
                                        std::int64_t ldy, std::int64_t r0, std::int64_t r1) noexcept {
  std::int64_t r = r0;
  for (; r + 4 <= r1; r += 4) dot_tile<T, 4, NX>(w, x, ldx, y, ldy, r);
  for (; r < r1; ++r) dot_tile<T, 1, NX>(w, x, ldx, y, ldy, r);
}

template <class T>
TINFER_TARGET_AVX512 void dot_rows(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  dot_rows_tile<T, 1>(w, x, 0, y, 0, r0, r1);
}

namespace detail {

#ifndef TF_RM
#define TF_RM 4
#endif
#ifndef TF_NX
#define TF_NX 6
#endif
/// Register tile of matmul: kRM weight rows x kNX activation rows (24 accumulators; the 4 weight
/// vectors and 1 activation vector of dot_tile make 29 of the 32 zmm).
inline constexpr int kRM = TF_RM;
inline constexpr int kNX = TF_NX;

/// dot_tile<T, M, NX> for the last `rm` (< M) rows of a block.
template <class T, int M, int NX>
TINFER_TARGET_AVX512 inline void tile_rows_left(int rm, const WeightView& w, const float* x, std::int64_t ldx, float* y,
                                                std::int64_t ldy, std::int64_t r) noexcept {
  if constexpr (M > 1) {
    if (rm == M - 1) dot_tile<T, M - 1, NX>(w, x, ldx, y, ldy, r);
    else tile_rows_left<T, M - 1, NX>(rm, w, x, ldx, y, ldy, r);
  }
}

/// Rows [r0, r1) times NX activation rows: tiles of kRM rows, then one smaller tile.
template <class T, int NX>
TINFER_TARGET_AVX512 void gemm_rows(const WeightView& w, const float* x, std::int64_t ldx, float* y, std::int64_t ldy,
                                    std::int64_t r0, std::int64_t r1) noexcept {
  std::int64_t r = r0;
  for (; r + kRM <= r1; r += kRM) dot_tile<T, kRM, NX>(w, x, ldx, y, ldy, r);
  if (r < r1) tile_rows_left<T, kRM, NX>(static_cast<int>(r1 - r), w, x, ldx, y, ldy, r);
}

/// gemm_rows<T, N> for the last `nx` (< N) activation rows.
template <class T, int N>
TINFER_TARGET_AVX512 inline void gemm_tokens_left(int nx, const WeightView& w, const float* x, std::int64_t ldx, float* y,
                                                  std::int64_t ldy, std::int64_t r0, std::int64_t r1) noexcept {
  if constexpr (N > 1) {
    if (nx == N - 1) gemm_rows<T, N - 1>(w, x, ldx, y, ldy, r0, r1);
    else gemm_tokens_left<T, N - 1>(nx, w, x, ldx, y, ldy, r0, r1);
  }
}

}  // namespace detail

/// The multi-row form: nx activation rows (stride ldx), results y[j * ldy + r]; kNX activation
/// rows at a time (the rest in one smaller group), each over all rows [r0, r1) of the tile.
template <class T>
TINFER_TARGET_AVX512 void dot_rows_multi(const WeightView& w, const float* x, std::int64_t ldx, int nx, float* y,
                                         std::int64_t ldy, std::int64_t r0, std::int64_t r1) noexcept {
  int j = 0;
  for (; j + detail::kNX <= nx; j += detail::kNX) detail::gemm_rows<T, detail::kNX>(w, x + j * ldx, ldx, y + j * ldy, ldy, r0, r1);
  if (j < nx) detail::gemm_tokens_left<T, detail::kNX>(nx - j, w, x + j * ldx, ldx, y + j * ldy, ldy, r0, r1);
}

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
