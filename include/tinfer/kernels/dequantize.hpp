// tinfer/kernels/dequantize.hpp: scalar reference dequantization of GGUF tensor data to float.
//
// Bit-exact with ggml's dequantize_row_* (ggml-quants.c): every value is computed with the same
// float operations in the same order (e.g. Q4_K: (d * scale) * q - (dmin * min), Q6_K:
// (d * scale) * q). Exactness assumes the compiler does not fuse a multiply and an add into an
// FMA; x86-64 without -march has no FMA instruction, and builds for FMA targets should add
// -ffp-contract=off to use this as a reference.
//
// These are the scalar twins of the vectorized kernels: simple loops, one block at a time,
// copied out of the source with memcpy so `src` needs no alignment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/float16.hpp"
#include "tinfer/core/quant_blocks.hpp"

namespace tinfer::quant {

// ---- one block -> block_size floats ----

inline void dequantize_block(const block_q4_0& b, float* y) {
  const float d = b.d.to_float();
  for (int j = 0; j < kQK / 2; ++j) {
    const int x0 = (b.qs[j] & 0x0F) - 8;
    const int x1 = (b.qs[j] >> 4) - 8;
    y[j] = static_cast<float>(x0) * d;
    y[j + kQK / 2] = static_cast<float>(x1) * d;
  }
}

inline void dequantize_block(const block_q4_1& b, float* y) {
  const float d = b.d.to_float();
  const float m = b.m.to_float();
  for (int j = 0; j < kQK / 2; ++j) {
    const int x0 = b.qs[j] & 0x0F;
    const int x1 = b.qs[j] >> 4;
    y[j] = static_cast<float>(x0) * d + m;
    y[j + kQK / 2] = static_cast<float>(x1) * d + m;
  }
}

namespace detail {
inline std::uint32_t load_u32_le(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);  // little-endian host asserted by byte_reader.hpp's users; GGUF is LE
  return v;
}
}  // namespace detail

inline void dequantize_block(const block_q5_0& b, float* y) {
  const float d = b.d.to_float();
  const std::uint32_t qh = detail::load_u32_le(b.qh);
  for (int j = 0; j < kQK / 2; ++j) {
    // Bit j of qh is element j's fifth bit, bit j + 16 element j + 16's.
    const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    const int x0 = ((b.qs[j] & 0x0F) | h0) - 16;
    const int x1 = ((b.qs[j] >> 4) | h1) - 16;
    y[j] = static_cast<float>(x0) * d;
    y[j + kQK / 2] = static_cast<float>(x1) * d;
  }
}

inline void dequantize_block(const block_q5_1& b, float* y) {
  const float d = b.d.to_float();
  const float m = b.m.to_float();
  const std::uint32_t qh = detail::load_u32_le(b.qh);
  for (int j = 0; j < kQK / 2; ++j) {
    const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    const int x0 = (b.qs[j] & 0x0F) | h0;
    const int x1 = (b.qs[j] >> 4) | h1;
    y[j] = static_cast<float>(x0) * d + m;
    y[j + kQK / 2] = static_cast<float>(x1) * d + m;
  }
}

inline void dequantize_block(const block_q8_0& b, float* y) {
  const float d = b.d.to_float();
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
}

inline void dequantize_block(const block_q2_K& b, float* y) {
  const float d = b.d.to_float();
  const float dmin = b.dmin.to_float();
  // Two halves of 128 weights, each using 32 bytes of qs; within a half, the four 2-bit fields
  // of a byte belong to four consecutive groups of 32 weights (two sub-blocks of 16 each).
  int is = 0;
  for (int half = 0; half < 2; ++half) {
    const std::uint8_t* q = b.qs + 32 * half;
    for (int shift = 0; shift < 8; shift += 2) {
      for (int sub = 0; sub < 2; ++sub) {
        const std::uint8_t sc = b.scales[is++];
        const float dl = d * static_cast<float>(sc & 0xF);
        const float ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * sub] >> shift) & 3) - ml;
      }
    }
  }
}

namespace detail {
/// Unpacks Q3_K's sixteen 6-bit scales: the low 4 bits of scale i are in byte i % 8 (low nibble
/// for i < 8, high for i >= 8); the high 2 bits are in byte 8 + i % 4, at bit 2 * (i / 4).
inline void unpack_q3_k_scales(const std::uint8_t* packed, int* scales) {
  for (int i = 0; i < 16; ++i) {
    const int low = (packed[i % 8] >> (i < 8 ? 0 : 4)) & 0xF;
    const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
    scales[i] = (low | (high << 4)) - 32;
  }
}

/// Q4_K/Q5_K's 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes: j < 4 are
/// the low 6 bits of bytes j and j + 4; j >= 4 take 4 bits from byte j + 4 and the top 2 bits
/// of bytes j - 4 (scale) and j (min).
inline void scale_min_k4(int j, const std::uint8_t* q, std::uint8_t& sc, std::uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
}  // namespace detail

inline void dequantize_block(const block_q3_K& b, float* y) {
  const float d_all = b.d.to_float();
  int scales[16];
  detail::unpack_q3_k_scales(b.scales, scales);
  // Same traversal as Q2_K; the high bit of weight i of a 128-half is bit (group) of hmask[l].
  int is = 0;
  std::uint8_t m = 1;
  for (int half = 0; half < 2; ++half) {
    const std::uint8_t* q = b.qs + 32 * half;
    for (int shift = 0; shift < 8; shift += 2) {
      for (int sub = 0; sub < 2; ++sub) {
        const float dl = d_all * static_cast<float>(scales[is++]);
        for (int l = 0; l < 16; ++l) {
          const int lo = (q[l + 16 * sub] >> shift) & 3;
          const int qv = lo - ((b.hmask[l + 16 * sub] & m) ? 0 : 4);
          *y++ = dl * static_cast<float>(qv);
        }
      }
      m = static_cast<std::uint8_t>(m << 1);
    }
  }
}

inline void dequantize_block(const block_q4_K& b, float* y) {
  const float d = b.d.to_float();
  const float dmin = b.dmin.to_float();
  const std::uint8_t* q = b.qs;
  // Four chunks of 64 weights: 32 low nibbles (sub-block 2c) then 32 high nibbles (2c + 1).
  for (int c = 0; c < 4; ++c) {
    std::uint8_t sc, mn;
    detail::scale_min_k4(2 * c, b.scales, sc, mn);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = dmin * static_cast<float>(mn);
    detail::scale_min_k4(2 * c + 1, b.scales, sc, mn);
    const float d2 = d * static_cast<float>(sc);
    const float m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
  }
}

inline void dequantize_block(const block_q5_K& b, float* y) {
  const float d = b.d.to_float();
  const float dmin = b.dmin.to_float();
  const std::uint8_t* ql = b.qs;
  // As Q4_K; sub-block s takes its fifth bits from bit s of qh[l].
  for (int c = 0; c < 4; ++c) {
    std::uint8_t sc, mn;
    detail::scale_min_k4(2 * c, b.scales, sc, mn);
    const float d1 = d * static_cast<float>(sc);
    const float m1 = dmin * static_cast<float>(mn);
    detail::scale_min_k4(2 * c + 1, b.scales, sc, mn);
    const float d2 = d * static_cast<float>(sc);
    const float m2 = dmin * static_cast<float>(mn);
    const std::uint8_t u1 = static_cast<std::uint8_t>(1u << (2 * c));
    const std::uint8_t u2 = static_cast<std::uint8_t>(2u << (2 * c));
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((b.qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0)) - m2;
    ql += 32;
  }
}

inline void dequantize_block(const block_q6_K& b, float* y) {
  const float d = b.d.to_float();
  const std::uint8_t* ql = b.ql;
  const std::uint8_t* qh = b.qh;
  const std::int8_t* sc = b.scales;
  // Two halves of 128 weights; weight l + 32 * k of a half (k = 0..3) takes nibble k / 2 of
  // ql[l + 32 * (k % 2)] and bits 2k..2k+1 of qh[l].
  for (int half = 0; half < 2; ++half) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// ---- rows ----

/// Dequantizes `n_blocks` consecutive blocks of type B from `src` (any alignment) into `dst`
/// (n_blocks * block_size floats).
template <class B>
void dequantize_blocks(const std::byte* src, float* dst, std::int64_t n_blocks, int block_size) {
  for (std::int64_t i = 0; i < n_blocks; ++i) {
    B b;
    std::memcpy(&b, src + i * static_cast<std::int64_t>(sizeof(B)), sizeof(B));
    dequantize_block(b, dst + i * block_size);
  }
}

/// Bytes that `n` elements of `type` occupy. Throws UnsupportedError for an unknown type and
/// InvalidArgument if n is negative, not a multiple of the type's block size, or too large.
inline std::size_t row_bytes(DType type, std::int64_t n) {
  const auto info = dtype_info(type);
  if (!info) throw UnsupportedError(tinfer::detail::str_cat("unknown tensor type ", static_cast<std::uint32_t>(type)));
  if (n < 0 || static_cast<std::uint64_t>(n) % info->block_size != 0) {
    throw InvalidArgument(tinfer::detail::str_cat("dequantize: ", n, " elements is not a multiple of the ", info->name,
                                                  " block size ", info->block_size));
  }
  const std::size_t blocks = static_cast<std::size_t>(n) / info->block_size;
  if (blocks > std::numeric_limits<std::size_t>::max() / info->block_bytes) {
    throw InvalidArgument(tinfer::detail::str_cat("dequantize: ", n, " elements of ", info->name, " overflow a byte count"));
  }
  return blocks * info->block_bytes;
}

/// Converts `n` elements of `type` at `src` (row_bytes(type, n) bytes, any alignment) to float
/// in `dst`. Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K,
/// Q6_K; throws UnsupportedError naming any other type, InvalidArgument if n is not a multiple
/// of the block size.
inline void dequantize_row(DType type, const std::byte* src, float* dst, std::int64_t n) {
  const std::size_t bytes = row_bytes(type, n);
  switch (type) {
    case DType::F32:
      if (n > 0) std::memcpy(dst, src, bytes);
      return;
    case DType::F16:
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16::to_float(h);
      }
      return;
    case DType::BF16:
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16::to_float(h);
      }
      return;
    case DType::Q4_0: return dequantize_blocks<block_q4_0>(src, dst, n / kQK, kQK);
    case DType::Q4_1: return dequantize_blocks<block_q4_1>(src, dst, n / kQK, kQK);
    case DType::Q5_0: return dequantize_blocks<block_q5_0>(src, dst, n / kQK, kQK);
    case DType::Q5_1: return dequantize_blocks<block_q5_1>(src, dst, n / kQK, kQK);
    case DType::Q8_0: return dequantize_blocks<block_q8_0>(src, dst, n / kQK, kQK);
    case DType::Q2_K: return dequantize_blocks<block_q2_K>(src, dst, n / kQK_K, kQK_K);
    case DType::Q3_K: return dequantize_blocks<block_q3_K>(src, dst, n / kQK_K, kQK_K);
    case DType::Q4_K: return dequantize_blocks<block_q4_K>(src, dst, n / kQK_K, kQK_K);
    case DType::Q5_K: return dequantize_blocks<block_q5_K>(src, dst, n / kQK_K, kQK_K);
    case DType::Q6_K: return dequantize_blocks<block_q6_K>(src, dst, n / kQK_K, kQK_K);
    default: break;
  }
  throw UnsupportedError(tinfer::detail::str_cat("dequantize: tensor type ", dtype_name(type),
                                                 " is not supported (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, "
                                                 "Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)"));
}

/// Checked form: dequantizes all of `src` into `dst`, whose size gives the element count.
/// Throws InvalidArgument if src does not hold exactly dst.size() elements of `type`.
inline void dequantize(DType type, std::span<const std::byte> src, std::span<float> dst) {
  const auto n = static_cast<std::int64_t>(dst.size());
  const std::size_t bytes = row_bytes(type, n);
  if (src.size() != bytes) {
    throw InvalidArgument(tinfer::detail::str_cat("dequantize: ", dst.size(), " elements of ", dtype_name(type), " take ",
                                                  bytes, " bytes, got ", src.size()));
  }
  dequantize_row(type, src.data(), dst.data(), n);
}

}  // namespace tinfer::quant
