// tinfer/attention/decode_attention.hpp: attention of one new query token over the cache.
//
// Grouped-query attention: query head h reads KV head h / (n_heads / n_kv_heads), so K and V are
// never duplicated. Heads are split across threads; each head's result is computed by one
// thread in a fixed order, so it does not depend on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/matvec.hpp"
#include "tinfer/kernels/softmax.hpp"

namespace tinfer {

/// out (n_heads, head_dim) = softmax(q K^T / sqrt(head_dim)) V over positions [0, n_pos) of
/// `layer`. q is (n_heads, head_dim); `scores` is scratch of n_heads * n_pos floats at least.
inline void decode_attention(const float* q, const KVCache& cache, int layer, int n_pos, int n_heads, float* out,
                             float* scores, std::int64_t scores_stride, ThreadPool* pool) {
  const int head_dim = cache.head_dim();
  const int group = n_heads / cache.n_kv_heads();
  const std::int64_t kv_dim = cache.kv_dim();
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  auto body = [&](std::int64_t h0, std::int64_t h1) {
    for (std::int64_t h = h0; h < h1; ++h) {
      const float* qh = q + h * head_dim;
      const std::int64_t kv_off = (h / group) * head_dim;
      float* att = scores + h * scores_stride;
      const float* k0 = cache.key(layer, 0) + kv_off;
      for (int t = 0; t < n_pos; ++t) att[t] = kernels::dot_f32(qh, k0 + t * kv_dim, head_dim) * scale;
      kernels::softmax_inplace(att, n_pos);
      float* oh = out + h * head_dim;
      for (int d = 0; d < head_dim; ++d) oh[d] = 0.0f;
      const float* v0 = cache.value(layer, 0) + kv_off;
      for (int t = 0; t < n_pos; ++t) {
        const float a = att[t];
        const float* vt = v0 + t * kv_dim;
        for (int d = 0; d < head_dim; ++d) oh[d] += a * vt[d];
      }
    }
  };
  // Split heads only when each carries enough work to repay waking a thread.
  const std::int64_t work_per_head = static_cast<std::int64_t>(n_pos) * head_dim * 2;
  if (pool == nullptr || work_per_head * n_heads < 32768) {
    body(0, n_heads);
  } else {
    pool->parallel_for(n_heads, body, std::max<std::int64_t>(1, 32768 / work_per_head));
  }
}

}  // namespace tinfer
