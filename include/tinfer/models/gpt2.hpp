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
#include <vector>

#include "tinfer/attention/decode_attention.hpp"
#include "tinfer/attention/kv_cache.hpp"
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

class Gpt2Session {
 public:
  /// A session holding up to `context` positions (0: the model's max_seq_len, also the limit).
  explicit Gpt2Session(const Gpt2Model& model, int context = 0) : Gpt2Session(model, SessionOptions{.context = context}) {}
  /// A session with the context size and cache types of `opt`.
  Gpt2Session(const Gpt2Model& model, const SessionOptions& opt);

  int context() const noexcept { return cache_.capacity(); }
  const KVCache& cache() const noexcept { return cache_; }

  /// Sees the input of every linear layer from now on (nullptr: none). Not owned.
  void set_linear_observer(LinearObserver* observer) noexcept { observer_ = observer; }

 private:
  friend class Gpt2Model;
  KVCache cache_;
  LinearObserver* observer_ = nullptr;
  AlignedBuffer<float> batch_logits_;  // forward_batch(): one row per token
  AlignedBuffer<float> x_, xb_, qkv_, att_out_, hb_, scores_, pos_row_, logits_;
};

class Gpt2Model {
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

  /// Feeds `token` at `pos` (earlier positions must be in the session's cache) and returns the
  /// next-token logits, valid until the next call on this session.
  std::span<float> forward(Gpt2Session& s, std::int32_t token, int pos, ThreadPool* pool = nullptr) const {
    const Gpt2Config& c = config_;
    if (token < 0 || token >= c.vocab_size) {
      throw InvalidArgument(detail::str_cat("token id ", token, " is outside the vocabulary [0, ", c.vocab_size, ")"));
    }
    if (pos < 0 || pos >= s.context()) {
      throw InvalidArgument(detail::str_cat("position ", pos, " is outside the session's context of ", s.context(),
                                            " tokens; use a larger context or a shorter input"));
    }
    const std::int64_t dim = c.dim;
    float* x = s.x_.data();
    kernels::embedding_row(weights_.token_embedding, token, x);
    kernels::embedding_row(weights_.position_embedding, pos, s.pos_row_.data());
    kernels::add_inplace(x, s.pos_row_.data(), dim);
    for (int l = 0; l < c.n_layers; ++l) {
      const Gpt2LayerWeights& L = weights_.layers[static_cast<std::size_t>(l)];
      kernels::layernorm(s.xb_.data(), x, L.ln1_w, L.ln1_b, dim, c.norm_eps);
      float* qkv = s.qkv_.data();
      if (s.observer_ != nullptr) s.observer_->on_input(l, LinearSlot::AttnQKV, s.xb_.data(), 1, dim);
      kernels::matvec(L.qkv, s.xb_.data(), qkv, pool);
      if (L.qkv_b) kernels::add_inplace(qkv, L.qkv_b, 3 * dim);
      std::copy_n(qkv + dim, dim, s.cache_.key(l, pos));
      std::copy_n(qkv + 2 * dim, dim, s.cache_.value(l, pos));
      decode_attention(qkv, s.cache_, l, pos + 1, c.n_heads, s.att_out_.data(), s.scores_.data(), s.context(), pool);
      if (s.observer_ != nullptr) s.observer_->on_input(l, LinearSlot::AttnOut, s.att_out_.data(), 1, dim);
      kernels::matvec(L.out, s.att_out_.data(), s.xb_.data(), pool);
      if (L.out_b) kernels::add_inplace(s.xb_.data(), L.out_b, dim);
      kernels::add_inplace(x, s.xb_.data(), dim);
      kernels::layernorm(s.xb_.data(), x, L.ln2_w, L.ln2_b, dim, c.norm_eps);
      if (s.observer_ != nullptr) s.observer_->on_input(l, LinearSlot::FfnUp, s.xb_.data(), 1, dim);
      kernels::matvec(L.up, s.xb_.data(), s.hb_.data(), pool);
      if (L.up_b) kernels::add_inplace(s.hb_.data(), L.up_b, c.hidden_dim);
      kernels::gelu_tanh_inplace(s.hb_.data(), c.hidden_dim);
      if (s.observer_ != nullptr) s.observer_->on_input(l, LinearSlot::FfnDown, s.hb_.data(), 1, c.hidden_dim);
      kernels::matvec(L.down, s.hb_.data(), s.xb_.data(), pool);
      if (L.down_b) kernels::add_inplace(s.xb_.data(), L.down_b, dim);
      kernels::add_inplace(x, s.xb_.data(), dim);
    }
    kernels::layernorm(x, x, weights_.final_norm_w, weights_.final_norm_b, dim, c.norm_eps);
    if (s.observer_ != nullptr) s.observer_->on_input(-1, LinearSlot::Output, x, 1, dim);
    kernels::matvec(weights_.classifier, x, s.logits_.data(), pool);
    return {s.logits_.data(), static_cast<std::size_t>(c.vocab_size)};
  }

  /// Feeds tokens[i] at position pos0 + i for every i, as that many forward() calls would, and
  /// returns the logits of the last token (vocab_size floats) or, with all_logits, of every token
  /// (tokens.size() rows of vocab_size floats), valid until the next call on this session.
  /// Checks every token and position before any work, so a bad batch leaves the cache untouched.
  std::span<float> forward_batch(Gpt2Session& s, std::span<const std::int32_t> tokens, int pos0, ThreadPool* pool = nullptr,
                                 bool all_logits = false) const {
    const auto n = static_cast<std::int64_t>(tokens.size());
    if (n == 0) throw InvalidArgument("forward_batch(): the batch holds no tokens");
    if (pos0 < 0 || pos0 + n > s.context()) {
      throw InvalidArgument(detail::str_cat("positions ", pos0, "..", pos0 + n - 1, " are outside the session's context of ",
                                            s.context(), " tokens; use a larger context or a shorter input"));
    }
    for (const std::int32_t t : tokens) {
      if (t < 0 || t >= config_.vocab_size) {
        throw InvalidArgument(detail::str_cat("token id ", t, " is outside the vocabulary [0, ", config_.vocab_size, ")"));
      }
    }
    const auto vocab = static_cast<std::size_t>(config_.vocab_size);
    if (!all_logits) {
      std::span<float> last;
      for (std::int64_t i = 0; i < n; ++i) last = forward(s, tokens[static_cast<std::size_t>(i)], pos0 + static_cast<int>(i), pool);
      return last;
    }
    if (s.batch_logits_.size() < static_cast<std::size_t>(n) * vocab) s.batch_logits_ = AlignedBuffer<float>(static_cast<std::size_t>(n) * vocab);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto l = forward(s, tokens[static_cast<std::size_t>(i)], pos0 + static_cast<int>(i), pool);
      std::copy(l.begin(), l.end(), s.batch_logits_.data() + static_cast<std::size_t>(i) * vocab);
    }
    return {s.batch_logits_.data(), static_cast<std::size_t>(n) * vocab};
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
  cache_ = KVCache(c.n_layers, context, c.n_heads, c.head_dim(), opt.type_k, opt.type_v);
  const auto dim = static_cast<std::size_t>(c.dim);
  x_ = AlignedBuffer<float>(dim);
  xb_ = AlignedBuffer<float>(dim);
  qkv_ = AlignedBuffer<float>(3 * dim);
  att_out_ = AlignedBuffer<float>(dim);
  hb_ = AlignedBuffer<float>(static_cast<std::size_t>(c.hidden_dim));
  scores_ = AlignedBuffer<float>(static_cast<std::size_t>(c.n_heads) * static_cast<std::size_t>(context));
  pos_row_ = AlignedBuffer<float>(dim);
  logits_ = AlignedBuffer<float>(static_cast<std::size_t>(c.vocab_size));
}

}  // namespace tinfer
