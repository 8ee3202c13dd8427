// tinfer/attention/decode_attention.hpp: attention of one new query token over the cache.
//
// A thin front end to flash_attention.hpp with one query row: grouped-query heads share their
// KV head's reads, long caches are split into fixed key ranges across threads (merged in a fixed
// order, so the result does not depend on the thread count), and every cache type is read in
// place.
#pragma once

#include <cstdint>

#include "tinfer/attention/flash_attention.hpp"
#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/core/thread_pool.hpp"

namespace tinfer {

/// out (n_heads, head_dim) = softmax(q K^T / sqrt(head_dim)) V over positions [0, n_pos) of
/// `layer` (with window > 0: only the last `window` of them). q is (n_heads, head_dim).
inline void decode_attention(const float* q, const KVCache& cache, int layer, int n_pos, int n_heads, float* out,
                             ThreadPool* pool, int window = 0) {
  const int pos = n_pos - 1;
  AttentionJob job;
  job.cache = &cache;
  job.q = q;
  job.ldq = static_cast<std::int64_t>(n_heads) * cache.head_dim();
  job.pos = &pos;
  job.n_rows = 1;
  job.window = window;
  job.out = out;
  job.ldo = job.ldq;
  attention(job, layer, n_heads, pool);
}

}  // namespace tinfer
