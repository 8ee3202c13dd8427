// tinfer/kernels/matvec.hpp: matrix-vector products y = W x for one token.
//
// Scalar reference kernels, written so the compiler can vectorize them with the baseline ISA
// (SSE2 on x86-64) without -ffast-math: eight independent accumulators break the dependency
// chain. The SIMD paths chosen at run time (a separate issue) are compared with these.
#pragma once

#include <cstdint>

#include "tinfer/core/thread_pool.hpp"

namespace tinfer::kernels {

/// Dot product of two float arrays of length n, with eight partial sums added pairwise at the
/// end (a fixed order, so the result does not depend on how rows are split across threads).
inline float dot_f32(const float* a, const float* b, std::int64_t n) noexcept {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  }
  for (; i < n; ++i) acc[i & 7] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/// y[r] = dot(W[r, :], x) for r in [0, rows). W is row-major (rows, cols) with row stride `cols`.
/// Rows are split across `pool` (nullptr: the calling thread only); each row's result is the
/// same whatever the split.
inline void matvec_f32(const float* W, const float* x, float* y, std::int64_t rows, std::int64_t cols,
                       ThreadPool* pool) {
  auto body = [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) y[r] = dot_f32(W + r * cols, x, cols);
  };
  if (pool == nullptr) {
    body(0, rows);
    return;
  }
  // At least ~32K multiply-adds per chunk, or waking threads costs more than it saves.
  const std::int64_t min_rows = cols > 0 ? (32768 + cols - 1) / cols : rows;
  pool->parallel_for(rows, body, min_rows);
}

}  // namespace tinfer::kernels
