// tinfer/kernels/softmax.hpp: numerically stable softmax in place.
#pragma once

#include <cmath>
#include <cstdint>

namespace tinfer::kernels {

/// x[i] = exp(x[i] - max) / sum_j exp(x[j] - max), for n >= 1.
inline void softmax_inplace(float* x, std::int64_t n) noexcept {
  float max_val = x[0];
  for (std::int64_t i = 1; i < n; ++i)
    if (x[i] > max_val) max_val = x[i];
  float sum = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max_val);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (std::int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace tinfer::kernels
