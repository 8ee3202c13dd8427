// tinfer/kernels/interleave.hpp: Q8_0 / Q4_0 weight rows repacked in groups of 16, so that one
// SIMD register holds the same two columns of 16 rows (one int32 lane per row) and a single
// vpdpwssd with a broadcast pair of activations advances 16 rows at once. The block scales of a
// group are then one 32-byte vector, and the per-block float work (convert, scale, add) is done
// once per 16 rows instead of once per row: prompt processing does about a quarter of the
// instructions per multiply-add of the row-major kernels, and decoding fewer too.
//
// Layout of a WeightView with interleaved_rows = R (a multiple of 16): rows [0, R) form R / 16
// groups; group g occupies exactly the bytes rows 16 g .. 16 g + 15 occupy in the file (so the
// memory cost is nil and rows [R, rows) stay where they were). Within a group, block column b
// (16 blocks of 32 values) takes 16 * sizeof(block) bytes at b * 16 * sizeof(block):
//   - 16 f16 scales, row 0 first (32 bytes);
//   - Q8_0: for pair k = 0..15, for row r = 0..15: the int8 values 2k and 2k+1 (512 bytes);
//   - Q4_0: for pair k = 0..15, for row r = 0..15: one byte, value 2k's nibble in the low half,
//     value 2k+1's in the high half (256 bytes; the file's Q4_0 keeps value j and j + 16 in a
//     byte instead).
//
// The order of operations (the definition every ISA implements, bit for bit), per (weight row,
// activation row) with 16-bit activations (ActFormat::Q16_32, scale dx per block): acc = +0;
// for each block b in order: P = the exact int32 sum of its 32 products q a (Q8_0 q; Q4_0
// nibble - 8; |P| <= 32 * 128 * 32767 < 2^31), then acc = fma(float(P), float(d_w) * dx, acc)
// (the scale product rounded once). It does not depend on where a row is stored, so the rows
// past the last whole group use the same definition, and a batched product equals the
// matrix-vector product of each row bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/quantize_activations.hpp"

namespace tinfer::kernels {

/// Rows per interleaved group.
inline constexpr std::int64_t kInterleave = 16;

/// Whether `t` has an interleaved layout (and kernels for it).
constexpr bool can_interleave(DType t) noexcept { return t == DType::Q8_0 || t == DType::Q4_0; }

namespace interleave_detail {
/// The 32 values of block `q` (Q8_0 quants or Q4_0 nibbles 0..15) in element order.
inline void block_values(DType t, const std::byte* blk, int* v) noexcept {
  if (t == DType::Q8_0) {
    for (int e = 0; e < 32; ++e) v[e] = static_cast<std::int8_t>(blk[2 + e]);
  } else {
    for (int e = 0; e < 16; ++e) {
      const auto b = static_cast<std::uint8_t>(blk[2 + e]);
      v[e] = b & 0xF;
      v[e + 16] = b >> 4;
    }
  }
}
inline std::size_t block_bytes(DType t) noexcept { return t == DType::Q8_0 ? sizeof(quant::block_q8_0) : sizeof(quant::block_q4_0); }
}  // namespace interleave_detail

/// Rewrites the first rows / 16 * 16 rows of a row-major Q8_0 / Q4_0 matrix at `data` into the
/// interleaved layout, in place (one group of scratch memory), and returns the view of it.
inline WeightView interleave_rows(DType t, std::byte* data, std::int64_t rows, std::int64_t cols) {
  if (!can_interleave(t)) throw UnsupportedError(tinfer::detail::str_cat("no interleaved layout for ", dtype_name(t)));
  WeightView w = WeightView::dense(t, data, rows, cols);
  const std::size_t bs = interleave_detail::block_bytes(t);
  const std::int64_t nb = cols / quant::kQK;
  const std::int64_t groups = rows / kInterleave;
  std::vector<std::byte> tmp(static_cast<std::size_t>(kInterleave) * w.row_bytes);
  int v[32];
  for (std::int64_t g = 0; g < groups; ++g) {
    std::byte* grp = data + static_cast<std::size_t>(g * kInterleave) * w.row_bytes;
    std::memcpy(tmp.data(), grp, tmp.size());
    for (std::int64_t b = 0; b < nb; ++b) {
      std::byte* dst = grp + static_cast<std::size_t>(b) * kInterleave * bs;
      for (int r = 0; r < kInterleave; ++r) {
        const std::byte* src = tmp.data() + static_cast<std::size_t>(r) * w.row_bytes + static_cast<std::size_t>(b) * bs;
        std::memcpy(dst + 2 * r, src, 2);  // the f16 scale
        interleave_detail::block_values(t, src, v);
        for (int k = 0; k < 16; ++k) {
          if (t == DType::Q8_0) {
            dst[32 + 32 * k + 2 * r] = static_cast<std::byte>(static_cast<std::int8_t>(v[2 * k]));
            dst[32 + 32 * k + 2 * r + 1] = static_cast<std::byte>(static_cast<std::int8_t>(v[2 * k + 1]));
          } else {
            dst[32 + 16 * k + r] = static_cast<std::byte>(v[2 * k] | (v[2 * k + 1] << 4));
          }
        }
      }
    }
  }
  w.interleaved_rows = groups * kInterleave;
  return w;
}

/// Row r of w in the file's row-major block layout (w.row_bytes bytes into `out`), whatever
/// w's layout: the inverse of interleave_rows for one row.
inline void copy_row(const WeightView& w, std::int64_t r, std::byte* out) {
  if (r >= w.interleaved_rows) {
    std::memcpy(out, w.row(r), w.row_bytes);
    return;
  }
  const std::size_t bs = interleave_detail::block_bytes(w.type);
  const std::int64_t nb = w.cols / quant::kQK;
  const std::int64_t g = r / kInterleave, i = r % kInterleave;
  const std::byte* grp = w.data + static_cast<std::size_t>(g * kInterleave) * w.row_bytes;
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::byte* src = grp + static_cast<std::size_t>(b) * kInterleave * bs;
    std::byte* dst = out + static_cast<std::size_t>(b) * bs;
    std::memcpy(dst, src + 2 * i, 2);
    int v[32];
    for (int k = 0; k < 16; ++k) {
      if (w.type == DType::Q8_0) {
        v[2 * k] = static_cast<std::int8_t>(src[32 + 32 * k + 2 * i]);
        v[2 * k + 1] = static_cast<std::int8_t>(src[32 + 32 * k + 2 * i + 1]);
      } else {
        const auto byte = static_cast<std::uint8_t>(src[32 + 16 * k + i]);
        v[2 * k] = byte & 0xF;
        v[2 * k + 1] = byte >> 4;
      }
    }
    if (w.type == DType::Q8_0) {
      for (int e = 0; e < 32; ++e) dst[2 + e] = static_cast<std::byte>(static_cast<std::int8_t>(v[e]));
    } else {
      for (int e = 0; e < 16; ++e) dst[2 + e] = static_cast<std::byte>(v[e] | (v[e + 16] << 4));
    }
  }
}

/// Splits rows [r0, r1) of an interleaved view for a SIMD kernel: runs of whole groups go to
/// `groups(g)` one group at a time, rows that start inside a group or lie past the last group
/// to `rows(a, b)` (the scalar twin, which gives the same bits).
template <class Groups, class Rows>
void split_interleaved(const WeightView& w, std::int64_t r0, std::int64_t r1, Groups&& groups, Rows&& rows) {
  std::int64_t r = r0;
  if (r % kInterleave != 0 && r < w.interleaved_rows) {
    const std::int64_t e = std::min(r1, (r / kInterleave + 1) * kInterleave);
    rows(r, e);
    r = e;
  }
  const std::int64_t gend = std::min(r1, w.interleaved_rows) / kInterleave;
  if (r / kInterleave < gend) {
    for (std::int64_t g = r / kInterleave; g < gend; ++g) groups(g);
    r = gend * kInterleave;
  }
  if (r < r1) rows(r, r1);
}

namespace scalar {

/// The scalar twin of the interleaved kernels (and the kernel of rows past the last group on
/// every ISA): a Q16RowsFn for Q8_0 / Q4_0 views of either layout, in the order documented above.
template <DType T>
void q16i_rows(const WeightView& w, const void* xq, std::size_t x_stride, int nx, float* y, std::int64_t ldy,
               std::int64_t r0, std::int64_t r1) {
  static_assert(can_interleave(T));
  const std::int64_t nb = w.cols / quant::kQK;
  std::vector<std::byte> row(w.row_bytes);
  constexpr std::size_t bs = T == DType::Q8_0 ? sizeof(quant::block_q8_0) : sizeof(quant::block_q4_0);
  for (std::int64_t r = r0; r < r1; ++r) {
    copy_row(w, r, row.data());
    for (int j = 0; j < nx; ++j) {
      const std::byte* xj = static_cast<const std::byte*>(xq) + static_cast<std::size_t>(j) * x_stride;
      float acc = 0.0f;
      for (std::int64_t b = 0; b < nb; ++b) {
        const std::byte* blk = row.data() + static_cast<std::size_t>(b) * bs;
        quant::block_q16x32 a;
        std::memcpy(&a, xj + static_cast<std::size_t>(b) * sizeof a, sizeof a);
        int v[32];
        interleave_detail::block_values(T, blk, v);
        std::int32_t p = 0;
        for (int e = 0; e < 32; ++e) p += (T == DType::Q4_0 ? v[e] - 8 : v[e]) * a.qs[e];
        std::uint16_t dh;
        std::memcpy(&dh, blk, 2);
        acc = std::fma(static_cast<float>(p), f16::to_float(dh) * a.d, acc);
      }
      y[j * ldy + r] = acc;
    }
  }
}

}  // namespace scalar
}  // namespace tinfer::kernels
