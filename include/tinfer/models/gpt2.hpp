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
#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/activation.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/embedding.hpp"
#include "tinfer/kernels/norm.hpp"
#include "tinfer/models/decoder_model.hpp"
#include "tinfer/models/decoder_session.hpp"
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
/// computed (operations: models/decoder_session.hpp). A GPT-2 cache cannot be context-shifted.
class Gpt2Session : public DecoderSession {
 public:
  /// A session holding up to `context` positions (0: the model's max_seq_len, also the limit).
  explicit Gpt2Session(const Gpt2Model& model, int context = 0) : Gpt2Session(model, SessionOptions{.context = context}) {}
  /// A session with the context size, cache types and attention window of `opt`.
  Gpt2Session(const Gpt2Model& model, const SessionOptions& opt);

  /// Makes this session hold the first n positions of `src` (see LlamaSession::copy_prefix_from).
  void copy_prefix_from(const Gpt2Session& src, int n) { copy_prefix(src, n); }

 private:
  friend class Gpt2Model;
  AlignedBuffer<float> x_, xb_, qkv_, att_, hb_, pos_row_;
  void reserve_rows(std::int64_t n, const Gpt2Config& c);
};

class Gpt2Model : public DecoderModel<Gpt2Model, Gpt2Session> {
 public:
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

  int vocab_size() const noexcept { return config_.vocab_size; }

  /// GPT-2 has learned absolute position embeddings added to the input of the first layer, so
  /// every cached key and value of every layer depends on its original position in a way no
  /// rotation can undo: moving them would silently corrupt the model. Always throws
  /// UnsupportedError; a program should re-feed the kept tokens into a truncated session instead.
  void context_shift(Gpt2Session&, int, int) const {
    throw UnsupportedError("context shift is not possible for GPT-2 models: their learned absolute positions are baked into every "
                           "cached key and value; use a larger context (-c) or re-evaluate the kept tokens");
  }

 private:
  friend class DecoderModel<Gpt2Model, Gpt2Session>;

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
    for (std::int64_t i = 0; i < n; ++i) {
      const Row& r = rows[static_cast<std::size_t>(i)];
      kernels::embedding_row(weights_.token_embedding, r.token, x + i * dim);
      kernels::embedding_row(weights_.position_embedding, r.pos, w.pos_row_.data());
      kernels::add_inplace(x + i * dim, w.pos_row_.data(), dim);
    }
    begin_rows(rows, w, qkv, 3 * dim, att, dim);
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
      kernels::gelu_tanh_inplace(hb, n * hid, pool);
      observe(rows, l, LinearSlot::FfnDown, hb, hid);
      kernels::matmul(L.down, hb, n, hid, xb, dim, pool);
      add_bias(xb, L.down_b, n, dim);
      for (std::int64_t i = 0; i < n * dim; ++i) x[i] += xb[i];
    }
    end_rows(rows);
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

inline Gpt2Session::Gpt2Session(const Gpt2Model& model, const SessionOptions& opt)
    : DecoderSession(DecoderSessionShape{.family = "gpt2",
                                         .n_layers = model.config().n_layers,
                                         .n_kv_heads = model.config().n_heads,
                                         .head_dim = model.config().head_dim(),
                                         .vocab_size = model.config().vocab_size,
                                         .max_positions = model.config().max_seq_len,
                                         .limit_prefix = "",
                                         .limit_noun = "learned positions"},
                     opt) {
  pos_row_ = AlignedBuffer<float>(static_cast<std::size_t>(model.config().dim));
  reserve_rows(1, model.config());
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
