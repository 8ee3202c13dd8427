// tinfer/kernels/avx2/norm.hpp: RMSNorm and LayerNorm with AVX2 + FMA: the 16 lanes of
// kernels/scalar/norm.hpp (its twin; the same bits) in two float / four double registers, whole
// blocks of 16 elements in SIMD, the tail and the reduction tree through the scalar code on the
// stored lanes.
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "tinfer/kernels/scalar/norm.hpp"

namespace tinfer::kernels::avx2 {

#define TNORM_TARGET __attribute__((target("avx2,fma")))

TNORM_TARGET inline void rmsnorm(float* out, const float* x, const float* weight, std::int64_t n, float eps) noexcept {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    lo = _mm256_fmadd_ps(a, a, lo);
    hi = _mm256_fmadd_ps(b, b, hi);
  }
  alignas(32) float lanes[16];
  _mm256_store_ps(lanes, lo);
  _mm256_store_ps(lanes + 8, hi);
  for (std::int64_t e = i; e < n; ++e) lanes[e % 16] = std::fma(x[e], x[e], lanes[e % 16]);
  const float scale = scalar::rms_scale(scalar::reduce16(lanes), n, eps);
  const __m256 s = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(weight + i), _mm256_mul_ps(s, _mm256_loadu_ps(x + i))));
  for (; i < n; ++i) out[i] = weight[i] * (scale * x[i]);
}

TNORM_TARGET inline void layernorm(float* out, const float* x, const float* weight, const float* bias, std::int64_t n,
                                   float eps) noexcept {
  __m256d a[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int q = 0; q < 4; ++q) a[q] = _mm256_add_pd(a[q], _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * q)));
  }
  alignas(32) double lanes[16];
  for (int q = 0; q < 4; ++q) _mm256_store_pd(lanes + 4 * q, a[q]);
  for (std::int64_t e = i; e < n; ++e) lanes[e % 16] += static_cast<double>(x[e]);
  const double mean = scalar::reduce16(lanes) / static_cast<double>(n);
  const __m256d mv = _mm256_set1_pd(mean);
  for (auto& v : a) v = _mm256_setzero_pd();
  for (i = 0; i + 16 <= n; i += 16) {
    for (int q = 0; q < 4; ++q) {
      const __m256d d = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * q)), mv);
      a[q] = _mm256_fmadd_pd(d, d, a[q]);
    }
  }
  for (int q = 0; q < 4; ++q) _mm256_store_pd(lanes + 4 * q, a[q]);
  for (std::int64_t e = i; e < n; ++e) {
    const double d = static_cast<double>(x[e]) - mean;
    lanes[e % 16] = std::fma(d, d, lanes[e % 16]);
  }
  const double var = scalar::reduce16(lanes) / static_cast<double>(n);
  const float m = static_cast<float>(mean);
  const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
  const __m256 mvf = _mm256_set1_ps(m), iv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mvf), iv);
    const __m256 b = bias ? _mm256_loadu_ps(bias + i) : _mm256_setzero_ps();
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(t, _mm256_loadu_ps(weight + i), b));
  }
  for (; i < n; ++i) out[i] = std::fma((x[i] - m) * inv, weight[i], bias ? bias[i] : 0.0f);
}

#undef TNORM_TARGET

}  // namespace tinfer::kernels::avx2
