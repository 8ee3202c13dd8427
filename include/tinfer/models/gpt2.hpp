// tinfer/models/gpt2.hpp: the GPT-2-family decoder (learned positions, LayerNorm with biases,
// fused QKV projection, GELU feed-forward, tied or separate classifier) and its session.
//
// A Gpt2Model is immutable after loading and may be shared by threads; each sequence being
// generated uses its own Gpt2Session.
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
#include "tinfer/kernels/activation.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/embedding.hpp"
#include "tinfer/kernels/norm.hpp"
#include "tinfer/models/linear_observer.hpp"
#include "tinfer/models/session_options.hpp"

namespace tinfer {

struct Gpt2Config {
  int dim = 0;
  int hidden_dim = 0;  // feed-forward width (4 * dim in GPT-2)
  int n_layers = 0;
  int n_heads = 0;
  int vocab_size = 0;
  int max_seq_len = 0;  // number of learned positions
  float norm_eps = 1e-5f;
  std::int32_t bos_id = -1;
  std::int32_t eos_id = -1;

  int head_dim() const noexcept { return dim / n_heads; }

  void validate() const {
    auto positive = [](const char* name, int v) {
      if (v <= 0) throw InvalidArgument(detail::str_cat("GPT-2 config: ", name, " = ", v, " must be positive"));
    };
    positive("dim", dim);
    positive("hidden_dim", hidden_dim);
    positive("n_layers", n_layers);
    positive("n_heads", n_heads);
    positive("vocab_size", vocab_size);
    positive("max_seq_len", max_seq_len);
    if (dim % n_heads != 0) throw InvalidArgument(detail::str_cat("GPT-2 config: n_heads ", n_heads, " does not divide dim ", dim));
  }
};

/// One layer; matrices are row-major (out_features, in_features), vectors float32.
struct Gpt2LayerWeights {
  const float* ln1_w = nullptr;   // (dim)
  const float* ln1_b = nullptr;   // (dim)
  WeightView qkv;                 // (3 * dim, dim): rows of Q, then K, then V
  const float* qkv_b = nullptr;   // (3 * dim)
  WeightView out;                 // (dim, dim)
  const float* out_b = nullptr;   // (dim)
  const float* ln2_w = nullptr;   // (dim)
  const float* ln2_b = nullptr;   // (dim)
  WeightView up;                  // (hidden_dim, dim)
  const float* up_b = nullptr;    // (hidden_dim)
  WeightView down;                // (dim, hidden_dim)
  const float* down_b = nullptr;  // (dim)
};

struct Gpt2Weights {
  WeightView token_embedding;     // (vocab_size, dim)
  WeightView position_embedding;  // (max_seq_len, dim)
  std::vector<Gpt2LayerWeights> layers;
  const float* final_norm_w = nullptr;  // (dim)
  const float* final_norm_b = nullptr;  // (dim)
  WeightView classifier;                // (vocab_size, dim); usually views token_embedding
};

class Gpt2Model;

/// The state of one sequence: its KV cache, its last logits and the scratch of the rows being
/// computed. The same operations as LlamaSession (see there), except that a GPT-2 cache cannot
/// be context-shifted.
class Gpt2Session {
 public:
  /// A session holding up to `context` positions (0: the model's max_seq_len, also the limit).
  explicit Gpt2Session(const Gpt2Model& model, int context = 0) : Gpt2Session(model, SessionOptions{.context = context}) {}
  /// A session with the context size, cache types and attention window of `opt`.
  Gpt2Session(const Gpt2Model& model, const SessionOptions& opt);

  int context() const noexcept { return context_; }
  int window() const noexcept { return window_; }
  const KVCache& cache() const noexcept { return cache_; }
  int n_past() const noexcept { return cache_.n_past(); }
  void truncate(int n) { cache_.truncate(n, window_); }
  void copy_prefix_from(const Gpt2Session& src, int n) {
    if (src.window_ != window_) throw InvalidArgument("copy_prefix_from(): the sessions have different attention windows");
    cache_.copy_prefix_from(src.cache_, n);
    if (n == src.n_past()) {
      logits_ = src.logits_;
      has_logits_ = src.has_logits_;
    } else {
      has_logits_ = false;
    }
  }
  void save(const std::string& path) const {
    save_session_state(path, "gpt2", cache_, window_, has_logits_ ? std::span<const float>(logits_) : std::span<const float>());
  }
  void load(const std::string& path) {
    std::vector<float> logits;
    load_session_state(path, "gpt2", cache_, window_, logits);
    has_logits_ = !logits.empty();
    if (has_logits_) logits_ = std::move(logits);
  }
  std::span<const float> last_logits() const noexcept {
    return has_logits_ ? std::span<const float>(logits_) : std::span<const float>();
  }

  /// Sees the input of every linear layer from now on (nullptr: none). Not owned.
  void set_linear_observer(LinearObserver* observer) noexcept { observer_ = observer; }

 private:
  friend class Gpt2Model;
  KVCache cache_;
  int context_ = 0, window_ = 0;
  LinearObserver* observer_ = nullptr;
  int pending_n_past_ = 0;
  std::vector<float> logits_;
  bool has_logits_ = false;
  AlignedBuffer<float> batch_logits_;
  AlignedBuffer<float> x_, xb_, qkv_, att_, hb_, pos_row_;
  std::vector<int> pos_;
  std::vector<AttentionJob> jobs_;
  std::int64_t rows_cap_ = 0;
  void reserve_rows(std::int64_t n, const Gpt2Config& c);
};

class Gpt2Model {
 public:
  static constexpr int kMaxRows = 512;

  Gpt2Model(Gpt2Config config, Gpt2Weights weights, std::shared_ptr<const void> storage)
      : config_(config), weights_(std::move(weights)), storage_(std::move(storage)) {
    config_.validate();
    if (static_cast<int>(weights_.layers.size()) != config_.n_layers) {
      throw InvalidArgument(detail::str_cat("GPT-2 model: ", weights_.layers.size(), " layers of weights for n_layers = ",
                                            config_.n_layers));
    }
  }

  const Gpt2Config& config() const noexcept { return config_; }
  const Gpt2Weights& weights() const noexcept { return weights_; }

  /// Feeds `token` at `pos` (earlier positions must be in the session's cache) and returns the
  /// next-token logits, valid until the next call on this session.
  std::span<float> forward(Gpt2Session& s, std::int32_t token, int pos, ThreadPool* pool = nullptr) const {
    const Row row{&s, token, pos};
    validate_rows(std::span<const Row>(&row, 1), "forward()");
    run_rows(std::span<const Row>(&row, 1), 0, s.logits_.data(), s, pool);
    s.has_logits_ = true;
    return {s.logits_.data(), s.logits_.size()};
  }

  /// Feeds tokens[i] at position pos0 + i for every i in one batched pass per layer; returns the
  /// last token's logits or, with all_logits, every token's (tokens.size() rows of vocab_size),
  /// valid until the next call on this session. Equal to forward()'s up to summation order.
  /// Checks every token and position before any work, so a bad batch leaves the cache untouched.
  std::span<float> forward_batch(Gpt2Session& s, std::span<const std::int32_t> tokens, int pos0, ThreadPool* pool = nullptr,
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

  /// One token for each of several sessions in one pass (see LlamaModel::forward_multi).
  std::span<float> forward_multi(std::span<Gpt2Session* const> sessions, std::span<const std::int32_t> tokens,
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
    Gpt2Session& s0 = *sessions[0];
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

  /// GPT-2 has learned absolute position embeddings added to the input of the first layer, so
  /// every cached key and value of every layer depends on its original position in a way no
  /// rotation can undo: moving them would silently corrupt the model. Always throws
  /// UnsupportedError; a program should re-feed the kept tokens into a truncated session instead.
  void context_shift(Gpt2Session&, int, int) const {
    throw UnsupportedError("context shift is not possible for GPT-2 models: their learned absolute positions are baked into every "
                           "cached key and value; use a larger context (-c) or re-evaluate the kept tokens");
  }

 private:
  struct Row {
    Gpt2Session* s = nullptr;
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

  static void add_bias(float* y, const float* b, std::int64_t n, std::int64_t cols) {
    if (b == nullptr) return;
    for (std::int64_t i = 0; i < n; ++i) kernels::add_inplace(y + i * cols, b, cols);
  }

  /// The row-wise core (see LlamaModel::run_rows).
  void run_rows(std::span<const Row> rows, int logits_from, float* logits, Gpt2Session& w, ThreadPool* pool) const {
    const Gpt2Config& c = config_;
    const auto n = static_cast<std::int64_t>(rows.size());
    const std::int64_t dim = c.dim, hid = c.hidden_dim;
    w.reserve_rows(n, c);
    float* x = w.x_.data();
    float* xb = w.xb_.data();
    float* qkv = w.qkv_.data();
    float* att = w.att_.data();
    float* hb = w.hb_.data();
    w.pos_.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const Row& r = rows[static_cast<std::size_t>(i)];
      kernels::embedding_row(weights_.token_embedding, r.token, x + i * dim);
      kernels::embedding_row(weights_.position_embedding, r.pos, w.pos_row_.data());
      kernels::add_inplace(x + i * dim, w.pos_row_.data(), dim);
      w.pos_[static_cast<std::size_t>(i)] = r.pos;
      r.s->pending_n_past_ = -1;
    }
    w.jobs_.clear();
    for (std::int64_t i = 0; i < n;) {
      std::int64_t e = i + 1;
      while (e < n && rows[static_cast<std::size_t>(e)].s == rows[static_cast<std::size_t>(i)].s) ++e;
      AttentionJob j;
      j.cache = &rows[static_cast<std::size_t>(i)].s->cache_;
      j.q = qkv + i * 3 * dim;
      j.ldq = 3 * dim;
      j.pos = w.pos_.data() + i;
      j.n_rows = static_cast<int>(e - i);
      j.window = rows[static_cast<std::size_t>(i)].s->window_;
      j.out = att + i * dim;
      j.ldo = dim;
      w.jobs_.push_back(j);
      i = e;
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const Gpt2LayerWeights& L = weights_.layers[static_cast<std::size_t>(l)];
      for (std::int64_t i = 0; i < n; ++i) kernels::layernorm(xb + i * dim, x + i * dim, L.ln1_w, L.ln1_b, dim, c.norm_eps);
      observe(rows, l, LinearSlot::AttnQKV, xb, dim);
      kernels::matmul(L.qkv, xb, n, dim, qkv, 3 * dim, pool);
      add_bias(qkv, L.qkv_b, n, 3 * dim);
      for (std::int64_t i = 0; i < n; ++i) {
        const Row& r = rows[static_cast<std::size_t>(i)];
        r.s->cache_.store_key(l, r.pos, qkv + i * 3 * dim + dim);
        r.s->cache_.store_value(l, r.pos, qkv + i * 3 * dim + 2 * dim);
      }
      attention(std::span<const AttentionJob>(w.jobs_), l, c.n_heads, pool);
      observe(rows, l, LinearSlot::AttnOut, att, dim);
      kernels::matmul(L.out, att, n, dim, xb, dim, pool);
      add_bias(xb, L.out_b, n, dim);
      for (std::int64_t i = 0; i < n * dim; ++i) x[i] += xb[i];
      for (std::int64_t i = 0; i < n; ++i) kernels::layernorm(xb + i * dim, x + i * dim, L.ln2_w, L.ln2_b, dim, c.norm_eps);
      observe(rows, l, LinearSlot::FfnUp, xb, dim);
      kernels::matmul(L.up, xb, n, dim, hb, hid, pool);
      add_bias(hb, L.up_b, n, hid);
      kernels::gelu_tanh_inplace(hb, n * hid);
      observe(rows, l, LinearSlot::FfnDown, hb, hid);
      kernels::matmul(L.down, hb, n, hid, xb, dim, pool);
      add_bias(xb, L.down_b, n, dim);
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
    for (std::int64_t i = 0; i < m; ++i) {
      kernels::layernorm(xo + i * dim, xo + i * dim, weights_.final_norm_w, weights_.final_norm_b, dim, c.norm_eps);
    }
    observe(rows.subspan(static_cast<std::size_t>(logits_from)), -1, LinearSlot::Output, xo, dim);
    kernels::matmul(weights_.classifier, xo, m, dim, logits, c.vocab_size, pool);
  }

 private:
  Gpt2Config config_;
  Gpt2Weights weights_;
  std::shared_ptr<const void> storage_;
};

inline Gpt2Session::Gpt2Session(const Gpt2Model& model, const SessionOptions& opt) {
  int context = opt.context;
  const Gpt2Config& c = model.config();
  if (context < 0) throw InvalidArgument(detail::str_cat("context size ", context, " is negative"));
  if (context == 0) context = c.max_seq_len;
  if (context > c.max_seq_len) {
    throw InvalidArgument(detail::str_cat("context size ", context, " exceeds the model's ", c.max_seq_len,
                                          " learned positions; pass a context of at most ", c.max_seq_len));
  }
  if (opt.window < 0) throw InvalidArgument(detail::str_cat("attention window ", opt.window, " is negative"));
  context_ = context;
  window_ = opt.window;
  const bool ring = window_ > 0 && window_ + SessionOptions::kRingSlack < context;
  cache_ = KVCache(c.n_layers, ring ? window_ + SessionOptions::kRingSlack : context, c.n_heads, c.head_dim(), opt.type_k, opt.type_v,
                   ring);
  logits_.assign(static_cast<std::size_t>(c.vocab_size), 0.0f);
  pos_row_ = AlignedBuffer<float>(static_cast<std::size_t>(c.dim));
  reserve_rows(1, c);
}

inline void Gpt2Session::reserve_rows(std::int64_t n, const Gpt2Config& c) {
  if (n <= rows_cap_) return;
  const auto rows = static_cast<std::size_t>(n);
  const auto dim = static_cast<std::size_t>(c.dim), hid = static_cast<std::size_t>(c.hidden_dim);
  x_ = AlignedBuffer<float>(rows * dim);
  xb_ = AlignedBuffer<float>(rows * dim);
  qkv_ = AlignedBuffer<float>(rows * 3 * dim);
  att_ = AlignedBuffer<float>(rows * dim);
  hb_ = AlignedBuffer<float>(rows * hid);
  rows_cap_ = n;
}

}  // namespace tinfer
