// tinfer/attention/flash_attention.hpp: causal (optionally sliding-window) attention of query
// rows over a KV cache, tiled with an online softmax ("flash attention"): scores are computed one
// key block (kKeyBlock positions) at a time for a tile of queries, folded into a running maximum,
// denominator and weighted value sum, and discarded, so memory is O(queries * head_dim), never
// O(T^2), for prompt processing and decode alike.
//
// Grouped-query attention: the query heads sharing a KV head are one tile with the query rows, so
// each cached key and value is read once per tile and never duplicated.
//
// Work is split into items: (job, KV head, tile of query rows), and, for jobs of few rows over a
// long cache (decode), also key ranges of kKeySplit positions whose partial results are merged in
// a fixed order afterwards. Items depend only on the inputs, each is computed by one thread, so
// the result does not depend on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "tinfer/attention/attention_kernels.hpp"
#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/core/thread_pool.hpp"

namespace tinfer {

/// One sequence's query rows. Row i (n_heads * head_dim floats at q + i*ldq) sits at position
/// pos[i] and attends to the cached positions [max(0, pos[i] - window + 1), pos[i]] (window 0:
/// [0, pos[i]]), whose keys and values must already be in `cache`. Its result (n_heads * head_dim
/// floats) goes to out + i*ldo.
struct AttentionJob {
  const KVCache* cache = nullptr;
  const float* q = nullptr;
  std::int64_t ldq = 0;
  const int* pos = nullptr;
  int n_rows = 0;
  int window = 0;
  float* out = nullptr;
  std::int64_t ldo = 0;
};

namespace attn {

inline constexpr int kKeyBlock = 64;    // keys scored at once (scores live in a kKeyBlock buffer)
inline constexpr int kQueryTile = 64;   // queries (rows x grouped heads) per tile
inline constexpr int kKeySplit = 512;   // key range per item when a job has a single tile

struct Item {
  int job = 0, kv_head = 0, r0 = 0, r1 = 0;
  int k0 = 0, k1 = std::numeric_limits<int>::max();  // key position range of this item
  std::int64_t partial = -1;  // >= 0: index of its first partial slot (split jobs)
};

inline int row_lo(const AttentionJob& j, int r) { return j.window > 0 ? std::max(0, j.pos[r] - j.window + 1) : 0; }

/// Per-thread scratch of one item.
struct TileScratch {
  std::vector<float> q, m, l, acc, s;
};

/// Computes one item. Writes normalized results into the job's out, or (partial >= 0) the
/// running max, denominator and unnormalized sum of each (row, head) into `partials`
/// (stride head_dim + 2).
inline void run_item(const AttentionJob& j, const Item& it, int layer, int n_heads, float* partials, const AttnKernels& k) {
  thread_local TileScratch ts;
  const KVCache& c = *j.cache;
  const int hd = c.head_dim();
  const int group = n_heads / c.n_kv_heads();
  const int nq = (it.r1 - it.r0) * group;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  ts.q.resize(static_cast<std::size_t>(nq) * hd);
  ts.acc.assign(static_cast<std::size_t>(nq) * hd, 0.0f);
  ts.m.assign(static_cast<std::size_t>(nq), -std::numeric_limits<float>::infinity());
  ts.l.assign(static_cast<std::size_t>(nq), 0.0f);
  ts.s.resize(kKeyBlock);
  int lo = std::numeric_limits<int>::max(), hi = -1;
  for (int r = it.r0; r < it.r1; ++r) {
    for (int g = 0; g < group; ++g) {
      const float* src = j.q + r * j.ldq + static_cast<std::int64_t>(it.kv_head * group + g) * hd;
      float* dst = ts.q.data() + static_cast<std::int64_t>((r - it.r0) * group + g) * hd;
      for (int d = 0; d < hd; ++d) dst[d] = src[d] * scale;
    }
    lo = std::min(lo, row_lo(j, r));
    hi = std::max(hi, j.pos[r]);
  }
  lo = std::max(lo, it.k0);
  hi = std::min(hi, it.k1 - 1);
  const int ti = static_cast<int>(c.type_k()), tv = static_cast<int>(c.type_v());
  const std::int64_t ks = c.key_row_bytes(), vs = c.value_row_bytes();
  const std::int64_t off = static_cast<std::int64_t>(it.kv_head) * hd;
  for (int b0 = lo; b0 <= hi;) {
    int b1 = std::min(b0 + kKeyBlock, hi + 1);
    if (c.ring()) b1 = std::min(b1, (b0 / c.capacity() + 1) * c.capacity());  // a block never wraps
    for (int r = it.r0; r < it.r1; ++r) {
      const int t0 = std::max(b0, row_lo(j, r)), t1 = std::min(b1, j.pos[r] + 1);
      if (t0 >= t1) continue;
      const int n = t1 - t0;
      const std::uint8_t* kb = c.key_row(layer, c.row_of(t0));
      const std::uint8_t* vb = c.value_row(layer, c.row_of(t0));
      for (int g = 0; g < group; ++g) {
        const int qi = (r - it.r0) * group + g;
        float* s = ts.s.data();
        k.dot_keys[ti](ts.q.data() + static_cast<std::int64_t>(qi) * hd, kb, ks, off, hd, n, s);
        float mx = s[0];
        for (int t = 1; t < n; ++t) mx = std::max(mx, s[t]);
        const float m_old = ts.m[static_cast<std::size_t>(qi)];
        const float m_new = std::max(m_old, mx);
        float* acc = ts.acc.data() + static_cast<std::int64_t>(qi) * hd;
        if (m_new > m_old && m_old != -std::numeric_limits<float>::infinity()) {
          const float corr = std::exp(m_old - m_new);
          ts.l[static_cast<std::size_t>(qi)] *= corr;
          for (int d = 0; d < hd; ++d) acc[d] *= corr;
        }
        ts.m[static_cast<std::size_t>(qi)] = m_new;
        ts.l[static_cast<std::size_t>(qi)] += k.exp_sum(s, n, m_new);
        k.acc_values[tv](s, vb, vs, off, hd, n, acc);
      }
    }
    b0 = b1;
  }
  for (int r = it.r0; r < it.r1; ++r) {
    for (int g = 0; g < group; ++g) {
      const int qi = (r - it.r0) * group + g;
      const int h = it.kv_head * group + g;
      const float* acc = ts.acc.data() + static_cast<std::int64_t>(qi) * hd;
      if (it.partial >= 0) {
        // Slot layout: [row-in-job][head] of (m, l, acc[hd]) for this item's key range.
        float* p = partials + (it.partial + static_cast<std::int64_t>(r - it.r0) * n_heads + h) * (hd + 2);
        p[0] = ts.m[static_cast<std::size_t>(qi)];
        p[1] = ts.l[static_cast<std::size_t>(qi)];
        std::copy_n(acc, hd, p + 2);
      } else {
        float* o = j.out + r * j.ldo + static_cast<std::int64_t>(h) * hd;
        const float l = ts.l[static_cast<std::size_t>(qi)];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int d = 0; d < hd; ++d) o[d] = acc[d] * inv;
      }
    }
  }
}

}  // namespace attn

/// Runs attention for every job over layer `layer` of its cache. n_heads must be a multiple of
/// each cache's n_kv_heads, and all jobs' caches must have the same head_dim (one model's).
/// `pool` splits items across threads (nullptr: this thread); `k` chooses the kernels.
inline void attention(std::span<const AttentionJob> jobs, int layer, int n_heads, ThreadPool* pool,
                      const attn::AttnKernels& k = attn::attn_kernels()) {
  struct Split {
    int job, n_chunks, c0;
    std::int64_t partial;
  };
  // Reused per thread: attention runs once per layer and token, so no allocation per call.
  // (Used through references: a lambda run on a worker thread would see that thread's copy.)
  thread_local std::vector<attn::Item> items_tl;
  thread_local std::vector<Split> splits_tl;
  std::vector<attn::Item>& items = items_tl;
  std::vector<Split>& splits = splits_tl;
  items.clear();
  splits.clear();
  std::int64_t n_partials = 0;
  int hd_max = 0;
  for (int ji = 0; ji < static_cast<int>(jobs.size()); ++ji) {
    const AttentionJob& j = jobs[static_cast<std::size_t>(ji)];
    if (j.n_rows <= 0) continue;
    const int n_kv = j.cache->n_kv_heads();
    const int group = n_heads / n_kv;
    hd_max = std::max(hd_max, j.cache->head_dim());
    const int rows_per_tile = std::max(1, attn::kQueryTile / group);
    int lo = std::numeric_limits<int>::max(), hi = -1;
    for (int r = 0; r < j.n_rows; ++r) {
      lo = std::min(lo, attn::row_lo(j, r));
      hi = std::max(hi, j.pos[r]);
    }
    if (j.n_rows <= rows_per_tile && hi - lo + 1 > attn::kKeySplit) {
      // Few rows over a long cache: split the keys into fixed ranges (aligned to absolute
      // positions, so the split does not depend on threads) and merge afterwards.
      const int c0 = lo / attn::kKeySplit, c1 = hi / attn::kKeySplit;
      const int n_chunks = c1 - c0 + 1;
      splits.push_back({ji, n_chunks, c0, n_partials});
      for (int h = 0; h < n_kv; ++h) {
        for (int c = 0; c < n_chunks; ++c) {
          attn::Item it{ji, h, 0, j.n_rows, (c0 + c) * attn::kKeySplit, (c0 + c + 1) * attn::kKeySplit,
                        n_partials + static_cast<std::int64_t>(c) * j.n_rows * n_heads};
          items.push_back(it);
        }
      }
      n_partials += static_cast<std::int64_t>(n_chunks) * j.n_rows * n_heads;
    } else {
      for (int h = 0; h < n_kv; ++h) {
        for (int r0 = 0; r0 < j.n_rows; r0 += rows_per_tile) {
          items.push_back({ji, h, r0, std::min(j.n_rows, r0 + rows_per_tile)});
        }
      }
    }
  }
  thread_local std::vector<float> partials;
  if (n_partials > 0) partials.resize(static_cast<std::size_t>(n_partials) * static_cast<std::size_t>(hd_max + 2));
  float* pbase = partials.data();
  // Partial slots use the job's own head_dim stride; hd_max only sizes the buffer.
  auto body = [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) {
      const attn::Item& it = items[static_cast<std::size_t>(i)];
      attn::run_item(jobs[static_cast<std::size_t>(it.job)], it, layer, n_heads, pbase, k);
    }
  };
  if (pool == nullptr || items.size() <= 1) {
    body(0, static_cast<std::int64_t>(items.size()));
  } else {
    pool->parallel_for(static_cast<std::int64_t>(items.size()), body, 1);
  }
  // Merge split jobs: softmax over all key ranges from their (max, sum, weighted sum) triples.
  for (const Split& sp : splits) {
    const AttentionJob& j = jobs[static_cast<std::size_t>(sp.job)];
    const int hd = j.cache->head_dim();
    for (int r = 0; r < j.n_rows; ++r) {
      for (int h = 0; h < n_heads; ++h) {
        auto slot = [&](int c) { return pbase + (sp.partial + (static_cast<std::int64_t>(c) * j.n_rows + r) * n_heads + h) * (hd + 2); };
        float m = -std::numeric_limits<float>::infinity();
        for (int c = 0; c < sp.n_chunks; ++c) m = std::max(m, slot(c)[0]);
        float* o = j.out + r * j.ldo + static_cast<std::int64_t>(h) * hd;
        std::fill_n(o, hd, 0.0f);
        float l = 0.0f;
        for (int c = 0; c < sp.n_chunks; ++c) {
          const float* p = slot(c);
          if (p[1] == 0.0f) continue;  // a range with no key for this row
          const float w = std::exp(p[0] - m);
          l += w * p[1];
          for (int d = 0; d < hd; ++d) o[d] += w * p[2 + d];
        }
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int d = 0; d < hd; ++d) o[d] *= inv;
      }
    }
  }
}

/// One job (convenience overload).
inline void attention(const AttentionJob& job, int layer, int n_heads, ThreadPool* pool,
                      const attn::AttnKernels& k = attn::attn_kernels()) {
  attention(std::span<const AttentionJob>(&job, 1), layer, n_heads, pool, k);
}

}  // namespace tinfer
