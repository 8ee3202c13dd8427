// tinfer/kernels/quantize_activations.hpp: 8-bit quantization of the activation vector x, done
// once per matrix-vector product so the quantized-weight kernels can take integer dot products
// (the scheme of llama.cpp's quantize_row_q8_0 / q8_1 / q8_K, written independently).
//
// Two formats:
//   ActFormat::Q8_32 (blocks of 32, for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights): d = amax / 127,
//     q = round(x / d) in [-127, 127]; s = d * sum(q) is kept for the *_1 types (their offset m
//     multiplies the sum of the block's activations). d is kept as a float (ggml rounds it to
//     f16), which is at least as accurate.
//   ActFormat::Q8_K (super-blocks of 256, for the K-quants): d = amax / 127, q as above, and the
//     integer sum of every 16 quants (bsums) for the K types' mins and offsets.
// Error: |x - d q| <= d / 2 = amax_block / 254 for every element, so a dot product with weight
// row w changes by at most sum over blocks of (amax_b / 254) * sum_{i in b} |w_i|.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tinfer/core/quant_blocks.hpp"

namespace tinfer::quant {

/// One block of 32 quantized activations.
struct block_q8x32 {
  float d;                 // scale
  float s;                 // d * sum(qs)
  std::int16_t isum;       // sum(qs)
  std::int16_t pad;
  std::int8_t qs[kQK];
};

/// One super-block of 256 quantized activations.
struct block_q8xK {
  float d;                          // scale
  std::int8_t qs[kQK_K];
  std::int16_t bsums[kQK_K / 16];   // sum of each 16 quants
};

/// One block of 32 activations quantized to 16 bits (the default, near-exact path).
struct block_q16x32 {
  float d;                 // scale: amax / 32767
  std::int32_t sum;        // sum of the 32 quants (Q4_0's offset of -8 multiplies it)
  std::int32_t pad[6];     // keeps qs 64-byte aligned when the buffer is
  std::int16_t qs[kQK];
};

/// One super-block of 256 activations quantized to 16 bits, with the sum of each 32 (the
/// K types' mins multiply them).
struct block_q16xK {
  float d;                          // scale: amax / 32767
  std::int32_t pad[7];
  std::int32_t bsums[kQK_K / 32];   // sum of each 32 quants
  std::int16_t qs[kQK_K];
};

}  // namespace tinfer::quant

namespace tinfer::kernels {

/// Q8_*: 8-bit activations (llama.cpp's scheme). Q16_*: 16-bit activations, q = round(x / d)
/// with d = amax / 32767, so |x - d q| <= amax / 65534 per element (plus float rounding, ~4e-7 |x|): the dot products stay within
/// ~1e-5 (relative to sum |w x|) of the float ones, far inside the reference models' argmax
/// margin, while the weights still take integer dot products (vpmaddwd / vpdpwssd).
enum class ActFormat : std::uint8_t { None = 0, Q8_32 = 1, Q8_K = 2, Q16_32 = 3, Q16_K = 4 };

/// Bytes the quantized form of n activations takes (n a multiple of the block size).
inline std::size_t activation_bytes(ActFormat f, std::int64_t n) noexcept {
  switch (f) {
    case ActFormat::Q8_32: return static_cast<std::size_t>(n / quant::kQK) * sizeof(quant::block_q8x32);
    case ActFormat::Q8_K: return static_cast<std::size_t>(n / quant::kQK_K) * sizeof(quant::block_q8xK);
    case ActFormat::Q16_32: return static_cast<std::size_t>(n / quant::kQK) * sizeof(quant::block_q16x32);
    case ActFormat::Q16_K: return static_cast<std::size_t>(n / quant::kQK_K) * sizeof(quant::block_q16xK);
    case ActFormat::None: break;
  }
  return 0;
}

namespace detail {
/// amax / 127 and its inverse (0 for an all-zero block). Plain compares and a rounding by
/// truncation, so the loops need no libm calls (fmax, nearbyint) and vectorize.
inline void q8_scale(const float* x, int n, float& d, float& id) noexcept {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float a = x[j] < 0.0f ? -x[j] : x[j];
    amax = a > amax ? a : amax;
  }
  d = amax / 127.0f;
  id = d != 0.0f ? 1.0f / d : 0.0f;
}
/// Round half away from zero (roundf), clamped to [-127, 127] (|v| <= 127 up to rounding).
inline std::int8_t q8_round(float v) noexcept {
  const int r = static_cast<int>(v + (v < 0.0f ? -0.5f : 0.5f));
  return static_cast<std::int8_t>(r > 127 ? 127 : (r < -127 ? -127 : r));
}
}  // namespace detail

/// Quantizes n floats (a multiple of 32) into n / 32 blocks of 32.
inline void quantize_q8x32(const float* x, quant::block_q8x32* y, std::int64_t n) noexcept {
  for (std::int64_t b = 0; b < n / quant::kQK; ++b, x += quant::kQK) {
    quant::block_q8x32 blk{};  // built locally: y may be misaligned (blocks are read with loadu)
    float d, id;
    detail::q8_scale(x, quant::kQK, d, id);
    int sum = 0;
    for (int j = 0; j < quant::kQK; ++j) {
      blk.qs[j] = detail::q8_round(x[j] * id);
      sum += blk.qs[j];
    }
    blk.d = d;
    blk.isum = static_cast<std::int16_t>(sum);
    blk.s = d * static_cast<float>(sum);
    std::memcpy(static_cast<void*>(y + b), &blk, sizeof blk);
  }
}

/// Quantizes n floats (a multiple of 256) into n / 256 super-blocks.
inline void quantize_q8xK(const float* x, quant::block_q8xK* y, std::int64_t n) noexcept {
  for (std::int64_t b = 0; b < n / quant::kQK_K; ++b, x += quant::kQK_K) {
    quant::block_q8xK blk{};  // built locally: y may be misaligned
    float d, id;
    detail::q8_scale(x, quant::kQK_K, d, id);
    for (int j = 0; j < quant::kQK_K; ++j) blk.qs[j] = detail::q8_round(x[j] * id);
    for (int g = 0; g < quant::kQK_K / 16; ++g) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += blk.qs[16 * g + j];
      blk.bsums[g] = static_cast<std::int16_t>(s);
    }
    blk.d = d;
    std::memcpy(static_cast<void*>(y + b), &blk, sizeof blk);
  }
}

namespace detail {
/// amax / 32767 and its inverse, and q = round-half-away(x / d) (|x / d| <= 32767 up to rounding).
inline void q16_block(const float* x, int n, float& d, std::int16_t* q) noexcept {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float a = x[j] < 0.0f ? -x[j] : x[j];
    amax = a > amax ? a : amax;
  }
  d = amax / 32767.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < n; ++j) {
    const float v = x[j] * id;
    const int r = static_cast<int>(v + (v < 0.0f ? -0.5f : 0.5f));
    q[j] = static_cast<std::int16_t>(r > 32767 ? 32767 : (r < -32767 ? -32767 : r));
  }
}
}  // namespace detail

/// Quantizes n floats (a multiple of 32) into n / 32 blocks of 16-bit activations.
inline void quantize_q16x32(const float* x, quant::block_q16x32* y, std::int64_t n) noexcept {
  for (std::int64_t b = 0; b < n / quant::kQK; ++b, x += quant::kQK) {
    quant::block_q16x32 blk{};  // built locally: y may be misaligned
    detail::q16_block(x, quant::kQK, blk.d, blk.qs);
    for (int j = 0; j < quant::kQK; ++j) blk.sum += blk.qs[j];
    std::memcpy(static_cast<void*>(y + b), &blk, sizeof blk);
  }
}

/// Quantizes n floats (a multiple of 256) into n / 256 super-blocks of 16-bit activations.
inline void quantize_q16xK(const float* x, quant::block_q16xK* y, std::int64_t n) noexcept {
  for (std::int64_t b = 0; b < n / quant::kQK_K; ++b, x += quant::kQK_K) {
    quant::block_q16xK blk{};  // built locally: y may be misaligned
    detail::q16_block(x, quant::kQK_K, blk.d, blk.qs);
    for (int g = 0; g < quant::kQK_K / 32; ++g) {
      int s = 0;
      for (int j = 0; j < 32; ++j) s += blk.qs[32 * g + j];
      blk.bsums[g] = s;
    }
    std::memcpy(static_cast<void*>(y + b), &blk, sizeof blk);
  }
}

/// Quantizes n activations into `dst` (activation_bytes(f, n) bytes, aligned for float).
inline void quantize_activations(ActFormat f, const float* x, std::int64_t n, void* dst) noexcept {
  if (f == ActFormat::Q8_32) quantize_q8x32(x, static_cast<quant::block_q8x32*>(dst), n);
  else if (f == ActFormat::Q8_K) quantize_q8xK(x, static_cast<quant::block_q8xK*>(dst), n);
  else if (f == ActFormat::Q16_32) quantize_q16x32(x, static_cast<quant::block_q16x32*>(dst), n);
  else if (f == ActFormat::Q16_K) quantize_q16xK(x, static_cast<quant::block_q16xK*>(dst), n);
}

}  // namespace tinfer::kernels
