// tinfer/kernels/interleave.hpp: Q8_0 / Q4_0 / Q4_K / Q6_K weight rows repacked in groups of 16, so
// that one SIMD register holds the same two columns of 16 rows (one int32 lane per row) and a
// single vpdpwssd with a broadcast pair of activations advances 16 rows at once. The block scales
// of a group are then one vector, and the per-block float work (convert, scale, add) is done
// once per 16 rows instead of once per row: prompt processing does about a quarter of the
// instructions per multiply-add of the row-major kernels, and decoding fewer too.
//
// Float weights (F32 / F16 / BF16, rows of a multiple of 16 columns) are grouped the same way for
// a different reason: decoding one token reads each row once, and a tile of several row-major
// rows is several interleaved memory streams, which this machine's prefetchers serve at ~75-80%
// of a single stream's bandwidth (one F16 matrix-vector product over 1 GB: 31 GB/s against a
// 40 GB/s read stream); a group is one stream (38 GB/s with a software prefetch 8 KiB ahead).
//
// Layout of a WeightView with interleaved_rows = R (a multiple of 16): rows [0, R) form R / 16
// groups; group g occupies exactly the bytes rows 16 g .. 16 g + 15 occupy in the file (so the
// memory cost is nil and rows [R, rows) stay where they were). Within a group, block column b
// (16 blocks of 32 values, or of 256 for Q4_K / Q6_K, or of 16 elements for float types) takes
// 16 * sizeof(block) bytes at b * 16 * sizeof(block):
//   - F32 / F16 / BF16: the 16 rows' 16 elements, row 0 first (WeightView::float_row and
//     float_block_step address them); the float kernels keep the order of scalar/dot_rows.hpp,
//     which does not depend on the layout.
//   - Q8_0 / Q4_0: 16 f16 scales, row 0 first (32 bytes); then
//     - Q8_0: for pair k = 0..15, for row r = 0..15: the int8 values 2k and 2k+1 (512 bytes);
//     - Q4_0: for pair k = 0..15, for row r = 0..15: one byte, value 2k's nibble in the low
//       half, value 2k+1's in the high half (256 bytes; the file's Q4_0 keeps value j and j + 16
//       in a byte instead).
//   - Q4_K: 16 f16 d (32 bytes), 16 f16 dmin (32 bytes), the 12 packed scale bytes of each row
//     as three 64-byte planes (plane q, dword r = row r's bytes 4q .. 4q+3: 192 bytes), then for
//     each 8 columns t = 0..31 one 64-byte quad whose dword r holds row r's 8 nibbles: column
//     8t + 2p in bits 4p .. 4p+3 and column 8t + 2p + 1 in bits 16 + 4p .. 19 + 4p (p = 0..3),
//     so (dword >> 4p) & 0x000F000F is the pair p as two int16 (2048 bytes).
//   - Q6_K: 16 f16 d (32 bytes), the 16 int8 scales of each row as four 64-byte planes (plane q,
//     dword r = row r's scales 4q .. 4q+3: 256 bytes), then for each 16 columns u = 0..15 (one
//     scale's sub-block) 192 bytes holding each value as q ^ 32 (q - 32 as a 6-bit two's
//     complement number): two quads of the low nibbles as Q4_K's (columns 16u .. 16u+7, then
//     16u+8 .. 16u+15), then a dword per row of the high 2 bits: column 16u + 2i in bits
//     2i .. 2i+1, column 16u + 2i + 1 in bits 16 + 2i .. 17 + 2i (3072 bytes). Shifting a quad
//     so that a pair's nibbles land in bits 10..13 of their words, and the high dword so that
//     their high bits land in bits 14..15, one bit-select and an arithmetic shift right by 10
//     give the pair as two int16 with the offset applied.
//
// The order of operations (the definition every ISA implements, bit for bit), per (weight row,
// activation row) with 16-bit activations (ActFormat::Q16_32 / Q16_K, scale dx per block):
//   - Q8_0 / Q4_0: acc = +0; for each block b in order: P = the exact int32 sum of its 32
//     products q a (Q8_0 q; Q4_0 nibble - 8; |P| <= 32 * 128 * 32767 < 2^31), then
//     acc = fma(float(P), float(d_w) * dx, acc) (the scale product rounded once).
//   - Q4_K: acc = +0; for each super-block in order, with S_j = sum of n a over sub-block j
//     (n the nibble 0..15, 32 values) and B_j the activations' block sum: for h = 0..3,
//     P = sc_2h S_2h + sc_2h+1 S_2h+1 (exact: |P| <= 2 * 63 * 15 * 32 * 32767 < 2^31) and
//     acc = fma(float(P), float(d) * dx, acc); then M = sum_j m_j B_j (exact) and
//     acc = fma(float(M), -(float(dmin) * dx), acc).
//   - Q6_K: acc = +0; for each super-block in order: t = +0; for j = 0..15, S_j = the exact
//     int32 sum of (q - 32) a over sub-block j (16 values, |S_j| <= 16 * 32 * 32767) and
//     t = fma(float(S_j), float(d) * sc_j, t) (the product is exact: 11 by 8 bits); then
//     acc = fma(t, dx, acc).
// It does not depend on where a row is stored, so the rows past the last whole group use the
// same definition, and a batched product equals the matrix-vector product of each row bit for
// bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/quantize_activations.hpp"

namespace tinfer::kernels {

/// Rows per interleaved group.
inline constexpr std::int64_t kInterleave = WeightView::kGroupRows;

/// Float element types, whose interleaved views the float kernels (dot_rows, dot_rows_multi) read.
constexpr bool is_float_weight(DType t) noexcept { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

/// Whether `t` has an interleaved layout (and kernels for it).
constexpr bool can_interleave(DType t) noexcept {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_K || t == DType::Q6_K || is_float_weight(t);
}
/// Whether a (rows, cols) matrix of `t` can be interleaved: float rows need whole 16-column blocks.
constexpr bool can_interleave(DType t, std::int64_t cols) noexcept {
  return can_interleave(t) && (!is_float_weight(t) || cols % 16 == 0);
}

namespace interleave_detail {
inline std::size_t block_bytes(DType t) noexcept {
  switch (t) {
    case DType::F32: return 16 * 4;
    case DType::F16:
    case DType::BF16: return 16 * 2;
    case DType::Q8_0: return sizeof(quant::block_q8_0);
    case DType::Q4_0: return sizeof(quant::block_q4_0);
    case DType::Q4_K: return sizeof(quant::block_q4_K);
    default: return sizeof(quant::block_q6_K);
  }
}
inline std::int64_t block_values(DType t) noexcept {
  return is_float_weight(t) ? 16 : t == DType::Q4_K || t == DType::Q6_K ? quant::kQK_K : quant::kQK;
}

/// The values of file block `blk` (Q8_0 quants, Q4_0 / Q4_K nibbles 0..15) in element order.
inline void unpack(DType t, const std::byte* blk, int* v) noexcept {
  if (t == DType::Q8_0) {
    for (int e = 0; e < 32; ++e) v[e] = static_cast<std::int8_t>(blk[2 + e]);
  } else if (t == DType::Q4_0) {
    for (int e = 0; e < 16; ++e) {
      const auto b = static_cast<std::uint8_t>(blk[2 + e]);
      v[e] = b & 0xF;
      v[e + 16] = b >> 4;
    }
  } else if (t == DType::Q4_K) {
    const std::byte* qs = blk + offsetof(quant::block_q4_K, qs);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const auto b = static_cast<std::uint8_t>(qs[32 * c + l]);
        v[64 * c + l] = b & 0xF;
        v[64 * c + 32 + l] = b >> 4;
      }
    }
  } else {  // Q6_K: 6-bit values 0..63 (the offset of -32 not applied)
    const std::byte* ql = blk + offsetof(quant::block_q6_K, ql);
    const std::byte* qh = blk + offsetof(quant::block_q6_K, qh);
    for (int h = 0; h < 2; ++h) {
      for (int i = 0; i < 32; ++i) {
        const auto lo0 = static_cast<std::uint8_t>(ql[64 * h + i]), lo1 = static_cast<std::uint8_t>(ql[64 * h + 32 + i]);
        const auto hi = static_cast<std::uint8_t>(qh[32 * h + i]);
        v[128 * h + i] = (lo0 & 0xF) | ((hi & 3) << 4);
        v[128 * h + 32 + i] = (lo1 & 0xF) | (((hi >> 2) & 3) << 4);
        v[128 * h + 64 + i] = (lo0 >> 4) | (((hi >> 4) & 3) << 4);
        v[128 * h + 96 + i] = (lo1 >> 4) | (((hi >> 6) & 3) << 4);
      }
    }
  }
}
/// The inverse of unpack: the quants of file block `blk` (its scales are written by the caller).
inline void pack(DType t, const int* v, std::byte* blk) noexcept {
  if (t == DType::Q8_0) {
    for (int e = 0; e < 32; ++e) blk[2 + e] = static_cast<std::byte>(static_cast<std::int8_t>(v[e]));
  } else if (t == DType::Q4_0) {
    for (int e = 0; e < 16; ++e) blk[2 + e] = static_cast<std::byte>(v[e] | (v[e + 16] << 4));
  } else if (t == DType::Q4_K) {
    std::byte* qs = blk + offsetof(quant::block_q4_K, qs);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) qs[32 * c + l] = static_cast<std::byte>(v[64 * c + l] | (v[64 * c + 32 + l] << 4));
    }
  } else {
    std::byte* ql = blk + offsetof(quant::block_q6_K, ql);
    std::byte* qh = blk + offsetof(quant::block_q6_K, qh);
    for (int h = 0; h < 2; ++h) {
      for (int i = 0; i < 32; ++i) {
        const int* w = v + 128 * h + i;
        ql[64 * h + i] = static_cast<std::byte>((w[0] & 0xF) | ((w[64] & 0xF) << 4));
        ql[64 * h + 32 + i] = static_cast<std::byte>((w[32] & 0xF) | ((w[96] & 0xF) << 4));
        qh[32 * h + i] = static_cast<std::byte>((w[0] >> 4) | ((w[32] >> 4) << 2) | ((w[64] >> 4) << 4) | ((w[96] >> 4) << 6));
      }
    }
  }
}

inline void put_u32(std::byte* p, std::uint32_t v) noexcept { std::memcpy(p, &v, 4); }
inline std::uint32_t get_u32(const std::byte* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

/// Writes file block `src` as row r of the group block at `dst` (16 * block_bytes(t) bytes).
inline void to_group(DType t, const std::byte* src, int r, std::byte* dst) noexcept {
  if (is_float_weight(t)) {
    std::memcpy(dst + static_cast<std::size_t>(r) * block_bytes(t), src, block_bytes(t));
    return;
  }
  int v[256];
  unpack(t, src, v);
  if (t == DType::Q6_K) {
    std::memcpy(dst + 2 * r, src + offsetof(quant::block_q6_K, d), 2);
    for (int q = 0; q < 4; ++q) std::memcpy(dst + 32 + 64 * q + 4 * r, src + offsetof(quant::block_q6_K, scales) + 4 * q, 4);
    for (int u = 0; u < 16; ++u) {
      std::byte* unit = dst + 288 + 192 * u;
      std::uint32_t lo[2] = {0, 0}, hi = 0;
      for (int i = 0; i < 8; ++i) {
        const int c0 = v[16 * u + 2 * i] ^ 32, c1 = v[16 * u + 2 * i + 1] ^ 32;
        lo[i / 4] |= static_cast<std::uint32_t>(c0 & 0xF) << (4 * (i % 4));
        lo[i / 4] |= static_cast<std::uint32_t>(c1 & 0xF) << (16 + 4 * (i % 4));
        hi |= static_cast<std::uint32_t>(c0 >> 4) << (2 * i);
        hi |= static_cast<std::uint32_t>(c1 >> 4) << (16 + 2 * i);
      }
      put_u32(unit + 4 * r, lo[0]);
      put_u32(unit + 64 + 4 * r, lo[1]);
      put_u32(unit + 128 + 4 * r, hi);
    }
    return;
  }
  if (t == DType::Q4_K) {
    std::memcpy(dst + 2 * r, src + offsetof(quant::block_q4_K, d), 2);
    std::memcpy(dst + 32 + 2 * r, src + offsetof(quant::block_q4_K, dmin), 2);
    for (int q = 0; q < 3; ++q) std::memcpy(dst + 64 + 64 * q + 4 * r, src + offsetof(quant::block_q4_K, scales) + 4 * q, 4);
    for (int tq = 0; tq < 32; ++tq) {
      std::uint32_t word = 0;
      for (int p = 0; p < 4; ++p) {
        word |= static_cast<std::uint32_t>(v[8 * tq + 2 * p]) << (4 * p);
        word |= static_cast<std::uint32_t>(v[8 * tq + 2 * p + 1]) << (16 + 4 * p);
      }
      put_u32(dst + 256 + 64 * tq + 4 * r, word);
    }
    return;
  }
  std::memcpy(dst + 2 * r, src, 2);  // the f16 scale
  for (int k = 0; k < 16; ++k) {
    if (t == DType::Q8_0) {
      dst[32 + 32 * k + 2 * r] = static_cast<std::byte>(static_cast<std::int8_t>(v[2 * k]));
      dst[32 + 32 * k + 2 * r + 1] = static_cast<std::byte>(static_cast<std::int8_t>(v[2 * k + 1]));
    } else {
      dst[32 + 16 * k + r] = static_cast<std::byte>(v[2 * k] | (v[2 * k + 1] << 4));
    }
  }
}

/// Reads row r of the group block at `src` back into file block `dst`: the inverse of to_group.
inline void from_group(DType t, const std::byte* src, int r, std::byte* dst) noexcept {
  if (is_float_weight(t)) {
    std::memcpy(dst, src + static_cast<std::size_t>(r) * block_bytes(t), block_bytes(t));
    return;
  }
  int v[256];
  if (t == DType::Q6_K) {
    std::memcpy(dst + offsetof(quant::block_q6_K, d), src + 2 * r, 2);
    for (int q = 0; q < 4; ++q) std::memcpy(dst + offsetof(quant::block_q6_K, scales) + 4 * q, src + 32 + 64 * q + 4 * r, 4);
    for (int u = 0; u < 16; ++u) {
      const std::byte* unit = src + 288 + 192 * u;
      const std::uint32_t lo[2] = {get_u32(unit + 4 * r), get_u32(unit + 64 + 4 * r)}, hi = get_u32(unit + 128 + 4 * r);
      for (int i = 0; i < 8; ++i) {
        v[16 * u + 2 * i] = static_cast<int>(((lo[i / 4] >> (4 * (i % 4))) & 0xF) | (((hi >> (2 * i)) & 3) << 4)) ^ 32;
        v[16 * u + 2 * i + 1] = static_cast<int>(((lo[i / 4] >> (16 + 4 * (i % 4))) & 0xF) | (((hi >> (16 + 2 * i)) & 3) << 4)) ^ 32;
      }
    }
  } else if (t == DType::Q4_K) {
    std::memcpy(dst + offsetof(quant::block_q4_K, d), src + 2 * r, 2);
    std::memcpy(dst + offsetof(quant::block_q4_K, dmin), src + 32 + 2 * r, 2);
    for (int q = 0; q < 3; ++q) std::memcpy(dst + offsetof(quant::block_q4_K, scales) + 4 * q, src + 64 + 64 * q + 4 * r, 4);
    for (int tq = 0; tq < 32; ++tq) {
      const std::uint32_t word = get_u32(src + 256 + 64 * tq + 4 * r);
      for (int p = 0; p < 4; ++p) {
        v[8 * tq + 2 * p] = static_cast<int>((word >> (4 * p)) & 0xF);
        v[8 * tq + 2 * p + 1] = static_cast<int>((word >> (16 + 4 * p)) & 0xF);
      }
    }
  } else {
    std::memcpy(dst, src + 2 * r, 2);
    for (int k = 0; k < 16; ++k) {
      if (t == DType::Q8_0) {
        v[2 * k] = static_cast<std::int8_t>(src[32 + 32 * k + 2 * r]);
        v[2 * k + 1] = static_cast<std::int8_t>(src[32 + 32 * k + 2 * r + 1]);
      } else {
        const auto byte = static_cast<std::uint8_t>(src[32 + 16 * k + r]);
        v[2 * k] = byte & 0xF;
        v[2 * k + 1] = byte >> 4;
      }
    }
  }
  pack(t, v, dst);
}
}  // namespace interleave_detail

/// Rewrites the first rows / 16 * 16 rows of a row-major matrix of an interleavable type at `data`
/// into the interleaved layout, in place (one group of scratch memory), and returns its view.
inline WeightView interleave_rows(DType t, std::byte* data, std::int64_t rows, std::int64_t cols) {
  if (!can_interleave(t)) throw UnsupportedError(tinfer::detail::str_cat("no interleaved layout for ", dtype_name(t)));
  if (!can_interleave(t, cols)) {
    throw InvalidArgument(tinfer::detail::str_cat("interleaving ", dtype_name(t), " rows needs a multiple of 16 columns, not ", cols));
  }
  WeightView w = WeightView::dense(t, data, rows, cols);
  const std::size_t bs = interleave_detail::block_bytes(t);
  const std::int64_t nb = cols / interleave_detail::block_values(t);
  const std::int64_t groups = rows / kInterleave;
  std::vector<std::byte> tmp(static_cast<std::size_t>(kInterleave) * w.row_bytes);
  for (std::int64_t g = 0; g < groups; ++g) {
    std::byte* grp = data + static_cast<std::size_t>(g * kInterleave) * w.row_bytes;
    std::memcpy(tmp.data(), grp, tmp.size());
    for (std::int64_t b = 0; b < nb; ++b) {
      std::byte* dst = grp + static_cast<std::size_t>(b) * kInterleave * bs;
      for (int r = 0; r < kInterleave; ++r) {
        interleave_detail::to_group(t, tmp.data() + static_cast<std::size_t>(r) * w.row_bytes + static_cast<std::size_t>(b) * bs, r, dst);
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
  const std::int64_t nb = w.cols / interleave_detail::block_values(w.type);
  const std::int64_t g = r / kInterleave, i = r % kInterleave;
  const std::byte* grp = w.data + static_cast<std::size_t>(g * kInterleave) * w.row_bytes;
  for (std::int64_t b = 0; b < nb; ++b) {
    interleave_detail::from_group(w.type, grp + static_cast<std::size_t>(b) * kInterleave * bs, static_cast<int>(i),
                                  out + static_cast<std::size_t>(b) * bs);
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
/// every ISA): a Q16RowsFn for Q8_0 / Q4_0 / Q4_K / Q6_K views of either layout, in the order
/// documented above.
template <DType T>
void q16i_rows(const WeightView& w, const void* xq, std::size_t x_stride, int nx, float* y, std::int64_t ldy,
               std::int64_t r0, std::int64_t r1) {
  static_assert(can_interleave(T));
  constexpr bool kK = T == DType::Q4_K || T == DType::Q6_K;
  using A = std::conditional_t<kK, quant::block_q16xK, quant::block_q16x32>;
  const std::size_t bs = interleave_detail::block_bytes(T);
  const std::int64_t nb = w.cols / interleave_detail::block_values(T);
  std::vector<std::byte> row(w.row_bytes);
  int v[256];
  for (std::int64_t r = r0; r < r1; ++r) {
    copy_row(w, r, row.data());
    for (int j = 0; j < nx; ++j) {
      const std::byte* xj = static_cast<const std::byte*>(xq) + static_cast<std::size_t>(j) * x_stride;
      float acc = 0.0f;
      for (std::int64_t b = 0; b < nb; ++b) {
        const std::byte* blk = row.data() + static_cast<std::size_t>(b) * bs;
        A a;
        std::memcpy(&a, xj + static_cast<std::size_t>(b) * sizeof a, sizeof a);
        interleave_detail::unpack(T, blk, v);
        if constexpr (T == DType::Q6_K) {
          quant::block_q6_K kb;
          std::memcpy(&kb, blk, sizeof kb);
          const float d = kb.d.to_float();
          float t = 0.0f;
          for (int sb = 0; sb < 16; ++sb) {
            std::int32_t sum = 0;
            for (int e = 16 * sb; e < 16 * sb + 16; ++e) sum += (v[e] - 32) * a.qs[e];
            t = std::fma(static_cast<float>(sum), d * static_cast<float>(kb.scales[sb]), t);
          }
          acc = std::fma(t, a.d, acc);
        } else if constexpr (kK) {
          quant::block_q4_K kb;
          std::memcpy(&kb, blk, sizeof kb);
          const float s = kb.d.to_float() * a.d;
          std::int32_t m_sum = 0;
          for (int h = 0; h < 4; ++h) {
            std::int32_t p = 0;
            for (int sb = 2 * h; sb < 2 * h + 2; ++sb) {
              std::uint8_t sc, m;
              quant::detail::scale_min_k4(sb, kb.scales, sc, m);
              std::int32_t sum = 0;
              for (int e = 32 * sb; e < 32 * sb + 32; ++e) sum += v[e] * a.qs[e];
              p += static_cast<std::int32_t>(sc) * sum;
            }
            acc = std::fma(static_cast<float>(p), s, acc);
          }
          for (int sb = 0; sb < 8; ++sb) {
            std::uint8_t sc, m;
            quant::detail::scale_min_k4(sb, kb.scales, sc, m);
            m_sum += static_cast<std::int32_t>(m) * a.bsums[sb];
          }
          acc = std::fma(static_cast<float>(m_sum), -(kb.dmin.to_float() * a.d), acc);
        } else {
          std::int32_t p = 0;
          for (int e = 0; e < 32; ++e) p += (T == DType::Q4_0 ? v[e] - 8 : v[e]) * a.qs[e];
          std::uint16_t dh;
          std::memcpy(&dh, blk, 2);
          acc = std::fma(static_cast<float>(p), f16::to_float(dh) * a.d, acc);
        }
      }
      y[j * ldy + r] = acc;
    }
  }
}

}  // namespace scalar
}  // namespace tinfer::kernels
