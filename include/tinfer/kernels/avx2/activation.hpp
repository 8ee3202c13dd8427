// tinfer/kernels/avx2/activation.hpp: SwiGLU and GELU with AVX2 + FMA, 8 lanes of exactly the
// operations of kernels/scalar/activation.hpp (its twin; the same bits). A tail shorter than 8
// goes through a zero-padded copy.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "tinfer/kernels/avx2/exp.hpp"
#include "tinfer/kernels/scalar/activation.hpp"

namespace tinfer::kernels::avx2 {

#define TACT_TARGET __attribute__((target("avx2,fma")))

namespace actdetail {
TACT_TARGET inline __m256 swiglu(__m256 g, __m256 u) noexcept {
  const __m256 e = exp_approx(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}
TACT_TARGET inline __m256 gelu(__m256 v) noexcept {
  using namespace act_consts;
  const __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(kGeluCubic), v), v);
  const __m256 u = _mm256_fmadd_ps(t, v, v);
  const __m256 e = exp_approx(_mm256_mul_ps(_mm256_set1_ps(kGeluNeg2C), u));
  return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}
}  // namespace actdetail

/// gate[i] = silu(gate[i]) * up[i].
TACT_TARGET inline void swiglu(float* gate, const float* up, std::int64_t n) noexcept {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(gate + i, actdetail::swiglu(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) {
    float g[8] = {}, u[8] = {};
    const auto bytes = static_cast<std::size_t>(n - i) * sizeof(float);
    std::memcpy(g, gate + i, bytes);
    std::memcpy(u, up + i, bytes);
    _mm256_storeu_ps(g, actdetail::swiglu(_mm256_loadu_ps(g), _mm256_loadu_ps(u)));
    std::memcpy(gate + i, g, bytes);
  }
}

/// x[i] = gelu_tanh(x[i]).
TACT_TARGET inline void gelu_tanh(float* x, std::int64_t n) noexcept {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, actdetail::gelu(_mm256_loadu_ps(x + i)));
  if (i < n) {
    float v[8] = {};
    const auto bytes = static_cast<std::size_t>(n - i) * sizeof(float);
    std::memcpy(v, x + i, bytes);
    _mm256_storeu_ps(v, actdetail::gelu(_mm256_loadu_ps(v)));
    std::memcpy(x + i, v, bytes);
  }
}

#undef TACT_TARGET

}  // namespace tinfer::kernels::avx2
