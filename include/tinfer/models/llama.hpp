// tinfer/models/llama.hpp: the Llama-family decoder (RMSNorm, rotary positions, grouped-query
// attention, SwiGLU feed-forward) and its per-sequence session.
//
// A LlamaModel is immutable after loading and may be shared by any number of threads; each
// thread generating text uses its own LlamaSession (KV cache and scratch buffers).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tinfer/attention/flash_attention.hpp"
#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/io/llama2c_checkpoint.hpp"
#include "tinfer/kernels/activation.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/embedding.hpp"
#include "tinfer/kernels/norm.hpp"
#include "tinfer/kernels/rope.hpp"
#include "tinfer/models/decoder_model.hpp"
#include "tinfer/models/decoder_session.hpp"
#include "tinfer/models/linear_observer.hpp"
#include "tinfer/models/llama_config.hpp"
#include "tinfer/models/session_options.hpp"

namespace tinfer {

/// Weights of one decoder layer. Matrices are row-major (out_features, in_features) in any type
/// the kernels support; norm weights are float32.
struct LlamaLayerWeights {
  const float* attn_norm = nullptr;  // (dim)
  WeightView wq;                     // (n_heads * head_dim, dim)
  WeightView wk;                     // (n_kv_heads * head_dim, dim)
  WeightView wv;                     // (n_kv_heads * head_dim, dim)
  WeightView wo;                     // (dim, n_heads * head_dim)
  const float* ffn_norm = nullptr;   // (dim)
  WeightView w_gate;                 // (hidden_dim, dim)   llama2.c's w1
  WeightView w_down;                 // (dim, hidden_dim)   llama2.c's w2
  WeightView w_up;                   // (hidden_dim, dim)   llama2.c's w3
};

struct LlamaWeights {
  WeightView token_embedding;             // (vocab_size, dim)
  std::vector<LlamaLayerWeights> layers;  // n_layers
  const float* final_norm = nullptr;      // (dim)
  WeightView classifier;                  // (vocab_size, dim); may view the token embedding
};

class LlamaModel;

/// The state of one sequence: its KV cache, its last logits and the scratch of the rows being
/// computed (operations: models/decoder_session.hpp).
class LlamaSession : public DecoderSession {
 public:
  /// A session for `model` holding up to `context` positions (0: the model's max_seq_len).
  explicit LlamaSession(const LlamaModel& model, int context = 0) : LlamaSession(model, SessionOptions{.context = context}) {}
  /// A session with the context size, cache types and attention window of `opt`.
  LlamaSession(const LlamaModel& model, const SessionOptions& opt);

  /// Makes this session hold the first n positions of `src` (a session of the same model with the
  /// same cache types): several sequences share a prompt computed once. The last logits are
  /// copied when n == src.n_past().
  void copy_prefix_from(const LlamaSession& src, int n) { copy_prefix(src, n); }

 private:
  friend class LlamaModel;
  // Scratch of the rows of one pass (grown on demand): activations per row.
  AlignedBuffer<float> x_, xb_, q_, k_, v_, att_, hb_, hb2_;
  void reserve_rows(std::int64_t n, const LlamaConfig& c);
};

class LlamaModel : public DecoderModel<LlamaModel, LlamaSession> {
 public:
  /// Builds a model over weights that `storage` keeps alive (e.g. a mapped file).
  LlamaModel(LlamaConfig config, LlamaWeights weights, std::shared_ptr<const void> storage)
      : config_(config), weights_(std::move(weights)), storage_(std::move(storage)) {
    config_.validate();
    if (static_cast<int>(weights_.layers.size()) != config_.n_layers) {
      throw InvalidArgument(detail::str_cat("Llama model: ", weights_.layers.size(), " layers of weights for n_layers = ",
                                            config_.n_layers));
    }
  }

  /// Loads a llama2.c checkpoint (weights used in place from the mapped file).
  static LlamaModel load_llama2c(const std::string& path) {
    auto ckpt = std::make_shared<io::Llama2cCheckpoint>(path);
    const auto& h = ckpt->header();
    const auto& w = ckpt->weights();
    LlamaConfig c;
    c.dim = h.dim;
    c.hidden_dim = h.hidden_dim;
    c.n_layers = h.n_layers;
    c.n_heads = h.n_heads;
    c.n_kv_heads = h.n_kv_heads;
    c.vocab_size = h.vocab_size;
    c.max_seq_len = h.seq_len;
    c.norm_eps = 1e-5f;  // what run.c uses
    c.rope_theta = 10000.0f;
    c.rope_layout = kernels::RopeLayout::Interleaved;
    LlamaWeights lw;
    const std::int64_t dim = h.dim, kv = h.kv_dim(), hid = h.hidden_dim, vocab = h.vocab_size;
    lw.token_embedding = WeightView::f32(w.token_embedding, vocab, dim);
    lw.final_norm = w.rms_final;
    lw.classifier = WeightView::f32(w.wcls, vocab, dim);
    for (std::int64_t l = 0; l < h.n_layers; ++l) {
      LlamaLayerWeights L;
      L.attn_norm = w.rms_att + l * dim;
      L.wq = WeightView::f32(w.wq + l * dim * dim, dim, dim);
      L.wk = WeightView::f32(w.wk + l * kv * dim, kv, dim);
      L.wv = WeightView::f32(w.wv + l * kv * dim, kv, dim);
      L.wo = WeightView::f32(w.wo + l * dim * dim, dim, dim);
      L.ffn_norm = w.rms_ffn + l * dim;
      L.w_gate = WeightView::f32(w.w1 + l * hid * dim, hid, dim);
      L.w_down = WeightView::f32(w.w2 + l * dim * hid, dim, hid);
      L.w_up = WeightView::f32(w.w3 + l * hid * dim, hid, dim);
      lw.layers.push_back(L);
    }
    return LlamaModel(c, std::move(lw), std::move(ckpt));
  }

  const LlamaConfig& config() const noexcept { return config_; }
  const LlamaWeights& weights() const noexcept { return weights_; }

  int vocab_size() const noexcept { return config_.vocab_size; }

  /// Context shift: drops positions [n_keep, n_keep + n_discard) of the session and moves the
  /// later ones down by n_discard, re-rotating their keys by -n_discard (RoPE is a rotation by
  /// an angle proportional to the position, so this equals computing them at the new position,
  /// up to float rounding and the cache type's rounding). The next token goes to n_past().
  void context_shift(LlamaSession& s, int n_keep, int n_discard) const {
    const LlamaConfig& c = config_;
    s.cache_.shift(n_keep, n_discard, [&](int, float* key, int) {
      kernels::rope_inplace(key, c.n_kv_heads, c.head_dim(), c.rotary_dims(), -static_cast<std::int64_t>(n_discard), c.rope_theta,
                            c.rope_layout, c.rope_freq_scale);
    });
  }

 private:
  friend class DecoderModel<LlamaModel, LlamaSession>;

  /// The row-wise core: every row is (session, token, position). Per layer: norm all rows,
  /// project Q/K/V of all rows with one matmul each, rotate, store K/V into each row's session
  /// cache, attention per run of rows of one session, output projection and feed-forward for all
  /// rows. Rows [logits_from, n) get logits, written consecutively to `logits`. `w` holds the
  /// scratch. Inputs must have passed validate_rows().
  void run_rows(std::span<const Row> rows, int logits_from, float* logits, LlamaSession& w, ThreadPool* pool) const {
    const LlamaConfig& c = config_;
    const auto n = static_cast<std::int64_t>(rows.size());
    const std::int64_t dim = c.dim, hd = c.head_dim(), kvd = c.kv_dim(), hid = c.hidden_dim;
    w.reserve_rows(n, c);
    float* x = w.x_.data();
    float* xb = w.xb_.data();
    float* q = w.q_.data();
    float* k = w.k_.data();
    float* v = w.v_.data();
    float* att = w.att_.data();
    float* hb = w.hb_.data();
    float* hb2 = w.hb2_.data();
    for (std::int64_t i = 0; i < n; ++i) kernels::embedding_row(weights_.token_embedding, rows[static_cast<std::size_t>(i)].token, x + i * dim);
    begin_rows(rows, w, q, dim, att, dim);
    for (int l = 0; l < c.n_layers; ++l) {
      const LlamaLayerWeights& L = weights_.layers[static_cast<std::size_t>(l)];
      for (std::int64_t i = 0; i < n; ++i) kernels::rmsnorm(xb + i * dim, x + i * dim, L.attn_norm, dim, c.norm_eps);
      observe(rows, l, LinearSlot::AttnQKV, xb, dim);
      kernels::matmul(L.wq, xb, n, dim, q, dim, pool);
      kernels::matmul(L.wk, xb, n, dim, k, kvd, pool);
      kernels::matmul(L.wv, xb, n, dim, v, kvd, pool);
      for (std::int64_t i = 0; i < n; ++i) {
        const Row& r = rows[static_cast<std::size_t>(i)];
        kernels::rope_inplace(q + i * dim, c.n_heads, hd, c.rotary_dims(), r.pos, c.rope_theta, c.rope_layout, c.rope_freq_scale);
        kernels::rope_inplace(k + i * kvd, c.n_kv_heads, hd, c.rotary_dims(), r.pos, c.rope_theta, c.rope_layout, c.rope_freq_scale);
        r.s->cache_.store_key(l, r.pos, k + i * kvd);
        r.s->cache_.store_value(l, r.pos, v + i * kvd);
      }
      attention(std::span<const AttentionJob>(w.jobs_), l, c.n_heads, pool);
      observe(rows, l, LinearSlot::AttnOut, att, dim);
      kernels::matmul(L.wo, att, n, dim, xb, dim, pool);
      for (std::int64_t i = 0; i < n * dim; ++i) x[i] += xb[i];
      // Feed-forward block: w_down(silu(w_gate x) * w_up x).
      for (std::int64_t i = 0; i < n; ++i) kernels::rmsnorm(xb + i * dim, x + i * dim, L.ffn_norm, dim, c.norm_eps);
      observe(rows, l, LinearSlot::FfnUp, xb, dim);
      kernels::matmul(L.w_gate, xb, n, dim, hb, hid, pool);
      kernels::matmul(L.w_up, xb, n, dim, hb2, hid, pool);
      kernels::swiglu_inplace(hb, hb2, n * hid, pool);
      observe(rows, l, LinearSlot::FfnDown, hb, hid);
      kernels::matmul(L.w_down, hb, n, hid, xb, dim, pool);
      for (std::int64_t i = 0; i < n * dim; ++i) x[i] += xb[i];
    }
    end_rows(rows);
    const std::int64_t m = n - logits_from;
    if (m <= 0) return;
    float* xo = x + logits_from * dim;
    for (std::int64_t i = 0; i < m; ++i) kernels::rmsnorm(xo + i * dim, xo + i * dim, weights_.final_norm, dim, c.norm_eps);
    observe(rows.subspan(static_cast<std::size_t>(logits_from)), -1, LinearSlot::Output, xo, dim);
    kernels::matmul(weights_.classifier, xo, m, dim, logits, c.vocab_size, pool);
  }

 private:
  LlamaConfig config_;
  LlamaWeights weights_;
  std::shared_ptr<const void> storage_;
};

inline LlamaSession::LlamaSession(const LlamaModel& model, const SessionOptions& opt)
    : DecoderSession(DecoderSessionShape{.family = "llama",
                                         .n_layers = model.config().n_layers,
                                         .n_kv_heads = model.config().n_kv_heads,
                                         .head_dim = model.config().head_dim(),
                                         .vocab_size = model.config().vocab_size,
                                         .max_positions = model.config().max_seq_len},
                     opt) {
  reserve_rows(1, model.config());
}

inline void LlamaSession::reserve_rows(std::int64_t n, const LlamaConfig& c) {
  if (n <= rows_cap_) return;
  const auto rows = static_cast<std::size_t>(n);
  const auto dim = static_cast<std::size_t>(c.dim), kvd = static_cast<std::size_t>(c.kv_dim()), hid = static_cast<std::size_t>(c.hidden_dim);
  x_ = AlignedBuffer<float>(rows * dim);
  xb_ = AlignedBuffer<float>(rows * dim);
  q_ = AlignedBuffer<float>(rows * dim);
  k_ = AlignedBuffer<float>(rows * kvd);
  v_ = AlignedBuffer<float>(rows * kvd);
  att_ = AlignedBuffer<float>(rows * dim);
  hb_ = AlignedBuffer<float>(rows * hid);
  hb2_ = AlignedBuffer<float>(rows * hid);
  rows_cap_ = n;
}

}  // namespace tinfer
