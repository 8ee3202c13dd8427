// tinfer/kernels/pack_activations.hpp: activation rows repacked for the batched float kernels.
//
// A register tile of the float matrix product multiplies a few weight rows with `group`
// activation rows at once. Read straight from the activation matrix, those are `group`
// separate streams a row stride apart (8 KiB for 2048 columns): they compete for the same L1
// sets and each needs its own address register. Packed, the tile reads one sequential stream:
//
//   tokens in groups of `group` (the last group may be smaller: nxg tokens); group g starts at
//   xp + g * group * cp floats, cp = cols rounded up to 16; within it, token j's columns
//   [16 b, 16 b + 16) are the 16 floats at (b * nxg + j) * 16; columns past `cols` are zero.
//
// Packing copies every activation once per product (n * cp floats of scratch); the values are
// unchanged, so the products are too.
#pragma once

#include <algorithm>
#include <cstdint>

namespace tinfer::kernels {

/// Columns of a packed row: cols rounded up to a whole 16-float block.
constexpr std::int64_t packed_activation_cols(std::int64_t cols) noexcept { return (cols + 15) / 16 * 16; }

/// Floats that n packed activation rows of `cols` columns take.
constexpr std::int64_t packed_activation_floats(std::int64_t n, std::int64_t cols) noexcept {
  return n * packed_activation_cols(cols);
}

/// Packs the token groups [g0, g1) of n activation rows (x, row stride ldx) into xp, laid out as
/// described above. Groups are independent, so callers may split [0, ceil(n / group)) freely.
inline void pack_activation_groups(const float* x, std::int64_t n, std::int64_t ldx, std::int64_t cols, int group, float* xp,
                                   std::int64_t g0, std::int64_t g1) noexcept {
  const std::int64_t cp = packed_activation_cols(cols);
  for (std::int64_t g = g0; g < g1; ++g) {
    const std::int64_t t0 = g * group, nxg = std::min<std::int64_t>(group, n - t0);
    float* dst = xp + t0 * cp;
    for (std::int64_t j = 0; j < nxg; ++j) {
      const float* src = x + (t0 + j) * ldx;
      for (std::int64_t i = 0; i < cp; i += 16) {
        float* d = dst + i * nxg + j * 16;
        const std::int64_t m = std::min<std::int64_t>(16, cols - i);
        std::copy_n(src + i, m, d);
        std::fill(d + m, d + 16, 0.0f);
      }
    }
  }
}

/// Packs all n activation rows (see above).
inline void pack_activations(const float* x, std::int64_t n, std::int64_t ldx, std::int64_t cols, int group, float* xp) noexcept {
  pack_activation_groups(x, n, ldx, cols, group, xp, 0, (n + group - 1) / group);
}

}  // namespace tinfer::kernels
