// tinfer/kernels/avx512/activation.hpp: SwiGLU and GELU with AVX-512, 16 lanes of exactly the
// operations of kernels/scalar/activation.hpp (its twin; the same bits). A tail shorter than
// 16 runs through masked loads and stores.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <cstdint>

#include "tinfer/kernels/avx512/exp.hpp"
#include "tinfer/kernels/scalar/activation.hpp"

namespace tinfer::kernels::avx512 {

#define TACT_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

namespace actdetail {
TACT_TARGET inline __m512 swiglu(__m512 g, __m512 u) noexcept {
  const __m512 e = exp_approx(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}
TACT_TARGET inline __m512 gelu(__m512 v) noexcept {
  using namespace act_consts;
  const __m512 t = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(kGeluCubic), v), v);
  const __m512 u = _mm512_fmadd_ps(t, v, v);
  const __m512 e = exp_approx(_mm512_mul_ps(_mm512_set1_ps(kGeluNeg2C), u));
  return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}
}  // namespace actdetail

/// gate[i] = silu(gate[i]) * up[i].
TACT_TARGET inline void swiglu(float* gate, const float* up, std::int64_t n) noexcept {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(gate + i, actdetail::swiglu(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(gate + i, m, actdetail::swiglu(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

/// x[i] = gelu_tanh(x[i]).
TACT_TARGET inline void gelu_tanh(float* x, std::int64_t n) noexcept {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, actdetail::gelu(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, m, actdetail::gelu(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

#undef TACT_TARGET

}  // namespace tinfer::kernels::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
