// tinfer/models/decoder_session.hpp: the state every decoder family's session shares — the KV
// cache, the last logits, the linear-layer observer and the scratch of the rows a pass computes —
// with the cache operations a serving program needs (truncate, fork, save/restore).
//
// LlamaSession and Gpt2Session derive from it and add their family's activation buffers; the
// driving code is DecoderModel (models/decoder_model.hpp).
#pragma once

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tinfer/attention/flash_attention.hpp"
#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/attention/session_state.hpp"
#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/models/linear_observer.hpp"
#include "tinfer/models/session_options.hpp"

namespace tinfer {

template <class Derived, class Session>
class DecoderModel;

/// The shape a session needs from its model.
struct DecoderSessionShape {
  const char* family = "";     // "llama", "gpt2": tags saved session files
  int n_layers = 0;
  int n_kv_heads = 0;          // heads stored in the cache
  int head_dim = 0;
  int vocab_size = 0;
  int max_positions = 0;       // the largest context the model supports
  // How an error message names that limit: "the model's maximum of 512 positions",
  // "the model's 1024 learned positions".
  const char* limit_prefix = "maximum of ";
  const char* limit_noun = "positions";
};

class DecoderSession {
 public:
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

  /// Saves the cache and last logits to `path` (format: attention/session_state.hpp).
  void save(const std::string& path) const {
    save_session_state(path, family_, cache_, window_, has_logits_ ? std::span<const float>(logits_) : std::span<const float>());
  }
  /// Restores a file written by save() by a session of the same family and shape (FormatError
  /// otherwise, naming the field that differs).
  void load(const std::string& path) {
    std::vector<float> logits;
    load_session_state(path, family_, cache_, window_, logits);
    has_logits_ = !logits.empty();
    if (has_logits_) logits_ = std::move(logits);
  }
  /// The logits of the last token fed (after forward calls, or a load()); empty when none.
  std::span<const float> last_logits() const noexcept {
    return has_logits_ ? std::span<const float>(logits_) : std::span<const float>();
  }

  /// Sees the input of every linear layer from now on (nullptr: none). Not owned.
  void set_linear_observer(LinearObserver* observer) noexcept { observer_ = observer; }

 protected:
  /// Validates the options against the model (context within its positions, window >= 0) and
  /// allocates the cache: a ring of window + slack positions when the window is much shorter
  /// than the context.
  DecoderSession(const DecoderSessionShape& m, const SessionOptions& opt) : family_(m.family) {
    int context = opt.context;
    if (context < 0) throw InvalidArgument(detail::str_cat("context size ", context, " is negative"));
    if (context == 0) context = m.max_positions;
    if (context > m.max_positions) {
      throw InvalidArgument(detail::str_cat("context size ", context, " exceeds the model's ", m.limit_prefix, m.max_positions, " ",
                                            m.limit_noun, "; pass a context of at most ", m.max_positions));
    }
    if (opt.window < 0) throw InvalidArgument(detail::str_cat("attention window ", opt.window, " is negative"));
    context_ = context;
    window_ = opt.window;
    const bool ring = window_ > 0 && window_ + SessionOptions::kRingSlack < context;
    cache_ = KVCache(m.n_layers, ring ? window_ + SessionOptions::kRingSlack : context, m.n_kv_heads, m.head_dim, opt.type_k,
                     opt.type_v, ring);
    logits_.assign(static_cast<std::size_t>(m.vocab_size), 0.0f);
  }

  /// Makes this session hold the first n positions of `src` (same model, same cache types); the
  /// derived classes expose it for their own type only.
  void copy_prefix(const DecoderSession& src, int n) {
    if (src.window_ != window_) throw InvalidArgument("copy_prefix_from(): the sessions have different attention windows");
    cache_.copy_prefix_from(src.cache_, n);
    if (n == src.n_past()) {
      logits_ = src.logits_;
      has_logits_ = src.has_logits_;
    } else {
      has_logits_ = false;
    }
  }

  template <class, class>
  friend class DecoderModel;

  const char* family_;
  KVCache cache_;
  int context_ = 0, window_ = 0;
  LinearObserver* observer_ = nullptr;
  int pending_n_past_ = 0;
  std::vector<float> logits_;          // last token's logits (vocab_size)
  bool has_logits_ = false;
  AlignedBuffer<float> batch_logits_;  // forward_batch(all_logits) and forward_multi(): rows of logits
  std::vector<int> pos_;               // positions of the rows of the pass
  std::vector<AttentionJob> jobs_;     // attention work of the pass
  std::int64_t rows_cap_ = 0;          // rows the family's scratch holds
};

}  // namespace tinfer
