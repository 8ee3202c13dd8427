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

#include "tinfer/attention/decode_attention.hpp"
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

/// The state of one sequence: its KV cache and the activations of the token being computed.
class LlamaSession {
 public:
  /// A session for `model` holding up to `context` positions (0: the model's max_seq_len).
  explicit LlamaSession(const LlamaModel& model, int context = 0) : LlamaSession(model, SessionOptions{.context = context}) {}
  /// A session with the context size and cache types of `opt`.
  LlamaSession(const LlamaModel& model, const SessionOptions& opt);

  int context() const noexcept { return cache_.capacity(); }
  const KVCache& cache() const noexcept { return cache_; }

  /// Sees the input of every linear layer from now on (nullptr: none). Not owned.
  void set_linear_observer(LinearObserver* observer) noexcept { observer_ = observer; }

 private:
  friend class LlamaModel;
  KVCache cache_;
  LinearObserver* observer_ = nullptr;
  AlignedBuffer<float> batch_logits_;  // forward_batch(): one row per token
  AlignedBuffer<float> x_, xb_, xb2_, q_, hb_, hb2_, att_, logits_;
};

class LlamaModel {
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

  /// Feeds `token` at position `pos` of `session`: writes that position's keys and values into
  /// the session's cache (positions before `pos` must already be there) and returns the logits
  /// of the next token (vocab_size floats, valid until the next call on this session).
  /// `pool` splits matrix rows and heads across threads (nullptr: this thread only).
  std::span<float> forward(LlamaSession& s, std::int32_t token, int pos, ThreadPool* pool = nullptr) const {
    const LlamaConfig& c = config_;
    if (token < 0 || token >= c.vocab_size) {
      throw InvalidArgument(detail::str_cat("token id ", token, " is outside the vocabulary [0, ", c.vocab_size, ")"));
    }
    if (pos < 0 || pos >= s.context()) {
      throw InvalidArgument(detail::str_cat("position ", pos, " is outside the session's context of ", s.context(),
                                            " tokens; use a larger context or a shorter input"));
    }
    const std::int64_t dim = c.dim, hd = c.head_dim(), hid = c.hidden_dim;
    float* x = s.x_.data();
    kernels::embedding_row(weights_.token_embedding, token, x);

    for (int l = 0; l < c.n_layers; ++l) {
      const LlamaLayerWeights& L = weights_.layers[static_cast<std::size_t>(l)];
      // Attention block.
      kernels::rmsnorm(s.xb_.data(), x, L.attn_norm, dim, c.norm_eps);
      float* k = s.cache_.key(l, pos);
      float* v = s.cache_.value(l, pos);
      if (s.observer_ != nullptr) s.observer_->on_input(l, LinearSlot::AttnQKV, s.xb_.data(), 1, dim);
      kernels::matvec(L.wq, s.xb_.data(), s.q_.data(), pool);
      kernels::matvec(L.wk, s.xb_.data(), k, pool);
      kernels::matvec(L.wv, s.xb_.data(), v, pool);
      kernels::rope_inplace(s.q_.data(), c.n_heads, hd, c.rotary_dims(), pos, c.rope_theta, c.rope_layout, c.rope_freq_scale);
      kernels::rope_inplace(k, c.n_kv_heads, hd, c.rotary_dims(), pos, c.rope_theta, c.rope_layout, c.rope_freq_scale);
      decode_attention(s.q_.data(), s.cache_, l, pos + 1, c.n_heads, s.xb_.data(), s.att_.data(), s.context(), pool);
      if (s.observer_ != nullptr) s.observer_->on_input(l, LinearSlot::AttnOut, s.xb_.data(), 1, dim);
      kernels::matvec(L.wo, s.xb_.data(), s.xb2_.data(), pool);
      kernels::add_inplace(x, s.xb2_.data(), dim);
      // Feed-forward block: w_down(silu(w_gate x) * w_up x).
      kernels::rmsnorm(s.xb_.data(), x, L.ffn_norm, dim, c.norm_eps);
      if (s.observer_ != nullptr) s.observer_->on_input(l, LinearSlot::FfnUp, s.xb_.data(), 1, dim);
      kernels::matvec(L.w_gate, s.xb_.data(), s.hb_.data(), pool);
      kernels::matvec(L.w_up, s.xb_.data(), s.hb2_.data(), pool);
      kernels::swiglu_inplace(s.hb_.data(), s.hb2_.data(), hid);
      if (s.observer_ != nullptr) s.observer_->on_input(l, LinearSlot::FfnDown, s.hb_.data(), 1, hid);
      kernels::matvec(L.w_down, s.hb_.data(), s.xb_.data(), pool);
      kernels::add_inplace(x, s.xb_.data(), dim);
    }
    kernels::rmsnorm(x, x, weights_.final_norm, dim, c.norm_eps);
    if (s.observer_ != nullptr) s.observer_->on_input(-1, LinearSlot::Output, x, 1, dim);
    kernels::matvec(weights_.classifier, x, s.logits_.data(), pool);
    return {s.logits_.data(), static_cast<std::size_t>(c.vocab_size)};
  }

  /// Feeds tokens[i] at position pos0 + i for every i, as that many forward() calls would, and
  /// returns the logits of the last token (vocab_size floats) or, with all_logits, of every token
  /// (tokens.size() rows of vocab_size floats), valid until the next call on this session.
  /// Checks every token and position before any work, so a bad batch leaves the cache untouched.
  std::span<float> forward_batch(LlamaSession& s, std::span<const std::int32_t> tokens, int pos0, ThreadPool* pool = nullptr,
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
  cache_ = KVCache(c.n_layers, context, c.n_kv_heads, c.head_dim(), opt.type_k, opt.type_v);
  const auto dim = static_cast<std::size_t>(c.dim), hid = static_cast<std::size_t>(c.hidden_dim);
  x_ = AlignedBuffer<float>(dim);
  xb_ = AlignedBuffer<float>(dim);
  xb2_ = AlignedBuffer<float>(dim);
  q_ = AlignedBuffer<float>(dim);
  hb_ = AlignedBuffer<float>(hid);
  hb2_ = AlignedBuffer<float>(hid);
  att_ = AlignedBuffer<float>(static_cast<std::size_t>(c.n_heads) * static_cast<std::size_t>(context));
  logits_ = AlignedBuffer<float>(static_cast<std::size_t>(c.vocab_size));
}

}  // namespace tinfer
