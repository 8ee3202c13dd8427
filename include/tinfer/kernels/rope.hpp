// tinfer/kernels/rope.hpp: rotary position embedding.
//
// Two layouts of the rotated pairs exist in published checkpoints:
//  - Interleaved: pairs (2i, 2i+1) of each head. llama2.c checkpoints and GGUF Llama files
//    (whose converters permute Hugging Face's Q/K rows into this order) use it.
//  - RotateHalf: pairs (i, i + head_dim/2), as Hugging Face's Llama code ("rotate_half") and
//    GPT-NeoX do.
// Pair i of a head rotates by angle pos * theta^(-2i / rot_dims).
#pragma once

#include <cmath>
#include <cstdint>

namespace tinfer::kernels {

enum class RopeLayout { Interleaved, RotateHalf };

/// Rotates `n_heads` heads of `head_dim` floats stored contiguously at `x`, for position `pos`.
/// Only the first `rot_dims` dimensions of each head rotate (rot_dims <= head_dim, even).
/// The angle is computed in float exactly as llama2.c's run.c computes it
/// (1 / powf(theta, 2i / rot_dims), times pos, then cosf/sinf), so its logits are reproduced.
/// `freq_scale` multiplies the position (linear RoPE scaling; 1 for none).
inline void rope_inplace(float* x, std::int64_t n_heads, std::int64_t head_dim, std::int64_t rot_dims,
                         std::int64_t pos, float theta, RopeLayout layout, float freq_scale = 1.0f) noexcept {
  const std::int64_t half = rot_dims / 2;
  for (std::int64_t i = 0; i < half; ++i) {
    const float freq = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(rot_dims));
    const float angle = static_cast<float>(pos) * freq_scale * freq;
    const float c = std::cos(angle), s = std::sin(angle);
    for (std::int64_t h = 0; h < n_heads; ++h) {
      float* v = x + h * head_dim;
      const std::int64_t a = layout == RopeLayout::Interleaved ? 2 * i : i;
      const std::int64_t b = layout == RopeLayout::Interleaved ? 2 * i + 1 : i + half;
      const float v0 = v[a], v1 = v[b];
      v[a] = v0 * c - v1 * s;
      v[b] = v0 * s + v1 * c;
    }
  }
}

}  // namespace tinfer::kernels
