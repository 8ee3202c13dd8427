// tinfer/kernels/avx512/norm.hpp: RMSNorm and LayerNorm with AVX-512F: the lanes of
// kernels/scalar/norm.hpp (its twin; the same bits) in registers, whole blocks of 16 elements
// in SIMD, the tail and the reduction tree through the scalar code on the stored lanes.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "tinfer/kernels/scalar/norm.hpp"

namespace tinfer::kernels::avx512 {

#define TNORM_TARGET __attribute__((target("avx512f,avx512dq,avx2,fma")))

TNORM_TARGET inline void rmsnorm(float* out, const float* x, const float* weight, std::int64_t n, float eps) noexcept {
  __m512 acc = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    acc = _mm512_fmadd_ps(v, v, acc);
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  for (std::int64_t e = i; e < n; ++e) lanes[e % 16] = std::fma(x[e], x[e], lanes[e % 16]);
  const float scale = scalar::rms_scale(scalar::reduce16(lanes), n, eps);
  const __m512 s = _mm512_set1_ps(scale);
  for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_loadu_ps(weight + i), _mm512_mul_ps(s, _mm512_loadu_ps(x + i))));
  for (; i < n; ++i) out[i] = weight[i] * (scale * x[i]);
}

TNORM_TARGET inline void layernorm(float* out, const float* x, const float* weight, const float* bias, std::int64_t n,
                                   float eps) noexcept {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  }
  alignas(64) double lanes[16];
  _mm512_store_pd(lanes, a0);
  _mm512_store_pd(lanes + 8, a1);
  for (std::int64_t e = i; e < n; ++e) lanes[e % 16] += static_cast<double>(x[e]);
  const double mean = scalar::reduce16(lanes) / static_cast<double>(n);
  const __m512d mv = _mm512_set1_pd(mean);
  a0 = _mm512_setzero_pd();
  a1 = _mm512_setzero_pd();
  for (i = 0; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), mv);
    const __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)), mv);
    a0 = _mm512_fmadd_pd(d0, d0, a0);
    a1 = _mm512_fmadd_pd(d1, d1, a1);
  }
  _mm512_store_pd(lanes, a0);
  _mm512_store_pd(lanes + 8, a1);
  for (std::int64_t e = i; e < n; ++e) {
    const double d = static_cast<double>(x[e]) - mean;
    lanes[e % 16] = std::fma(d, d, lanes[e % 16]);
  }
  const double var = scalar::reduce16(lanes) / static_cast<double>(n);
  const float m = static_cast<float>(mean);
  const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
  const __m512 mvf = _mm512_set1_ps(m), iv = _mm512_set1_ps(inv);
  for (i = 0; i + 16 <= n; i += 16) {
    const __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mvf), iv);
    const __m512 b = bias ? _mm512_loadu_ps(bias + i) : _mm512_setzero_ps();
    _mm512_storeu_ps(out + i, _mm512_fmadd_ps(t, _mm512_loadu_ps(weight + i), b));
  }
  for (; i < n; ++i) out[i] = std::fma((x[i] - m) * inv, weight[i], bias ? bias[i] : 0.0f);
}

#undef TNORM_TARGET

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
