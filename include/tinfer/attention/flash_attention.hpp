// tinfer/attention/flash_attention.hpp: causal (optionally sliding-window) attention of query
// rows over a KV cache, tiled with an online softmax ("flash attention"): scores are computed one
// key block (kKeyBlock positions) at a time for a tile of queries, folded into a running maximum,
// denominator and weighted value sum, and discarded, so memory is O(queries * head_dim), never
// O(T^2), for prompt processing and decode alike.
//
// Grouped-query attention: the query heads sharing a KV head are one tile with the query rows, so
// each cached key and value is read (and, for F16 / Q8_0, converted) once per tile and never
// duplicated. The tile's queries sit in SIMD lanes (attention_kernels.hpp); key blocks are
// aligned to absolute multiples of kKeyBlock.
//
// Work is split into items: (job, KV head, tile of query rows), and, for jobs of few rows over a
// long cache (decode), also key ranges of kKeySplit positions whose partial results are merged in
// a fixed order afterwards (range-major, so the KV heads of one range, interleaved in each cache
// row, run back to back while the rows are in cache). Items depend only on the inputs, each is
// computed by one thread, so the result does not depend on the thread count.
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

/// Per-thread scratch of one item (layouts: attention_kernels.hpp).
struct TileScratch {
  std::vector<float> qt, ot, st, m, l, lo, hi, kf, vf;
};

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

/// Computes one item. Writes normalized results into the job's out, or (partial >= 0) the
/// running max, denominator and unnormalized sum of each (row, head) into `partials`
/// (stride head_dim + 2).
inline void run_item(const AttentionJob& j, const Item& it, int layer, int n_heads, float* partials, const AttnKernels& k) {
  thread_local TileScratch ts;
  const KVCache& c = *j.cache;
  const int hd = c.head_dim();
  const int group = n_heads / c.n_kv_heads();
  const int nq = (it.r1 - it.r0) * group;  // query j = (row - r0) * group + g
  // Tiles of up to 8 queries (decode) use the pair layout where the ISA has it (16 lanes).
  const bool pair = k.scores_pair != nullptr && nq <= 8 && hd % 2 == 0;
  const int ld = pair ? 16 : round_up(nq, kLanePad);
  const int nl = pair ? 16 : round_up(nq, 8);
  const int rows = pair ? hd / 2 : hd;  // rows of Qt / Ot
  // Where element d of query j lives in Qt / Ot, and the lane holding its softmax state.
  auto slot = [&](int j2, int d) -> std::size_t {
    return pair ? static_cast<std::size_t>(d / 2) * 16 + 2 * j2 + (d & 1) : static_cast<std::size_t>(d) * ld + j2;
  };
  auto lane = [&](int j2) -> std::size_t { return static_cast<std::size_t>(pair ? 2 * j2 : j2); };
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  ts.qt.assign(static_cast<std::size_t>(hd) * ld, 0.0f);
  ts.ot.assign(static_cast<std::size_t>(hd) * ld, 0.0f);
  ts.st.resize(static_cast<std::size_t>(kKeyBlock) * ld);
  ts.m.assign(static_cast<std::size_t>(ld), -std::numeric_limits<float>::infinity());
  ts.l.assign(static_cast<std::size_t>(ld), 0.0f);
  // Padded lanes see no key (lo > hi).
  ts.lo.assign(static_cast<std::size_t>(ld), std::numeric_limits<float>::max());
  ts.hi.assign(static_cast<std::size_t>(ld), -1.0f);
  int lo = std::numeric_limits<int>::max(), hi = -1;
  for (int r = it.r0; r < it.r1; ++r) {
    const int rlo = std::max(row_lo(j, r), it.k0), rhi = std::min(j.pos[r], it.k1 - 1);
    for (int g = 0; g < group; ++g) {
      const int qj = (r - it.r0) * group + g;
      const float* src = j.q + r * j.ldq + static_cast<std::int64_t>(it.kv_head * group + g) * hd;
      for (int d = 0; d < hd; ++d) ts.qt[slot(qj, d)] = src[d] * scale;
      for (int h = 0; h <= (pair ? 1 : 0); ++h) {
        ts.lo[lane(qj) + h] = static_cast<float>(rlo);
        ts.hi[lane(qj) + h] = static_cast<float>(rhi);
      }
    }
    lo = std::min(lo, rlo);
    hi = std::max(hi, rhi);
  }
  const int ti = static_cast<int>(c.type_k()), tv = static_cast<int>(c.type_v());
  const std::int64_t kbytes = c.key_row_bytes(), vbytes = c.value_row_bytes();
  const std::int64_t off = static_cast<std::int64_t>(it.kv_head) * hd;
  if (c.type_k() != KVCacheType::F32) ts.kf.resize(static_cast<std::size_t>(kKeyBlock) * hd);
  if (c.type_v() != KVCacheType::F32) ts.vf.resize(static_cast<std::size_t>(kKeyBlock) * hd);
  for (int b0 = lo; b0 <= hi;) {
    // Blocks aligned to absolute multiples of kKeyBlock; a block never wraps around a ring.
    int b1 = std::min((b0 / kKeyBlock + 1) * kKeyBlock, hi + 1);
    if (c.ring()) b1 = std::min(b1, (b0 / c.capacity() + 1) * c.capacity());
    const int n = b1 - b0;
    const std::uint8_t* kb = c.key_row(layer, c.row_of(b0));
    const std::uint8_t* vb = c.value_row(layer, c.row_of(b0));
    const float* K;
    const float* V;
    std::int64_t ks = hd, vs = hd;
    if (c.type_k() == KVCacheType::F32) {
      K = reinterpret_cast<const float*>(kb) + off;
      ks = kbytes / 4;
    } else {
      k.convert[ti](kb, kbytes, off, hd, n, ts.kf.data());
      K = ts.kf.data();
    }
    if (c.type_v() == KVCacheType::F32) {
      V = reinterpret_cast<const float*>(vb) + off;
      vs = vbytes / 4;
    } else {
      k.convert[tv](vb, vbytes, off, hd, n, ts.vf.data());
      V = ts.vf.data();
    }
    if (pair) k.scores_pair(K, ks, n, ts.qt.data(), hd, ts.st.data());
    else k.scores(K, ks, n, ts.qt.data(), ld, nl, hd, ts.st.data());
    k.softmax(ts.st.data(), ld, nl, n, static_cast<float>(b0), ts.lo.data(), ts.hi.data(), ts.m.data(), ts.l.data(), ts.ot.data(), rows);
    if (pair) k.accumulate_pair(V, vs, n, ts.st.data(), hd, ts.ot.data());
    else k.accumulate(V, vs, n, ts.st.data(), ld, nl, hd, ts.ot.data());
    b0 = b1;
  }
  for (int r = it.r0; r < it.r1; ++r) {
    for (int g = 0; g < group; ++g) {
      const int qj = (r - it.r0) * group + g;
      const int h = it.kv_head * group + g;
      const float* ot = ts.ot.data();
      if (it.partial >= 0) {
        // Slot layout: [row-in-job][head] of (m, l, acc[hd]) for this item's key range.
        float* p = partials + (it.partial + static_cast<std::int64_t>(r - it.r0) * n_heads + h) * (hd + 2);
        p[0] = ts.m[lane(qj)];
        p[1] = ts.l[lane(qj)];
        for (int d = 0; d < hd; ++d) p[2 + d] = ot[slot(qj, d)];
      } else {
        float* o = j.out + r * j.ldo + static_cast<std::int64_t>(h) * hd;
        const float l = ts.l[lane(qj)];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int d = 0; d < hd; ++d) o[d] = ot[slot(qj, d)] * inv;
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
      // Chunk-major: the KV heads of one key range run back to back, so the range's rows (all
      // heads interleaved in each row) are fetched from memory once and then hit in cache.
      for (int c = 0; c < n_chunks; ++c) {
        for (int h = 0; h < n_kv; ++h) {
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
