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
#include "tinfer/attention/session_state.hpp"
#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/io/llama2c_checkpoint.hpp"
#include "tinfer/kernels/activation.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/embedding.hpp"
#include "tinfer/kernels/norm.hpp"
#include "tinfer/models/linear_observer.hpp"
#include "tinfer/models/session_options.hpp"
#include "tinfer/kernels/rope.hpp"
#include "tinfer/models/llama_config.hpp"

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
/// computed.
class LlamaSession {
 public:
  /// A session for `model` holding up to `context` positions (0: the model's max_seq_len).
  explicit LlamaSession(const LlamaModel& model, int context = 0) : LlamaSession(model, SessionOptions{.context = context}) {}
  /// A session with the context size, cache types and attention window of `opt`.
  LlamaSession(const LlamaModel& model, const SessionOptions& opt);

  /// Positions this session can hold (the largest position is context() - 1).
  int context() const noexcept { return context_; }
  /// Sliding-window size (0: full causal attention).
  int window() const noexcept { return window_; }
  const KVCache& cache() const noexcept { return cache_; }

  /// Number of positions [0, n_past) in the cache: one past the highest position the last
  /// forward call on this session wrote (so feeding position p after n_past > p also truncates).
  int n_past() const noexcept { return cache_.n_past(); }
  /// Forgets positions [n, n_past) (undoing tokens); the next token goes to position n.
  void truncate(int n) { cache_.truncate(n, window_); }
  /// Makes this session hold the first n positions of `src` (a session of the same model with the
  /// same cache types): several sequences share a prompt computed once. The last logits are
  /// copied when n == src.n_past().
  void copy_prefix_from(const LlamaSession& src, int n) {
    if (src.window_ != window_) throw InvalidArgument("copy_prefix_from(): the sessions have different attention windows");
    cache_.copy_prefix_from(src.cache_, n);
    if (n == src.n_past()) {
      logits_ = src.logits_;
      has_logits_ = src.has_logits_;
    } else {
      has_logits_ = false;
    }
  }
  /// Saves the cache and last logits to `path` (format: attention/session_state.hpp).
  void save(const std::string& path) const {
    save_session_state(path, "llama", cache_, window_,
                       has_logits_ ? std::span<const float>(logits_) : std::span<const float>());
  }
  /// Restores a file written by save() by a session of the same shape (FormatError otherwise).
  void load(const std::string& path) {
    std::vector<float> logits;
    load_session_state(path, "llama", cache_, window_, logits);
    has_logits_ = !logits.empty();
    if (has_logits_) logits_ = std::move(logits);
  }
  /// The logits of the last token fed (after forward calls, or a load()); empty when none.
  std::span<const float> last_logits() const noexcept {
    return has_logits_ ? std::span<const float>(logits_) : std::span<const float>();
  }

  /// Sees the input of every linear layer from now on (nullptr: none). Not owned.
  void set_linear_observer(LinearObserver* observer) noexcept { observer_ = observer; }

 private:
  friend class LlamaModel;
  KVCache cache_;
  int context_ = 0, window_ = 0;
  LinearObserver* observer_ = nullptr;
  int pending_n_past_ = 0;
  std::vector<float> logits_;          // last token's logits (vocab_size)
  bool has_logits_ = false;
  AlignedBuffer<float> batch_logits_;  // forward_batch(all_logits) and forward_multi(): rows of logits
  // Scratch of the rows of one pass (grown on demand): activations per row.
  AlignedBuffer<float> x_, xb_, q_, k_, v_, att_, hb_, hb2_;
  std::vector<int> pos_;
  std::vector<AttentionJob> jobs_;
  std::int64_t rows_cap_ = 0;
  void reserve_rows(std::int64_t n, const LlamaConfig& c);
};

class LlamaModel {
 public:
  /// Rows one pass computes at most; longer batches run in passes of this many (scratch bound).
  static constexpr int kMaxRows = 512;

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

  /// Feeds `token` at position `pos` of `session`: writes that position's keys and values into
  /// the session's cache (positions before `pos` must already be there) and returns the logits
  /// of the next token (vocab_size floats, valid until the next call on this session).
  /// `pool` splits matrix rows and attention work across threads (nullptr: this thread only).
  std::span<float> forward(LlamaSession& s, std::int32_t token, int pos, ThreadPool* pool = nullptr) const {
    const Row row{&s, token, pos};
    validate_rows(std::span<const Row>(&row, 1), "forward()");
    run_rows(std::span<const Row>(&row, 1), 0, s.logits_.data(), s, pool);
    s.has_logits_ = true;
    return {s.logits_.data(), s.logits_.size()};
  }

  /// Feeds tokens[i] at position pos0 + i for every i in one batched pass per layer (every
  /// matrix multiplies all rows at once; attention is tiled over the session's cache) and returns
  /// the logits of the last token (vocab_size floats) or, with all_logits, of every token
  /// (tokens.size() rows of vocab_size floats), valid until the next call on this session.
  /// The logits equal forward()'s up to float summation order.
  /// Checks every token and position before any work, so a bad batch leaves the cache untouched.
  std::span<float> forward_batch(LlamaSession& s, std::span<const std::int32_t> tokens, int pos0, ThreadPool* pool = nullptr,
                                 bool all_logits = false) const {
    const auto n = static_cast<std::int64_t>(tokens.size());
    if (n == 0) throw InvalidArgument("forward_batch(): the batch holds no tokens");
    if (pos0 < 0 || pos0 + n > s.context()) {
      throw InvalidArgument(detail::str_cat("positions ", pos0, "..", pos0 + n - 1, " are outside the session's context of ",
                                            s.context(), " tokens; use a larger context or a shorter input"));
    }
    std::vector<Row> rows(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) rows[static_cast<std::size_t>(i)] = {&s, tokens[static_cast<std::size_t>(i)], pos0 + static_cast<int>(i)};
    validate_rows(rows, "forward_batch()");
    const auto vocab = static_cast<std::size_t>(config_.vocab_size);
    if (all_logits && s.batch_logits_.size() < static_cast<std::size_t>(n) * vocab) {
      s.batch_logits_ = AlignedBuffer<float>(static_cast<std::size_t>(n) * vocab);
    }
    // A ring cache must still hold every row's window after the pass writes its keys.
    const std::int64_t step = s.cache_.ring() ? std::min<std::int64_t>(kMaxRows, s.cache_.capacity() - std::max(1, s.window_) + 1)
                                              : kMaxRows;
    for (std::int64_t r0 = 0; r0 < n; r0 += step) {
      const std::int64_t r1 = std::min(n, r0 + step);
      const std::span<const Row> part(rows.data() + r0, static_cast<std::size_t>(r1 - r0));
      if (all_logits) {
        run_rows(part, 0, s.batch_logits_.data() + static_cast<std::size_t>(r0) * vocab, s, pool);
      } else {
        run_rows(part, r1 == n ? static_cast<int>(r1 - r0 - 1) : static_cast<int>(r1 - r0), s.logits_.data(), s, pool);
      }
    }
    s.has_logits_ = true;
    if (!all_logits) return {s.logits_.data(), vocab};
    std::copy_n(s.batch_logits_.data() + static_cast<std::size_t>(n - 1) * vocab, vocab, s.logits_.data());
    return {s.batch_logits_.data(), static_cast<std::size_t>(n) * vocab};
  }

  /// One token for each of several sessions in one pass: tokens[i] at positions[i] of
  /// *sessions[i]. All rows share each weight read (batched decoding of independent sequences).
  /// Returns sessions.size() rows of vocab_size logits (row i for sessions[i]), valid until the
  /// next call on sessions[0]; each session's last_logits() is its row too. A session may appear
  /// more than once (its rows then attend causally to each other by position).
  /// Checks everything before any work.
  std::span<float> forward_multi(std::span<LlamaSession* const> sessions, std::span<const std::int32_t> tokens,
                                 std::span<const int> positions, ThreadPool* pool = nullptr) const {
    const std::size_t n = sessions.size();
    if (n == 0) throw InvalidArgument("forward_multi(): no sessions");
    if (tokens.size() != n || positions.size() != n) {
      throw InvalidArgument(detail::str_cat("forward_multi(): ", n, " sessions, ", tokens.size(), " tokens and ", positions.size(),
                                            " positions: give one token and one position per session"));
    }
    std::vector<Row> rows(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (sessions[i] == nullptr) throw InvalidArgument("forward_multi(): a session pointer is null");
      rows[i] = {sessions[i], tokens[i], positions[i]};
    }
    validate_rows(rows, "forward_multi()");
    LlamaSession& s0 = *sessions[0];
    const auto vocab = static_cast<std::size_t>(config_.vocab_size);
    if (s0.batch_logits_.size() < n * vocab) s0.batch_logits_ = AlignedBuffer<float>(n * vocab);
    for (std::size_t r0 = 0; r0 < n; r0 += kMaxRows) {
      const std::size_t r1 = std::min(n, r0 + kMaxRows);
      run_rows(std::span<const Row>(rows.data() + r0, r1 - r0), 0, s0.batch_logits_.data() + r0 * vocab, s0, pool);
    }
    for (std::size_t i = 0; i < n; ++i) {
      std::copy_n(s0.batch_logits_.data() + i * vocab, vocab, sessions[i]->logits_.data());
      sessions[i]->has_logits_ = true;
    }
    return {s0.batch_logits_.data(), n * vocab};
  }

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
  struct Row {
    LlamaSession* s = nullptr;
    std::int32_t token = 0;
    int pos = 0;
  };

  /// The first position this call writes for r's session (the smallest of its rows): a ring
  /// cache must still hold the window before it.
  static int first_new(std::span<const Row> rows, const Row& r) {
    int p = r.pos;
    if (!r.s->cache_.ring()) return p;
    for (const Row& o : rows) {
      if (o.s == r.s) p = std::min(p, o.pos);
    }
    return p;
  }

  void validate_rows(std::span<const Row> rows, const char* what) const {
    for (const Row& r : rows) {
      if (r.token < 0 || r.token >= config_.vocab_size) {
        throw InvalidArgument(detail::str_cat(what, ": token id ", r.token, " is outside the vocabulary [0, ", config_.vocab_size, ")"));
      }
      if (r.pos < 0 || r.pos >= r.s->context()) {
        throw InvalidArgument(detail::str_cat(what, ": position ", r.pos, " is outside the session's context of ", r.s->context(),
                                              " tokens; use a larger context or a shorter input"));
      }
      const KVCache& c = r.s->cache_;
      if (!c.holds_window_before(r.pos, first_new(rows, r), r.s->window_)) {
        throw InvalidArgument(detail::str_cat(what, ": position ", r.pos, " needs positions the sliding-window cache no longer holds (it holds ",
                                              c.oldest_position(), "..", c.n_past() - 1, ")"));
      }
    }
  }

  /// Observer call for rows [0, n) of x (n_cols floats each): one call when every row's
  /// session shares one observer, else one per row.
  static void observe(std::span<const Row> rows, int layer, LinearSlot slot, const float* x, std::int64_t n_cols) {
    LinearObserver* first = rows[0].s->observer_;
    bool same = true;
    for (const Row& r : rows) same = same && r.s->observer_ == first;
    if (same) {
      if (first != nullptr) first->on_input(layer, slot, x, static_cast<std::int64_t>(rows.size()), n_cols);
      return;
    }
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].s->observer_ != nullptr) rows[i].s->observer_->on_input(layer, slot, x + static_cast<std::int64_t>(i) * n_cols, 1, n_cols);
    }
  }

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
    w.pos_.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const Row& r = rows[static_cast<std::size_t>(i)];
      kernels::embedding_row(weights_.token_embedding, r.token, x + i * dim);
      w.pos_[static_cast<std::size_t>(i)] = r.pos;
      r.s->pending_n_past_ = -1;
    }
    // Attention jobs: runs of consecutive rows of one session.
    w.jobs_.clear();
    for (std::int64_t i = 0; i < n;) {
      std::int64_t e = i + 1;
      while (e < n && rows[static_cast<std::size_t>(e)].s == rows[static_cast<std::size_t>(i)].s) ++e;
      AttentionJob j;
      j.cache = &rows[static_cast<std::size_t>(i)].s->cache_;
      j.q = q + i * dim;
      j.ldq = dim;
      j.pos = w.pos_.data() + i;
      j.n_rows = static_cast<int>(e - i);
      j.window = rows[static_cast<std::size_t>(i)].s->window_;
      j.out = att + i * dim;
      j.ldo = dim;
      w.jobs_.push_back(j);
      i = e;
    }
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
      kernels::swiglu_inplace(hb, hb2, n * hid);
      observe(rows, l, LinearSlot::FfnDown, hb, hid);
      kernels::matmul(L.w_down, hb, n, hid, xb, dim, pool);
      for (std::int64_t i = 0; i < n * dim; ++i) x[i] += xb[i];
    }
    for (const Row& r : rows) r.s->pending_n_past_ = std::max(r.s->pending_n_past_, r.pos + 1);
    for (const Row& r : rows) {
      if (r.s->pending_n_past_ >= 0) r.s->cache_.set_n_past(r.s->pending_n_past_);
      r.s->pending_n_past_ = -1;
    }
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

inline LlamaSession::LlamaSession(const LlamaModel& model, const SessionOptions& opt) {
  int context = opt.context;
  const LlamaConfig& c = model.config();
  if (context < 0) throw InvalidArgument(detail::str_cat("context size ", context, " is negative"));
  if (context == 0) context = c.max_seq_len;
  if (context > c.max_seq_len) {
    throw InvalidArgument(detail::str_cat("context size ", context, " exceeds the model's maximum of ", c.max_seq_len,
                                          " positions; pass a context of at most ", c.max_seq_len));
  }
  if (opt.window < 0) throw InvalidArgument(detail::str_cat("attention window ", opt.window, " is negative"));
  context_ = context;
  window_ = opt.window;
  const bool ring = window_ > 0 && window_ + SessionOptions::kRingSlack < context;
  cache_ = KVCache(c.n_layers, ring ? window_ + SessionOptions::kRingSlack : context, c.n_kv_heads, c.head_dim(), opt.type_k,
                   opt.type_v, ring);
  logits_.assign(static_cast<std::size_t>(c.vocab_size), 0.0f);
  reserve_rows(1, c);
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
