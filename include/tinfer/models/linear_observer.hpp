// tinfer/models/linear_observer.hpp: a hook that sees the input of every linear layer.
//
// Calibration-based quantizers (GPTQ) need the activations each weight matrix multiplies. A
// session with an observer set calls it before each of those products; a session without one
// pays a single null check per product.
#pragma once

#include <cstdint>

namespace tinfer {

/// Which weight matrices of a layer an input feeds.
enum class LinearSlot {
  AttnQKV,  // the query/key/value projections (Llama wq, wk, wv; GPT-2 the fused qkv)
  AttnOut,  // the attention output projection (Llama wo; GPT-2 attn out)
  FfnUp,    // the feed-forward input projections (Llama gate and up; GPT-2 up)
  FfnDown,  // the feed-forward output projection
  Output,   // the classifier (layer is -1)
};

class LinearObserver {
 public:
  virtual ~LinearObserver() = default;
  /// `x` holds n_rows activation rows of n_cols floats each (contiguous), the input of `slot` in
  /// `layer`. Called on the thread running the forward pass.
  virtual void on_input(int layer, LinearSlot slot, const float* x, std::int64_t n_rows, std::int64_t n_cols) = 0;
};

}  // namespace tinfer
