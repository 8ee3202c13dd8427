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

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tinfer/core/float16.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/pack_activations.hpp"

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

/// How far ahead of the kernel a group of interleaved float rows is prefetched. One token does
/// so little work per byte that the hardware prefetcher alone falls behind; 8 KiB measured best
/// (2, 4, 8, 12, 16 KiB tried on an F16 matrix-vector product over 1 GB: 79/87/95-101/97/97%
/// of a read stream).
inline constexpr int kGroupPrefetch = 8192;

/// A batched product over grouped rows also prefetches each tile's rows this many columns
/// ahead: one column chunk of the cache-blocked product (detail::kKC), which the first token
/// group then finds in cache. Plain rows get that from the hardware prefetcher running along
/// each row; a group's rows are strided, and without it prompt processing of the F16 TinyLlama
/// ran 17% (16 tokens) and 5-8% (64) slower than on plain rows; with it, 1-3% (next tile alone
/// or this alone: 5-17%; 1024 columns ahead: 2-7%).
inline constexpr int kGroupColumnsAhead = 512;

/// Prefetches the lines of RM interleaved rows' 16-column block at p + `ahead` bytes (RM * 16
/// elements, contiguous when the rows lie in one group).
template <class T, int RM>
TINFER_TARGET_AVX512 inline void prefetch_group_span(const T* p, int ahead) noexcept {
  constexpr int kBytes = RM * 16 * static_cast<int>(sizeof(T));
  _Pragma("GCC unroll 16") for (int c = 0; c < kBytes; c += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(p) + c + ahead, _MM_HINT_T0);
  }
}

/// RM whole weight rows from row r (plain rows, or rows of one interleaved group) times one
/// activation vector: RM accumulators, each activation vector loaded once for RM rows, every
/// row's 16 lanes filled in the order of scalar::dot16 and summed by the fixed reduce16.
template <class T, int RM>
TINFER_TARGET_AVX512 inline void row_tile(const WeightView& w, const float* x, float* y, std::int64_t r) noexcept {
  const std::int64_t n = w.cols;
  const T* row[RM];
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) row[m] = reinterpret_cast<const T*>(w.float_row(r + m, sizeof(T)));
  // Elements per 16 columns: 1 in plain rows, 16 inside interleaved groups.
  const std::int64_t cs = w.float_block_step(r) / 16;
  __m512 acc[RM];
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) acc[m] = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
      // Plain rows: prefetch the next tile of rows (RM short interleaved streams defeat the
      // hardware prefetcher; one row at a time is a single sequential stream).
      if constexpr (RM > 1) if (cs == 1) _mm_prefetch(reinterpret_cast<const char*>(row[m] + i) + RM * w.row_bytes, _MM_HINT_T0);
      acc[m] = _mm512_fmadd_ps(load16(row[m] + i * cs), xv, acc[m]);
    }
  }
  if (i < n) {
    // The tail (n % 16 elements; plain rows only). Lanes past the end keep their value (mask3:
    // the addend passes through), as in the scalar twin.
    const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
    _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) acc[m] = _mm512_mask3_fmadd_ps(load16_masked(row[m] + i, k), xv, acc[m], k);
  }
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) y[r + m] = reduce16(acc[m]);
}

/// One interleaved group (rows r .. r + 15, r a multiple of 16) times one activation vector: a
/// single stream through memory, 16 accumulators, in the order of scalar::dot16.
template <class T>
TINFER_TARGET_AVX512 inline void group_dot(const WeightView& w, const float* x, float* y, std::int64_t r) noexcept {
  const T* p = reinterpret_cast<const T*>(w.float_row(r, sizeof(T)));
  __m512 acc[16];
  _Pragma("GCC unroll 16") for (int m = 0; m < 16; ++m) acc[m] = _mm512_setzero_ps();
  for (std::int64_t i = 0; i < w.cols; i += 16, p += 16 * 16) {
    prefetch_group_span<T, 16>(p, kGroupPrefetch);
    const __m512 xv = _mm512_loadu_ps(x + i);
    _Pragma("GCC unroll 16") for (int m = 0; m < 16; ++m) acc[m] = _mm512_fmadd_ps(load16(p + 16 * m), xv, acc[m]);
  }
  _Pragma("GCC unroll 16") for (int m = 0; m < 16; ++m) y[r + m] = reduce16(acc[m]);
}

/// Rows [r0, r1) times one activation vector (matvec): whole interleaved groups at once, then
/// tiles of 4 rows and single rows.
template <class T>
TINFER_TARGET_AVX512 void dot_rows(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1) noexcept {
  std::int64_t r = r0;
  if (r < w.interleaved_rows) {
    const std::int64_t e = std::min(r1, w.interleaved_rows);
    for (; r < e && r % 16 != 0; ++r) row_tile<T, 1>(w, x, y, r);
    for (; r + 16 <= e; r += 16) group_dot<T>(w, x, y, r);
    for (; r < e; ++r) row_tile<T, 1>(w, x, y, r);
  }
  for (; r + 4 <= r1; r += 4) row_tile<T, 4>(w, x, y, r);
  for (; r < r1; ++r) row_tile<T, 1>(w, x, y, r);
}

namespace detail {

/// Register tile of matmul: kRM weight rows x kNX activation rows (24 accumulators; with the 4
/// weight vectors and 1 activation vector of packed_tile, 29 of the 32 zmm). 4 x 6 measured faster
/// than 4 x 4, 6 x 4, 8 x 3, 3 x 8 and 5 x 5 on Zen 5. kNX is also the token group of the packed
/// activations (kernels/pack_activations.hpp).
inline constexpr int kRM = 4;
inline constexpr int kNX = 6;
/// Cache blocking for rows longer than 2 kKC columns: columns in chunks of kKC (a kNX-token
/// slice of x, 12 KiB, stays in L1 while it meets every weight row of the block), rows in blocks
/// of kRB (their kKC-column slice, 32-64 KiB, in L1/L2 while the token groups pass), tokens in
/// blocks of kNB; the lanes wait between chunks in a per-thread buffer of kRB x kNB x 16 floats.
/// With packed activations, 16/32/64 rows, 24/48/96 tokens and 256/512/1024 columns measured
/// within the host's noise of each other, except 1024 columns (3-5% slower).
inline constexpr std::int64_t kKC = 512;
inline constexpr std::int64_t kRB = 32;
inline constexpr int kNB = 48;
static_assert(kKC % 16 == 0 && kRB % kRM == 0 && kNB % kNX == 0);
static_assert(kGroupColumnsAhead == kKC, "grouped tiles prefetch one column chunk ahead");

}  // namespace detail

/// Columns [i0, i1) of a register tile of RM weight rows times NX packed activation rows (xg:
/// their token group, packed as in kernels/pack_activations.hpp with NX tokens): RM * NX
/// accumulators, each weight vector loaded once for NX tokens, each activation vector once for
/// RM rows. Every (row, token) has its own 16 lanes filled in the order of scalar::dot16, so the
/// result does not depend on RM, NX, the column split or the caller. i0 is a multiple of 16; i1
/// too unless it is w.cols. `Grouped`: the rows lie in one interleaved group (else plain rows).
/// `Prefetch`: this pass is the first over these weights (the first token group of a block), so
/// it prefetches them; later token groups find them in cache.
///
/// With `state` (the lanes of (row m, token j) at state + j * lds + 16 * m), the lanes start
/// from it unless i0 == 0 and are saved there unless i1 == w.cols; otherwise (and at the end)
/// each dot product goes to y[j * ldy + r + m] through the fixed reduce16.
template <class T, int RM, int NX, bool Grouped, bool Prefetch>
TINFER_TARGET_AVX512 inline void packed_tile(const WeightView& w, const float* xg, float* y, std::int64_t ldy, std::int64_t r,
                                             std::int64_t i0, std::int64_t i1, float* state, std::int64_t lds) noexcept {
  const std::int64_t n = w.cols;
  const T* row[RM];
  _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) row[m] = reinterpret_cast<const T*>(w.float_row(r + m, sizeof(T)));
  __m512 acc[RM][NX];
  if (i0 == 0) {
    _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[m][j] = _mm512_setzero_ps();
  } else {
    _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[m][j] = _mm512_load_ps(state + j * lds + 16 * m);
  }
  std::int64_t i = i0;
  const std::int64_t full = i1 - 16;
  const float* xq = xg + i0 * NX;  // the 16-column block i0 / 16 of the group
  if constexpr (Grouped) {
    // A 16-column block of a group holds its 16 rows' 16 values one row after another: this
    // tile's rows are RM * 16 consecutive elements, the next block 256 elements on.
    const T* p = row[0] + i0 * 16;
    // The next tile's rows (when grouped too) at the same columns, and this tile's rows one
    // column chunk ahead (kGroupColumnsAhead).
    const T* next = Prefetch && r + 2 * RM <= w.interleaved_rows ? reinterpret_cast<const T*>(w.float_row(r + RM, sizeof(T))) + i0 * 16 : nullptr;
    for (; i <= full; i += 16, p += 256, xq += 16 * NX) {
      if constexpr (Prefetch) {
        if (next != nullptr) {
          prefetch_group_span<T, RM>(next, 0);
          next += 256;
        }
        prefetch_group_span<T, RM>(p, kGroupColumnsAhead * 16 * sizeof(T));
      }
      __m512 wv[RM];
      _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) wv[m] = load16(p + 16 * m);
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
        const __m512 xv = _mm512_loadu_ps(xq + 16 * j);
        _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) acc[m][j] = _mm512_fmadd_ps(wv[m], xv, acc[m][j]);
      }
    }
  } else {
    for (; i <= full; i += 16, xq += 16 * NX) {
      __m512 wv[RM];
      _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
        // The next tile of rows (RM short interleaved streams defeat the hardware prefetcher;
        // one row at a time is a single sequential stream).
        if constexpr (Prefetch && RM > 1) _mm_prefetch(reinterpret_cast<const char*>(row[m] + i) + RM * w.row_bytes, _MM_HINT_T0);
        wv[m] = load16(row[m] + i);
      }
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) {
        const __m512 xv = _mm512_loadu_ps(xq + 16 * j);
        _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) acc[m][j] = _mm512_fmadd_ps(wv[m], xv, acc[m][j]);
      }
    }
  }
  if (i < i1) {
    // The tail (n % 16 elements, only when i1 == n, so plain rows). Lanes past the end keep
    // their value (mask3: the addend passes through), as in the scalar twin.
    const __mmask16 k = static_cast<__mmask16>((1u << (i1 - i)) - 1);
    _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) {
      const __m512 wv = load16_masked(row[m] + i, k);
      _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) acc[m][j] = _mm512_mask3_fmadd_ps(wv, _mm512_loadu_ps(xq + 16 * j), acc[m][j], k);
    }
  }
  if (i1 < n) {
    _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _mm512_store_ps(state + j * lds + 16 * m, acc[m][j]);
  } else {
    _Pragma("GCC unroll 8") for (int j = 0; j < NX; ++j) _Pragma("GCC unroll 8") for (int m = 0; m < RM; ++m) y[j * ldy + r + m] = reduce16(acc[m][j]);
  }
}

namespace detail {

/// The tiles of one token group of NX tokens over rows [r0, r1): kRM rows at a time, then the rest.
template <class T, int NX, bool Grouped, bool Prefetch>
TINFER_TARGET_AVX512 void packed_rows(const WeightView& w, const float* xg, float* y, std::int64_t ldy, std::int64_t r0, std::int64_t r1,
                                      std::int64_t i0, std::int64_t i1, float* state, std::int64_t lds) noexcept {
  auto st = [&](std::int64_t rr) { return state == nullptr ? nullptr : state + 16 * (rr - r0); };
  // A grouped tile reads its rows as one span of its group, so tiles stop at group ends (the
  // dispatcher's ranges start at group starts; only other callers' ranges need the split).
  const std::int64_t seg = Grouped ? WeightView::kGroupRows : r1 - r0;
  for (std::int64_t s0 = r0; s0 < r1;) {
    const std::int64_t s1 = Grouped ? std::min(r1, (s0 / seg + 1) * seg) : r1;
    std::int64_t r = s0;
    for (; r + kRM <= s1; r += kRM) packed_tile<T, kRM, NX, Grouped, Prefetch>(w, xg, y, ldy, r, i0, i1, st(r), lds);
    switch (s1 - r) {
      case 3: packed_tile<T, 3, NX, Grouped, Prefetch>(w, xg, y, ldy, r, i0, i1, st(r), lds); break;
      case 2: packed_tile<T, 2, NX, Grouped, Prefetch>(w, xg, y, ldy, r, i0, i1, st(r), lds); break;
      case 1: packed_tile<T, 1, NX, Grouped, Prefetch>(w, xg, y, ldy, r, i0, i1, st(r), lds); break;
      default: break;
    }
    s0 = s1;
  }
  static_assert(kRM == 4 && WeightView::kGroupRows % kRM == 0, "the switch above handles up to kRM - 1 = 3 remaining rows");
}

/// packed_rows<T, nx> for a group of nx <= N tokens.
template <class T, int N, bool Grouped, bool Prefetch>
TINFER_TARGET_AVX512 void packed_rows_nx(int nx, const WeightView& w, const float* xg, float* y, std::int64_t ldy, std::int64_t r0,
                                         std::int64_t r1, std::int64_t i0, std::int64_t i1, float* state, std::int64_t lds) noexcept {
  if constexpr (N >= 1) {
    if (nx == N) packed_rows<T, N, Grouped, Prefetch>(w, xg, y, ldy, r0, r1, i0, i1, state, lds);
    else packed_rows_nx<T, N - 1, Grouped, Prefetch>(nx, w, xg, y, ldy, r0, r1, i0, i1, state, lds);
  }
}

/// All tiles of rows [r0, r1) x tokens [t0, t1) (t0 a multiple of kNX; state at token t0) over
/// columns [i0, i1): kNX tokens at a time, each group over every row of the block; the first
/// group prefetches the weights.
template <class T, bool Grouped>
TINFER_TARGET_AVX512 void packed_block(const WeightView& w, const float* xp, int t0, int t1, float* y, std::int64_t ldy, std::int64_t r0,
                                       std::int64_t r1, std::int64_t i0, std::int64_t i1, float* state, std::int64_t lds) noexcept {
  const std::int64_t cp = packed_activation_cols(w.cols);
  for (int t = t0; t < t1; t += kNX) {
    const int nx = std::min(kNX, t1 - t);
    float* st = state == nullptr ? nullptr : state + static_cast<std::int64_t>(t - t0) * lds;
    const float* xg = xp + t * cp;
    if (t == t0) packed_rows_nx<T, kNX, Grouped, true>(nx, w, xg, y + t * ldy, ldy, r0, r1, i0, i1, st, lds);
    else packed_rows_nx<T, kNX, Grouped, false>(nx, w, xg, y + t * ldy, ldy, r0, r1, i0, i1, st, lds);
  }
}

}  // namespace detail

/// The batched form on packed activations: nx activation rows packed in groups of detail::kNX
/// (kernels/pack_activations.hpp), results y[j * ldy + r] for r in [r0, r1). Rows up to 2 kKC
/// columns in one pass; longer ones cache-blocked (see detail::kKC).
template <class T>
TINFER_TARGET_AVX512 void dot_rows_packed(const WeightView& w, const float* xp, int nx, float* y, std::int64_t ldy, std::int64_t r0,
                                          std::int64_t r1) noexcept {
  using namespace detail;
  if (r0 < w.interleaved_rows && w.interleaved_rows < r1) {  // tiles stay on one side of the layout change
    dot_rows_packed<T>(w, xp, nx, y, ldy, r0, w.interleaved_rows);
    dot_rows_packed<T>(w, xp, nx, y, ldy, w.interleaved_rows, r1);
    return;
  }
  const bool grouped = r0 < w.interleaved_rows;
  auto block = [&](int t0, int t1, std::int64_t rb, std::int64_t re, std::int64_t i0, std::int64_t i1, float* st, std::int64_t lds) {
    if (grouped) packed_block<T, true>(w, xp, t0, t1, y, ldy, rb, re, i0, i1, st, lds);
    else packed_block<T, false>(w, xp, t0, t1, y, ldy, rb, re, i0, i1, st, lds);
  };
  const std::int64_t n = w.cols;
  if (n <= 2 * kKC) {
    block(0, nx, r0, r1, 0, n, nullptr, 0);
    return;
  }
  alignas(64) thread_local float state[kRB * kNB * 16];
  for (std::int64_t rb = r0; rb < r1; rb += kRB) {
    const std::int64_t re = std::min(r1, rb + kRB);
    for (int tb = 0; tb < nx; tb += kNB) {
      const int te = std::min(nx, tb + kNB);
      for (std::int64_t i0 = 0; i0 < n; i0 += kKC) {
        const std::int64_t i1 = n - i0 < 2 * kKC ? n : i0 + kKC;  // no chunk under kKC columns
        block(tb, te, rb, re, i0, i1, state, 16 * kRB);
        if (i1 == n) break;
      }
    }
  }
}

/// The multi-row form on unpacked activations (nx rows, stride ldx): packs them into a buffer of
/// this thread, then dot_rows_packed. matmul packs once per product instead (dispatch.hpp).
template <class T>
TINFER_TARGET_AVX512 void dot_rows_multi(const WeightView& w, const float* x, std::int64_t ldx, int nx, float* y,
                                         std::int64_t ldy, std::int64_t r0, std::int64_t r1) {
  thread_local std::vector<float> packed;
  packed.resize(static_cast<std::size_t>(packed_activation_floats(nx, w.cols)));
  pack_activations(x, nx, ldx, w.cols, detail::kNX, packed.data());
  dot_rows_packed<T>(w, packed.data(), nx, y, ldy, r0, r1);
}

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
