// tinfer/attention/attention_kernels.hpp: the inner loops of tiled attention, with the queries of a
// tile in SIMD lanes.
//
// Layout ("queries in lanes"). A tile of nq queries (query rows x the query heads sharing one KV
// head) is stored transposed: Qt[d * ld + j] is element d of query j, with ld a multiple of
// kLanePad. Scores St[t * ld + j] (key t, query j) and the output accumulator Ot[d * ld + j] use
// the same layout. Keys and values are f32 rows K[t * ks + d] (read from an F32 cache in place,
// converted once per key block and tile from F16 / Q8_0), so:
//   scores:     St[t][j]  = sum_d K[t][d] * Qt[d][j]     broadcast one key element, FMA over queries
//   softmax:    per lane: mask, running max, exp, sum    vertical in t, no horizontal reductions
//   accumulate: Ot[d][j] += sum_t V[t][d] * P[t][j]      broadcast one value element, FMA over queries
// Every key and value element is converted once and then reused by all queries of the tile from
// registers (grouped-query heads read each K/V row once), there are no horizontal sums, and the
// register tiles are (4 keys or 4 dims) x (up to 4 vectors of queries).
//
// A scalar reference twin, AVX2+FMA+F16C (8 lanes) and AVX-512F (16 lanes; tiles of at most 8
// queries, i.e. decode with a GQA group of 8, use the 8-lane code) versions, by target attributes
// (the translation unit needs no -mavx2). The table is chosen once from kernels::default_isa()
// (TINFER_ISA lowers it). The exp is kernels/scalar/exp.hpp's polynomial (relative error ~2e-7),
// computed with the same fused multiply-adds by the scalar twin, AVX2 and AVX-512. Each lane's arithmetic is
// the same whichever lane, tile or ISA computes the query, so results depend neither on how work
// is split across threads nor on the ISA path (bit-identical; tests check it).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "tinfer/kernels/avx2/exp.hpp"
#include "tinfer/kernels/avx512/exp.hpp"
#endif

#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/core/float16.hpp"
#include "tinfer/kernels/cpu_features.hpp"
#include "tinfer/kernels/scalar/exp.hpp"

namespace tinfer::attn {

/// Tile rows (ld) are padded to a multiple of this many queries.
inline constexpr int kLanePad = 16;

/// dst[t * hd + d] = element off + d of cache row t (row t at base + t * stride bytes), t < n.
using ConvertRowsFn = void (*)(const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd, int n, float* dst);
/// St[t * ld + j] = sum_d K[t * ks + d] * Qt[d * ld + j] for t < n, j < nl (nl a multiple of 8).
using ScoresFn = void (*)(const float* K, std::int64_t ks, int n, const float* Qt, int ld, int nl, int hd, float* St);
/// Online-softmax step for key positions tpos0 .. tpos0 + n - 1: score (t, j) counts when
/// lo[j] <= tpos0 + t <= hi[j]. Updates the running max m[j] and denominator l[j], rescales
/// Ot[d * ld + j] (d < hd) by exp(m_old - m_new), and replaces St by the weights exp(s - m_new)
/// (0 for masked keys).
using SoftmaxFn = void (*)(float* St, int ld, int nl, int n, float tpos0, const float* lo, const float* hi, float* m, float* l,
                           float* Ot, int hd);
/// Ot[d * ld + j] += sum_t V[t * vs + d] * P[t * ld + j] for d < hd, j < nl.
using AccumulateFn = void (*)(const float* V, std::int64_t vs, int n, const float* P, int ld, int nl, int hd, float* Ot);

/// Pair layout, for tiles of at most 8 queries on 16-lane hardware (decode with a GQA group of
/// 8): lane 2j+h holds query j's even (h = 0) or odd (h = 1) dimensions, so a 16-lane FMA serves
/// 8 queries x 2 dims with one 64-bit broadcast of an adjacent key pair. Q2[e * 16 + 2j + h] =
/// q_j[2e + h] for e < hd / 2 (hd even). Scores come out summed over both halves and duplicated:
/// S2[t * 16 + 2j + h] = score(t, j), so softmax() runs on it unchanged (ld 16, nl 16) and its
/// weights feed accumulate_pair(), which leaves O2[e * 16 + 2j + h] = o_j[2e + h].
using ScoresPairFn = void (*)(const float* K, std::int64_t ks, int n, const float* Q2, int hd, float* S2);
using AccumulatePairFn = void (*)(const float* V, std::int64_t vs, int n, const float* P2, int hd, float* O2);

namespace scalar {

inline float load_elem(KVCacheType t, const std::uint8_t* row, std::int64_t i) noexcept {
  switch (t) {
    case KVCacheType::F32: {
      float f;
      std::memcpy(&f, row + 4 * i, 4);
      return f;
    }
    case KVCacheType::F16: {
      std::uint16_t h;
      std::memcpy(&h, row + 2 * i, 2);
      return f16::to_float(h);
    }
    case KVCacheType::Q8_0: {
      const std::uint8_t* blk = row + (i / kv::kQ8Block) * kv::kQ8BlockBytes;
      std::uint16_t h;
      std::memcpy(&h, blk, 2);
      return f16::to_float(h) * static_cast<float>(static_cast<std::int8_t>(blk[2 + i % kv::kQ8Block]));
    }
  }
  return 0.0f;
}

template <KVCacheType T>
void convert_rows(const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd, int n, float* dst) {
  for (int t = 0; t < n; ++t) {
    const std::uint8_t* row = base + t * stride;
    for (int d = 0; d < hd; ++d) dst[static_cast<std::int64_t>(t) * hd + d] = load_elem(T, row, off + d);
  }
}

inline void scores(const float* K, std::int64_t ks, int n, const float* Qt, int ld, int nl, int hd, float* St) {
  for (int t = 0; t < n; ++t) {
    float* s = St + static_cast<std::int64_t>(t) * ld;
    for (int j = 0; j < nl; ++j) s[j] = 0.0f;
    for (int d = 0; d < hd; ++d) {
      const float kd = K[t * ks + d];
      const float* q = Qt + static_cast<std::int64_t>(d) * ld;
      for (int j = 0; j < nl; ++j) s[j] = std::fma(kd, q[j], s[j]);
    }
  }
}

/// The shared exp of kernels/scalar/exp.hpp (the SIMD exp8 / exp16 are its twins).
inline float exp_poly(float x) noexcept { return kernels::scalar::exp_approx(x); }

inline void softmax(float* St, int ld, int nl, int n, float tpos0, const float* lo, const float* hi, float* m, float* l, float* Ot,
                    int hd) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int j = 0; j < nl; ++j) {
    float mx = kNegInf;
    for (int t = 0; t < n; ++t) {
      float& s = St[static_cast<std::int64_t>(t) * ld + j];
      const float tp = tpos0 + static_cast<float>(t);
      if (!(tp >= lo[j] && tp <= hi[j])) s = kNegInf;
      mx = std::max(mx, s);
    }
    const float m_new = std::max(m[j], mx);
    const float m_use = m_new == kNegInf ? 0.0f : m_new;  // no key yet: keep everything at 0
    const float corr = exp_poly(m[j] - m_use);
    float sum = 0.0f;
    for (int t = 0; t < n; ++t) {
      float& s = St[static_cast<std::int64_t>(t) * ld + j];
      s = s == kNegInf ? 0.0f : exp_poly(s - m_use);
      sum += s;
    }
    m[j] = m_new;
    l[j] = std::fma(l[j], corr, sum);
    for (int d = 0; d < hd; ++d) Ot[static_cast<std::int64_t>(d) * ld + j] *= corr;
  }
}

inline void accumulate(const float* V, std::int64_t vs, int n, const float* P, int ld, int nl, int hd, float* Ot) {
  for (int d = 0; d < hd; ++d) {
    float* o = Ot + static_cast<std::int64_t>(d) * ld;
    for (int t = 0; t < n; ++t) {
      const float v = V[t * vs + d];
      const float* p = P + static_cast<std::int64_t>(t) * ld;
      for (int j = 0; j < nl; ++j) o[j] = std::fma(v, p[j], o[j]);
    }
  }
}

inline void scores_pair(const float* K, std::int64_t ks, int n, const float* Q2, int hd, float* S2) {
  for (int t = 0; t < n; ++t) {
    for (int j = 0; j < 8; ++j) {
      float h0 = 0.0f, h1 = 0.0f;
      for (int e = 0; e < hd / 2; ++e) {
        h0 += K[t * ks + 2 * e] * Q2[e * 16 + 2 * j];
        h1 += K[t * ks + 2 * e + 1] * Q2[e * 16 + 2 * j + 1];
      }
      S2[t * 16 + 2 * j] = S2[t * 16 + 2 * j + 1] = h0 + h1;
    }
  }
}

inline void accumulate_pair(const float* V, std::int64_t vs, int n, const float* P2, int hd, float* O2) {
  for (int e = 0; e < hd / 2; ++e) {
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < 16; ++i) O2[e * 16 + i] += V[t * vs + 2 * e + (i & 1)] * P2[t * 16 + i];
    }
  }
}

}  // namespace scalar

#if defined(__x86_64__) || defined(_M_X64)
#define TINFER_ATTN_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TINFER_ATTN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

namespace avx2 {

inline float q8_scale(const std::uint8_t* blk) noexcept {
  std::uint16_t h;
  std::memcpy(&h, blk, 2);
  return f16::to_float(h);
}

TINFER_ATTN_AVX2 inline __m256 load8_i8(const std::uint8_t* p) {
  std::int64_t v;
  std::memcpy(&v, p, 8);
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(v)));
}

TINFER_ATTN_AVX2 inline void convert_f16(const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd, int n, float* dst) {
  if (hd % 8 != 0) return scalar::convert_rows<KVCacheType::F16>(base, stride, off, hd, n, dst);
  for (int t = 0; t < n; ++t) {
    const std::uint8_t* row = base + t * stride + 2 * off;
    float* o = dst + static_cast<std::int64_t>(t) * hd;
    for (int d = 0; d < hd; d += 8) {
      _mm256_storeu_ps(o + d, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * d))));
    }
  }
}

TINFER_ATTN_AVX2 inline void convert_q8(const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd, int n, float* dst) {
  if (hd % kv::kQ8Block != 0 || off % kv::kQ8Block != 0) {
    return scalar::convert_rows<KVCacheType::Q8_0>(base, stride, off, hd, n, dst);
  }
  const int nb = hd / kv::kQ8Block;
  for (int t = 0; t < n; ++t) {
    const std::uint8_t* row = base + t * stride + off / kv::kQ8Block * kv::kQ8BlockBytes;
    float* o = dst + static_cast<std::int64_t>(t) * hd;
    for (int b = 0; b < nb; ++b) {
      const std::uint8_t* blk = row + b * kv::kQ8BlockBytes;
      const __m256 s = _mm256_set1_ps(q8_scale(blk));
      for (int i = 0; i < kv::kQ8Block; i += 8) _mm256_storeu_ps(o + b * kv::kQ8Block + i, _mm256_mul_ps(s, load8_i8(blk + 2 + i)));
    }
  }
}

/// kernels/avx2/exp.hpp's exp.
TINFER_ATTN_AVX2 inline __m256 exp8(__m256 x) { return kernels::avx2::exp_approx(x); }

/// Register tile: KT keys x QV vectors of 8 queries.
template <int KT, int QV>
TINFER_ATTN_AVX2 inline void scores_tile(const float* K, std::int64_t ks, const float* Qt, int ld, int hd, float* St) {
  __m256 acc[KT][QV];
#pragma GCC unroll 8
  for (int a = 0; a < KT; ++a)
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) acc[a][v] = _mm256_setzero_ps();
  for (int d = 0; d < hd; ++d) {
    __m256 q[QV];
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) q[v] = _mm256_loadu_ps(Qt + static_cast<std::int64_t>(d) * ld + 8 * v);
#pragma GCC unroll 8
    for (int a = 0; a < KT; ++a) {
      const __m256 b = _mm256_broadcast_ss(K + a * ks + d);
#pragma GCC unroll 4
      for (int v = 0; v < QV; ++v) acc[a][v] = _mm256_fmadd_ps(b, q[v], acc[a][v]);
    }
  }
#pragma GCC unroll 8
  for (int a = 0; a < KT; ++a)
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) _mm256_storeu_ps(St + static_cast<std::int64_t>(a) * ld + 8 * v, acc[a][v]);
}

template <int QV>
TINFER_ATTN_AVX2 inline void scores_cols(const float* K, std::int64_t ks, int n, const float* Qt, int ld, int hd, float* St) {
  constexpr int KT = QV == 1 ? 8 : 4;
  int t = 0;
  for (; t + KT <= n; t += KT) scores_tile<KT, QV>(K + t * ks, ks, Qt, ld, hd, St + static_cast<std::int64_t>(t) * ld);
  for (; t < n; ++t) scores_tile<1, QV>(K + t * ks, ks, Qt, ld, hd, St + static_cast<std::int64_t>(t) * ld);
}

TINFER_ATTN_AVX2 inline void scores(const float* K, std::int64_t ks, int n, const float* Qt, int ld, int nl, int hd, float* St) {
  for (int j = 0; j < nl; j += 32) {
    switch (std::min(4, (nl - j) / 8)) {
      case 4: scores_cols<4>(K, ks, n, Qt + j, ld, hd, St + j); break;
      case 3: scores_cols<3>(K, ks, n, Qt + j, ld, hd, St + j); break;
      case 2: scores_cols<2>(K, ks, n, Qt + j, ld, hd, St + j); break;
      default: scores_cols<1>(K, ks, n, Qt + j, ld, hd, St + j); break;
    }
  }
}

/// Register tile: DT value dims x QV vectors of 8 queries, over all n keys.
template <int DT, int QV>
TINFER_ATTN_AVX2 inline void acc_tile(const float* V, std::int64_t vs, int n, const float* P, int ld, float* Ot) {
  __m256 acc[DT][QV];
#pragma GCC unroll 8
  for (int a = 0; a < DT; ++a)
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) acc[a][v] = _mm256_loadu_ps(Ot + static_cast<std::int64_t>(a) * ld + 8 * v);
  for (int t = 0; t < n; ++t) {
    __m256 p[QV];
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) p[v] = _mm256_loadu_ps(P + static_cast<std::int64_t>(t) * ld + 8 * v);
#pragma GCC unroll 8
    for (int a = 0; a < DT; ++a) {
      const __m256 b = _mm256_broadcast_ss(V + t * vs + a);
#pragma GCC unroll 4
      for (int v = 0; v < QV; ++v) acc[a][v] = _mm256_fmadd_ps(b, p[v], acc[a][v]);
    }
  }
#pragma GCC unroll 8
  for (int a = 0; a < DT; ++a)
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) _mm256_storeu_ps(Ot + static_cast<std::int64_t>(a) * ld + 8 * v, acc[a][v]);
}

template <int QV>
TINFER_ATTN_AVX2 inline void acc_cols(const float* V, std::int64_t vs, int n, const float* P, int ld, int hd, float* Ot) {
  constexpr int DT = QV == 1 ? 8 : 4;
  int d = 0;
  for (; d + DT <= hd; d += DT) acc_tile<DT, QV>(V + d, vs, n, P, ld, Ot + static_cast<std::int64_t>(d) * ld);
  for (; d < hd; ++d) acc_tile<1, QV>(V + d, vs, n, P, ld, Ot + static_cast<std::int64_t>(d) * ld);
}

TINFER_ATTN_AVX2 inline void accumulate(const float* V, std::int64_t vs, int n, const float* P, int ld, int nl, int hd, float* Ot) {
  for (int j = 0; j < nl; j += 32) {
    switch (std::min(4, (nl - j) / 8)) {
      case 4: acc_cols<4>(V, vs, n, P + j, ld, hd, Ot + j); break;
      case 3: acc_cols<3>(V, vs, n, P + j, ld, hd, Ot + j); break;
      case 2: acc_cols<2>(V, vs, n, P + j, ld, hd, Ot + j); break;
      default: acc_cols<1>(V, vs, n, P + j, ld, hd, Ot + j); break;
    }
  }
}

TINFER_ATTN_AVX2 inline void softmax(float* St, int ld, int nl, int n, float tpos0, const float* lo, const float* hi, float* m,
                                     float* l, float* Ot, int hd) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int j = 0; j < nl; j += 8) {
    const __m256 lov = _mm256_loadu_ps(lo + j), hiv = _mm256_loadu_ps(hi + j);
    __m256 mx = ninf;
    for (int t = 0; t < n; ++t) {
      float* s = St + static_cast<std::int64_t>(t) * ld + j;
      const __m256 tp = _mm256_set1_ps(tpos0 + static_cast<float>(t));
      const __m256 ok = _mm256_and_ps(_mm256_cmp_ps(tp, lov, _CMP_GE_OQ), _mm256_cmp_ps(tp, hiv, _CMP_LE_OQ));
      const __m256 sv = _mm256_blendv_ps(ninf, _mm256_loadu_ps(s), ok);
      _mm256_storeu_ps(s, sv);
      mx = _mm256_max_ps(mx, sv);
    }
    const __m256 m_old = _mm256_loadu_ps(m + j);
    const __m256 m_new = _mm256_max_ps(m_old, mx);
    const __m256 m_use = _mm256_andnot_ps(_mm256_cmp_ps(m_new, ninf, _CMP_EQ_OQ), m_new);  // -inf -> 0
    const __m256 corr = exp8(_mm256_sub_ps(m_old, m_use));
    __m256 sum = _mm256_setzero_ps();
    for (int t = 0; t < n; ++t) {
      float* s = St + static_cast<std::int64_t>(t) * ld + j;
      const __m256 sv = _mm256_loadu_ps(s);
      const __m256 p = _mm256_and_ps(exp8(_mm256_sub_ps(sv, m_use)), _mm256_cmp_ps(sv, ninf, _CMP_NEQ_OQ));
      _mm256_storeu_ps(s, p);
      sum = _mm256_add_ps(sum, p);
    }
    _mm256_storeu_ps(m + j, m_new);
    _mm256_storeu_ps(l + j, _mm256_fmadd_ps(_mm256_loadu_ps(l + j), corr, sum));
    for (int d = 0; d < hd; ++d) {
      float* o = Ot + static_cast<std::int64_t>(d) * ld + j;
      _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_loadu_ps(o), corr));
    }
  }
}

}  // namespace avx2

// GCC 12's AVX-512 intrinsic headers start some operations from _mm512_undefined_*(), which
// -W(maybe-)uninitialized reports when inlined; the value is never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
namespace avx512 {

/// Prefetches the head's bytes [0, len) of the row kPrefetchRows ahead: a head's slice is a short
/// piece of each long cache row, a stride the hardware prefetchers follow poorly.
inline void prefetch_ahead(const std::uint8_t* row, std::int64_t stride, int len) {
  constexpr int kPrefetchRows = 8;
  const char* p = reinterpret_cast<const char*>(row + kPrefetchRows * stride);
  for (int i = 0; i < len; i += 64) _mm_prefetch(p + i, _MM_HINT_T0);
}

TINFER_ATTN_AVX512 inline void convert_f16(const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd, int n, float* dst) {
  if (hd % 16 != 0) return avx2::convert_f16(base, stride, off, hd, n, dst);
  for (int t = 0; t < n; ++t) {
    const std::uint8_t* row = base + t * stride + 2 * off;
    float* o = dst + static_cast<std::int64_t>(t) * hd;
    prefetch_ahead(row, stride, 2 * hd);
    for (int d = 0; d < hd; d += 16) {
      _mm512_storeu_ps(o + d, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * d))));
    }
  }
}

TINFER_ATTN_AVX512 inline void convert_q8(const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd, int n, float* dst) {
  if (hd % kv::kQ8Block != 0 || off % kv::kQ8Block != 0) {
    return scalar::convert_rows<KVCacheType::Q8_0>(base, stride, off, hd, n, dst);
  }
  const int nb = hd / kv::kQ8Block;
  for (int t = 0; t < n; ++t) {
    const std::uint8_t* row = base + t * stride + off / kv::kQ8Block * kv::kQ8BlockBytes;
    float* o = dst + static_cast<std::int64_t>(t) * hd;
    prefetch_ahead(row, stride, nb * kv::kQ8BlockBytes);
    for (int b = 0; b < nb; ++b) {
      const std::uint8_t* blk = row + b * kv::kQ8BlockBytes;
      const __m512 s = _mm512_set1_ps(avx2::q8_scale(blk));
      for (int i = 0; i < kv::kQ8Block; i += 16) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2 + i));
        _mm512_storeu_ps(o + b * kv::kQ8Block + i, _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))));
      }
    }
  }
}

/// kernels/avx512/exp.hpp's exp.
TINFER_ATTN_AVX512 inline __m512 exp16(__m512 x) { return kernels::avx512::exp_approx(x); }

template <int KT, int QV>
TINFER_ATTN_AVX512 inline void scores_tile(const float* K, std::int64_t ks, const float* Qt, int ld, int hd, float* St) {
  __m512 acc[KT][QV];
#pragma GCC unroll 8
  for (int a = 0; a < KT; ++a)
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) acc[a][v] = _mm512_setzero_ps();
  for (int d = 0; d < hd; ++d) {
    __m512 q[QV];
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) q[v] = _mm512_loadu_ps(Qt + static_cast<std::int64_t>(d) * ld + 16 * v);
#pragma GCC unroll 8
    for (int a = 0; a < KT; ++a) {
      const __m512 b = _mm512_set1_ps(K[a * ks + d]);
#pragma GCC unroll 4
      for (int v = 0; v < QV; ++v) acc[a][v] = _mm512_fmadd_ps(b, q[v], acc[a][v]);
    }
  }
#pragma GCC unroll 8
  for (int a = 0; a < KT; ++a)
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) _mm512_storeu_ps(St + static_cast<std::int64_t>(a) * ld + 16 * v, acc[a][v]);
}

template <int QV>
TINFER_ATTN_AVX512 inline void scores_cols(const float* K, std::int64_t ks, int n, const float* Qt, int ld, int hd, float* St) {
  constexpr int KT = QV == 1 ? 8 : (QV == 2 ? 6 : 4);
  int t = 0;
  for (; t + KT <= n; t += KT) scores_tile<KT, QV>(K + t * ks, ks, Qt, ld, hd, St + static_cast<std::int64_t>(t) * ld);
  for (; t < n; ++t) scores_tile<1, QV>(K + t * ks, ks, Qt, ld, hd, St + static_cast<std::int64_t>(t) * ld);
}

TINFER_ATTN_AVX512 inline void scores(const float* K, std::int64_t ks, int n, const float* Qt, int ld, int nl, int hd, float* St) {
  if (nl <= 8) return avx2::scores(K, ks, n, Qt, ld, nl, hd, St);
  for (int j = 0; j < nl; j += 64) {
    switch (std::min(4, (nl - j + 15) / 16)) {  // lanes up to ld (a multiple of 16) may be computed
      case 4: scores_cols<4>(K, ks, n, Qt + j, ld, hd, St + j); break;
      case 3: scores_cols<3>(K, ks, n, Qt + j, ld, hd, St + j); break;
      case 2: scores_cols<2>(K, ks, n, Qt + j, ld, hd, St + j); break;
      default: scores_cols<1>(K, ks, n, Qt + j, ld, hd, St + j); break;
    }
  }
}

template <int DT, int QV>
TINFER_ATTN_AVX512 inline void acc_tile(const float* V, std::int64_t vs, int n, const float* P, int ld, float* Ot) {
  __m512 acc[DT][QV];
#pragma GCC unroll 8
  for (int a = 0; a < DT; ++a)
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) acc[a][v] = _mm512_loadu_ps(Ot + static_cast<std::int64_t>(a) * ld + 16 * v);
  for (int t = 0; t < n; ++t) {
    __m512 p[QV];
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) p[v] = _mm512_loadu_ps(P + static_cast<std::int64_t>(t) * ld + 16 * v);
#pragma GCC unroll 8
    for (int a = 0; a < DT; ++a) {
      const __m512 b = _mm512_set1_ps(V[t * vs + a]);
#pragma GCC unroll 4
      for (int v = 0; v < QV; ++v) acc[a][v] = _mm512_fmadd_ps(b, p[v], acc[a][v]);
    }
  }
#pragma GCC unroll 8
  for (int a = 0; a < DT; ++a)
#pragma GCC unroll 4
    for (int v = 0; v < QV; ++v) _mm512_storeu_ps(Ot + static_cast<std::int64_t>(a) * ld + 16 * v, acc[a][v]);
}

template <int QV>
TINFER_ATTN_AVX512 inline void acc_cols(const float* V, std::int64_t vs, int n, const float* P, int ld, int hd, float* Ot) {
  constexpr int DT = QV == 1 ? 8 : (QV == 2 ? 6 : 4);
  int d = 0;
  for (; d + DT <= hd; d += DT) acc_tile<DT, QV>(V + d, vs, n, P, ld, Ot + static_cast<std::int64_t>(d) * ld);
  for (; d < hd; ++d) acc_tile<1, QV>(V + d, vs, n, P, ld, Ot + static_cast<std::int64_t>(d) * ld);
}

TINFER_ATTN_AVX512 inline void accumulate(const float* V, std::int64_t vs, int n, const float* P, int ld, int nl, int hd, float* Ot) {
  if (nl <= 8) return avx2::accumulate(V, vs, n, P, ld, nl, hd, Ot);
  for (int j = 0; j < nl; j += 64) {
    switch (std::min(4, (nl - j + 15) / 16)) {
      case 4: acc_cols<4>(V, vs, n, P + j, ld, hd, Ot + j); break;
      case 3: acc_cols<3>(V, vs, n, P + j, ld, hd, Ot + j); break;
      case 2: acc_cols<2>(V, vs, n, P + j, ld, hd, Ot + j); break;
      default: acc_cols<1>(V, vs, n, P + j, ld, hd, Ot + j); break;
    }
  }
}

TINFER_ATTN_AVX512 inline void softmax(float* St, int ld, int nl, int n, float tpos0, const float* lo, const float* hi, float* m,
                                       float* l, float* Ot, int hd) {
  if (nl <= 8) return avx2::softmax(St, ld, nl, n, tpos0, lo, hi, m, l, Ot, hd);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int j = 0; j < nl; j += 16) {
    const __m512 lov = _mm512_loadu_ps(lo + j), hiv = _mm512_loadu_ps(hi + j);
    __m512 mx = ninf;
    for (int t = 0; t < n; ++t) {
      float* s = St + static_cast<std::int64_t>(t) * ld + j;
      const __m512 tp = _mm512_set1_ps(tpos0 + static_cast<float>(t));
      const __mmask16 ok = _mm512_cmp_ps_mask(tp, lov, _CMP_GE_OQ) & _mm512_cmp_ps_mask(tp, hiv, _CMP_LE_OQ);
      const __m512 sv = _mm512_mask_blend_ps(ok, ninf, _mm512_loadu_ps(s));
      _mm512_storeu_ps(s, sv);
      mx = _mm512_max_ps(mx, sv);
    }
    const __m512 m_old = _mm512_loadu_ps(m + j);
    const __m512 m_new = _mm512_max_ps(m_old, mx);
    const __m512 m_use = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m_new, ninf, _CMP_NEQ_OQ), m_new);  // -inf -> 0
    const __m512 corr = exp16(_mm512_sub_ps(m_old, m_use));
    __m512 sum = _mm512_setzero_ps();
    for (int t = 0; t < n; ++t) {
      float* s = St + static_cast<std::int64_t>(t) * ld + j;
      const __m512 sv = _mm512_loadu_ps(s);
      const __m512 p = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(sv, ninf, _CMP_NEQ_OQ), exp16(_mm512_sub_ps(sv, m_use)));
      _mm512_storeu_ps(s, p);
      sum = _mm512_add_ps(sum, p);
    }
    _mm512_storeu_ps(m + j, m_new);
    _mm512_storeu_ps(l + j, _mm512_fmadd_ps(_mm512_loadu_ps(l + j), corr, sum));
    for (int d = 0; d < hd; ++d) {
      float* o = Ot + static_cast<std::int64_t>(d) * ld + j;
      _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_loadu_ps(o), corr));
    }
  }
}

/// Broadcasts the adjacent pair p[0], p[1] to all 8 lane pairs.
TINFER_ATTN_AVX512 inline __m512 bcast_pair(const float* p) {
  double d;
  std::memcpy(&d, p, 8);
  return _mm512_castpd_ps(_mm512_set1_pd(d));
}

template <int KT>
TINFER_ATTN_AVX512 inline void scores_pair_tile(const float* K, std::int64_t ks, const float* Q2, int hd, float* S2) {
  __m512 acc[KT];
#pragma GCC unroll 8
  for (int a = 0; a < KT; ++a) acc[a] = _mm512_setzero_ps();
  for (int e = 0; e < hd / 2; ++e) {
    const __m512 q = _mm512_loadu_ps(Q2 + e * 16);
#pragma GCC unroll 8
    for (int a = 0; a < KT; ++a) acc[a] = _mm512_fmadd_ps(bcast_pair(K + a * ks + 2 * e), q, acc[a]);
  }
#pragma GCC unroll 8
  for (int a = 0; a < KT; ++a) {
    // Even + odd halves of each lane pair, left in both lanes.
    _mm512_storeu_ps(S2 + a * 16, _mm512_add_ps(acc[a], _mm512_permute_ps(acc[a], 0xB1)));
  }
}

TINFER_ATTN_AVX512 inline void scores_pair(const float* K, std::int64_t ks, int n, const float* Q2, int hd, float* S2) {
  int t = 0;
  for (; t + 8 <= n; t += 8) scores_pair_tile<8>(K + t * ks, ks, Q2, hd, S2 + t * 16);
  for (; t < n; ++t) scores_pair_tile<1>(K + t * ks, ks, Q2, hd, S2 + t * 16);
}

template <int ET>
TINFER_ATTN_AVX512 inline void acc_pair_tile(const float* V, std::int64_t vs, int n, const float* P2, float* O2) {
  __m512 acc[ET];
#pragma GCC unroll 8
  for (int a = 0; a < ET; ++a) acc[a] = _mm512_loadu_ps(O2 + a * 16);
  for (int t = 0; t < n; ++t) {
    const __m512 p = _mm512_loadu_ps(P2 + t * 16);
#pragma GCC unroll 8
    for (int a = 0; a < ET; ++a) acc[a] = _mm512_fmadd_ps(bcast_pair(V + t * vs + 2 * a), p, acc[a]);
  }
#pragma GCC unroll 8
  for (int a = 0; a < ET; ++a) _mm512_storeu_ps(O2 + a * 16, acc[a]);
}

TINFER_ATTN_AVX512 inline void accumulate_pair(const float* V, std::int64_t vs, int n, const float* P2, int hd, float* O2) {
  int e = 0;
  for (; e + 8 <= hd / 2; e += 8) acc_pair_tile<8>(V + 2 * e, vs, n, P2, O2 + e * 16);
  for (; e < hd / 2; ++e) acc_pair_tile<1>(V + 2 * e, vs, n, P2, O2 + e * 16);
}

}  // namespace avx512
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#undef TINFER_ATTN_AVX2
#undef TINFER_ATTN_AVX512
#endif

/// The kernels of one ISA level. convert[] is indexed by KVCacheType (F32 rows are read in place).
struct AttnKernels {
  kernels::Isa isa = kernels::Isa::Scalar;
  ConvertRowsFn convert[3] = {};
  ScoresFn scores = nullptr;
  SoftmaxFn softmax = nullptr;
  AccumulateFn accumulate = nullptr;
  /// Pair-layout kernels (nullptr: this level uses the plain layout for small tiles too).
  ScoresPairFn scores_pair = nullptr;
  AccumulatePairFn accumulate_pair = nullptr;
};

inline AttnKernels make_attn_kernels(kernels::Isa isa) {
  AttnKernels k;
  k.isa = kernels::Isa::Scalar;
  k.convert[0] = scalar::convert_rows<KVCacheType::F32>;
  k.convert[1] = scalar::convert_rows<KVCacheType::F16>;
  k.convert[2] = scalar::convert_rows<KVCacheType::Q8_0>;
  k.scores = scalar::scores;
  k.softmax = scalar::softmax;
  k.accumulate = scalar::accumulate;
#if defined(__x86_64__) || defined(_M_X64)
  const auto& f = kernels::cpu_features();
  if (static_cast<int>(isa) >= static_cast<int>(kernels::Isa::Avx2) && f.avx2) {
    k.isa = kernels::Isa::Avx2;
    k.convert[1] = avx2::convert_f16;
    k.convert[2] = avx2::convert_q8;
    k.scores = avx2::scores;
    k.softmax = avx2::softmax;
    k.accumulate = avx2::accumulate;
  }
  if (static_cast<int>(isa) >= static_cast<int>(kernels::Isa::Avx512) && f.avx512 && f.avx2) {
    k.isa = kernels::Isa::Avx512;
    k.convert[1] = avx512::convert_f16;
    k.convert[2] = avx512::convert_q8;
    k.scores = avx512::scores;
    k.softmax = avx512::softmax;
    k.accumulate = avx512::accumulate;
    // The pair layout (avx512::scores_pair / accumulate_pair) sums even and odd dimensions
    // separately, which rounds differently from the plain layout of the other levels; it stays
    // off so every ISA gives the same bits (tokens must not depend on the ISA path).
  }
#endif
  return k;
}

/// The kernels for `isa` (clamped to what the machine supports).
inline const AttnKernels& attn_kernels(kernels::Isa isa) {
  static const AttnKernels scalar_k = make_attn_kernels(kernels::Isa::Scalar);
  static const AttnKernels avx2_k = make_attn_kernels(kernels::Isa::Avx2);
  static const AttnKernels avx512_k = make_attn_kernels(kernels::Isa::Avx512);
  switch (isa) {
    case kernels::Isa::Scalar: return scalar_k;
    case kernels::Isa::Avx2: return avx2_k;
    case kernels::Isa::Avx512: return avx512_k;
  }
  return scalar_k;
}

/// The kernels attention uses: kernels::default_isa() (TINFER_ISA), chosen once.
inline const AttnKernels& attn_kernels() {
  static const AttnKernels& k = attn_kernels(kernels::default_isa());
  return k;
}

}  // namespace tinfer::attn
