// tinfer/models/llama_config.hpp: hyperparameters of a Llama-family decoder.
#pragma once

#include <cstdint>

#include "tinfer/core/error.hpp"
#include "tinfer/kernels/rope.hpp"

namespace tinfer {

struct LlamaConfig {
  int dim = 0;          // model (embedding) width
  int hidden_dim = 0;   // feed-forward inner width
  int n_layers = 0;
  int n_heads = 0;      // query heads
  int n_kv_heads = 0;   // key/value heads (< n_heads: grouped-query attention)
  int vocab_size = 0;
  int max_seq_len = 0;  // the longest context the model was trained for
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int rope_dims = 0;              // dimensions of each head that rotate; 0: all (head_dim)
  float rope_freq_scale = 1.0f;   // linear RoPE scaling: positions are multiplied by this
  kernels::RopeLayout rope_layout = kernels::RopeLayout::Interleaved;
  std::int32_t bos_id = 1;
  std::int32_t eos_id = 2;

  int head_dim() const noexcept { return dim / n_heads; }
  int kv_dim() const noexcept { return head_dim() * n_kv_heads; }
  int rotary_dims() const noexcept { return rope_dims > 0 ? rope_dims : head_dim(); }

  /// Throws InvalidArgument naming the first inconsistent field.
  void validate() const {
    auto positive = [](const char* name, int v) {
      if (v <= 0) throw InvalidArgument(detail::str_cat("Llama config: ", name, " = ", v, " must be positive"));
    };
    positive("dim", dim);
    positive("hidden_dim", hidden_dim);
    positive("n_layers", n_layers);
    positive("n_heads", n_heads);
    positive("n_kv_heads", n_kv_heads);
    positive("vocab_size", vocab_size);
    positive("max_seq_len", max_seq_len);
    if (dim % n_heads != 0) throw InvalidArgument(detail::str_cat("Llama config: n_heads ", n_heads, " does not divide dim ", dim));
    if (n_heads % n_kv_heads != 0) {
      throw InvalidArgument(detail::str_cat("Llama config: n_kv_heads ", n_kv_heads, " does not divide n_heads ", n_heads));
    }
    if (head_dim() % 2 != 0) throw InvalidArgument(detail::str_cat("Llama config: head dim ", head_dim(), " is odd"));
    if (rope_dims < 0 || rope_dims > head_dim() || rope_dims % 2 != 0) {
      throw InvalidArgument(detail::str_cat("Llama config: rope dimension count ", rope_dims, " must be even and at most the head dim ",
                                            head_dim()));
    }
    if (!(rope_theta > 0.0f) || !(rope_freq_scale > 0.0f)) throw InvalidArgument("Llama config: RoPE base and scale must be positive");
  }
};

}  // namespace tinfer
