// tinfer/attention/attention_kernels.hpp: the inner loops of attention over a KV cache of any
// element type (F32, F16, Q8_0), read in place: scores of one query against a run of cached keys,
// the probability-weighted sum of a run of cached values, and exp-and-sum of a score block.
//
// A scalar reference twin and AVX2+FMA+F16C versions (target attributes, so the translation unit
// needs no -mavx2); the table is chosen once from kernels::default_isa() (TINFER_ISA lowers it).
// The AVX2 exp is a polynomial (Cephes expf, relative error ~2e-7); the scalar one is std::exp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/core/float16.hpp"
#include "tinfer/kernels/cpu_features.hpp"

namespace tinfer::attn {

/// scores[t] = dot(q, K_t[off, off + hd)) for t in [0, n), where row K_t starts at base + t*stride
/// bytes and `off` is the element offset of the head inside the row.
using DotKeysFn = void (*)(const float* q, const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd, int n,
                           float* scores);
/// acc[d] += sum_t p[t] * V_t[off + d] for d in [0, hd).
using AccValuesFn = void (*)(const float* p, const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd, int n,
                             float* acc);
/// s[t] = exp(s[t] - m) for t in [0, n); returns the sum.
using ExpSumFn = float (*)(float* s, int n, float m);

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
void dot_keys(const float* q, const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd, int n, float* scores) {
  for (int t = 0; t < n; ++t) {
    const std::uint8_t* row = base + t * stride;
    float s = 0.0f;
    for (int d = 0; d < hd; ++d) s += q[d] * load_elem(T, row, off + d);
    scores[t] = s;
  }
}

template <KVCacheType T>
void acc_values(const float* p, const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd, int n, float* acc) {
  for (int t = 0; t < n; ++t) {
    const std::uint8_t* row = base + t * stride;
    const float a = p[t];
    for (int d = 0; d < hd; ++d) acc[d] += a * load_elem(T, row, off + d);
  }
}

inline float exp_sum(float* s, int n, float m) {
  float sum = 0.0f;
  for (int t = 0; t < n; ++t) {
    s[t] = std::exp(s[t] - m);
    sum += s[t];
  }
  return sum;
}

}  // namespace scalar

#if defined(__x86_64__) || defined(_M_X64)
#define TINFER_ATTN_AVX2 __attribute__((target("avx2,fma,f16c")))
namespace avx2 {

TINFER_ATTN_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

TINFER_ATTN_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
TINFER_ATTN_AVX2 inline __m256 load8(const std::uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
TINFER_ATTN_AVX2 inline __m256 load8_i8(const std::uint8_t* p) {
  std::int64_t v;
  std::memcpy(&v, p, 8);
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(v)));
}

/// F32 / F16 keys: four keys at a time for independent accumulation chains.
template <class E>
TINFER_ATTN_AVX2 void dot_keys_float(const float* q, const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd,
                                     int n, float* scores) {
  if (hd % 8 != 0) {
    constexpr KVCacheType T = sizeof(E) == 4 ? KVCacheType::F32 : KVCacheType::F16;
    scalar::dot_keys<T>(q, base, stride, off, hd, n, scores);
    return;
  }
  int t = 0;
  for (; t + 4 <= n; t += 4) {
    const E* k0 = reinterpret_cast<const E*>(base + t * stride) + off;
    const E* k1 = reinterpret_cast<const E*>(base + (t + 1) * stride) + off;
    const E* k2 = reinterpret_cast<const E*>(base + (t + 2) * stride) + off;
    const E* k3 = reinterpret_cast<const E*>(base + (t + 3) * stride) + off;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int d = 0; d < hd; d += 8) {
      const __m256 qv = _mm256_loadu_ps(q + d);
      a0 = _mm256_fmadd_ps(qv, load8(k0 + d), a0);
      a1 = _mm256_fmadd_ps(qv, load8(k1 + d), a1);
      a2 = _mm256_fmadd_ps(qv, load8(k2 + d), a2);
      a3 = _mm256_fmadd_ps(qv, load8(k3 + d), a3);
    }
    scores[t] = hsum(a0);
    scores[t + 1] = hsum(a1);
    scores[t + 2] = hsum(a2);
    scores[t + 3] = hsum(a3);
  }
  for (; t < n; ++t) {
    const E* k = reinterpret_cast<const E*>(base + t * stride) + off;
    __m256 a = _mm256_setzero_ps();
    for (int d = 0; d < hd; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load8(k + d), a);
    scores[t] = hsum(a);
  }
}

template <class E>
TINFER_ATTN_AVX2 void acc_values_float(const float* p, const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd,
                                       int n, float* acc) {
  if (hd % 8 != 0) {
    constexpr KVCacheType T = sizeof(E) == 4 ? KVCacheType::F32 : KVCacheType::F16;
    scalar::acc_values<T>(p, base, stride, off, hd, n, acc);
    return;
  }
  int d0 = 0;
  for (; d0 + 32 <= hd; d0 += 32) {
    __m256 a0 = _mm256_loadu_ps(acc + d0), a1 = _mm256_loadu_ps(acc + d0 + 8), a2 = _mm256_loadu_ps(acc + d0 + 16),
           a3 = _mm256_loadu_ps(acc + d0 + 24);
    for (int t = 0; t < n; ++t) {
      const E* v = reinterpret_cast<const E*>(base + t * stride) + off + d0;
      const __m256 pt = _mm256_set1_ps(p[t]);
      a0 = _mm256_fmadd_ps(pt, load8(v), a0);
      a1 = _mm256_fmadd_ps(pt, load8(v + 8), a1);
      a2 = _mm256_fmadd_ps(pt, load8(v + 16), a2);
      a3 = _mm256_fmadd_ps(pt, load8(v + 24), a3);
    }
    _mm256_storeu_ps(acc + d0, a0);
    _mm256_storeu_ps(acc + d0 + 8, a1);
    _mm256_storeu_ps(acc + d0 + 16, a2);
    _mm256_storeu_ps(acc + d0 + 24, a3);
  }
  for (; d0 < hd; d0 += 8) {
    __m256 a = _mm256_loadu_ps(acc + d0);
    for (int t = 0; t < n; ++t) {
      const E* v = reinterpret_cast<const E*>(base + t * stride) + off + d0;
      a = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), load8(v), a);
    }
    _mm256_storeu_ps(acc + d0, a);
  }
}

inline float q8_scale(const std::uint8_t* blk) noexcept {
  std::uint16_t h;
  std::memcpy(&h, blk, 2);
  return f16::to_float(h);
}

/// Q8_0 keys, heads aligned to blocks: per block d * dot(q, int8), one horizontal sum per key.
TINFER_ATTN_AVX2 inline void dot_keys_q8(const float* q, const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd,
                                         int n, float* scores) {
  if (hd % kv::kQ8Block != 0 || off % kv::kQ8Block != 0) {
    scalar::dot_keys<KVCacheType::Q8_0>(q, base, stride, off, hd, n, scores);
    return;
  }
  const int nb = hd / kv::kQ8Block;
  const std::int64_t b0 = off / kv::kQ8Block;
  for (int t = 0; t < n; ++t) {
    const std::uint8_t* row = base + t * stride + b0 * kv::kQ8BlockBytes;
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; ++b) {
      const std::uint8_t* blk = row + b * kv::kQ8BlockBytes;
      const float* qb = q + b * kv::kQ8Block;
      __m256 s0 = _mm256_mul_ps(_mm256_loadu_ps(qb), load8_i8(blk + 2));
      __m256 s1 = _mm256_mul_ps(_mm256_loadu_ps(qb + 8), load8_i8(blk + 10));
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(qb + 16), load8_i8(blk + 18), s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(qb + 24), load8_i8(blk + 26), s1);
      acc = _mm256_fmadd_ps(_mm256_set1_ps(q8_scale(blk)), _mm256_add_ps(s0, s1), acc);
    }
    scores[t] = hsum(acc);
  }
}

TINFER_ATTN_AVX2 inline void acc_values_q8(const float* p, const std::uint8_t* base, std::int64_t stride, std::int64_t off, int hd,
                                           int n, float* acc) {
  if (hd % kv::kQ8Block != 0 || off % kv::kQ8Block != 0) {
    scalar::acc_values<KVCacheType::Q8_0>(p, base, stride, off, hd, n, acc);
    return;
  }
  const int nb = hd / kv::kQ8Block;
  const std::int64_t b0 = off / kv::kQ8Block;
  for (int b = 0; b < nb; ++b) {
    float* ab = acc + b * kv::kQ8Block;
    __m256 a0 = _mm256_loadu_ps(ab), a1 = _mm256_loadu_ps(ab + 8), a2 = _mm256_loadu_ps(ab + 16), a3 = _mm256_loadu_ps(ab + 24);
    for (int t = 0; t < n; ++t) {
      const std::uint8_t* blk = base + t * stride + (b0 + b) * kv::kQ8BlockBytes;
      const __m256 s = _mm256_set1_ps(p[t] * q8_scale(blk));
      a0 = _mm256_fmadd_ps(s, load8_i8(blk + 2), a0);
      a1 = _mm256_fmadd_ps(s, load8_i8(blk + 10), a1);
      a2 = _mm256_fmadd_ps(s, load8_i8(blk + 18), a2);
      a3 = _mm256_fmadd_ps(s, load8_i8(blk + 26), a3);
    }
    _mm256_storeu_ps(ab, a0);
    _mm256_storeu_ps(ab + 8, a1);
    _mm256_storeu_ps(ab + 16, a2);
    _mm256_storeu_ps(ab + 24, a3);
  }
}

/// exp(x) for x <= ~88: range reduction by ln 2 and Cephes' degree-6 polynomial.
TINFER_ATTN_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));  // below: the result underflows to ~0 anyway
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

TINFER_ATTN_AVX2 inline float exp_sum(float* s, int n, float m) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256 acc = _mm256_setzero_ps();
  int t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), mv));
    _mm256_storeu_ps(s + t, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = hsum(acc);
  if (t < n) {
    float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = t; i < n; ++i) tail[i - t] = s[i] - m;
    alignas(32) float out[8];
    _mm256_store_ps(out, exp8(_mm256_loadu_ps(tail)));
    for (int i = t; i < n; ++i) {
      s[i] = out[i - t];
      sum += s[i];
    }
  }
  return sum;
}

}  // namespace avx2
#undef TINFER_ATTN_AVX2
#endif

/// The kernels of one ISA level, indexed by KVCacheType.
struct AttnKernels {
  kernels::Isa isa = kernels::Isa::Scalar;
  DotKeysFn dot_keys[3] = {};
  AccValuesFn acc_values[3] = {};
  ExpSumFn exp_sum = nullptr;
};

inline AttnKernels make_attn_kernels(kernels::Isa isa) {
  AttnKernels k;
  k.isa = kernels::Isa::Scalar;
  k.dot_keys[0] = scalar::dot_keys<KVCacheType::F32>;
  k.dot_keys[1] = scalar::dot_keys<KVCacheType::F16>;
  k.dot_keys[2] = scalar::dot_keys<KVCacheType::Q8_0>;
  k.acc_values[0] = scalar::acc_values<KVCacheType::F32>;
  k.acc_values[1] = scalar::acc_values<KVCacheType::F16>;
  k.acc_values[2] = scalar::acc_values<KVCacheType::Q8_0>;
  k.exp_sum = scalar::exp_sum;
#if defined(__x86_64__) || defined(_M_X64)
  if (static_cast<int>(isa) >= static_cast<int>(kernels::Isa::Avx2) && kernels::cpu_features().avx2) {
    k.isa = kernels::Isa::Avx2;
    k.dot_keys[0] = avx2::dot_keys_float<float>;
    k.dot_keys[1] = avx2::dot_keys_float<std::uint16_t>;
    k.dot_keys[2] = avx2::dot_keys_q8;
    k.acc_values[0] = avx2::acc_values_float<float>;
    k.acc_values[1] = avx2::acc_values_float<std::uint16_t>;
    k.acc_values[2] = avx2::acc_values_q8;
    k.exp_sum = avx2::exp_sum;
  }
#endif
  return k;
}

/// The kernels for `isa` (clamped to what the machine supports; AVX-512 machines use AVX2 here).
inline const AttnKernels& attn_kernels(kernels::Isa isa) {
  static const AttnKernels scalar_k = make_attn_kernels(kernels::Isa::Scalar);
  static const AttnKernels best_k = make_attn_kernels(kernels::Isa::Avx2);
  return isa == kernels::Isa::Scalar ? scalar_k : best_k;
}

/// The kernels attention uses: kernels::default_isa() (TINFER_ISA), chosen once.
inline const AttnKernels& attn_kernels() {
  static const AttnKernels& k = attn_kernels(kernels::default_isa());
  return k;
}

}  // namespace tinfer::attn
