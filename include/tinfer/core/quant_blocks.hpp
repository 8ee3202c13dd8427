// tinfer/core/quant_blocks.hpp: the block layouts of GGUF's quantized types (namespace tinfer::quant).
//
// Byte-for-byte the structs of ggml-common.h, so GGUF tensor data can be read block by block.
// Each block holds `block_size` weights; scales are f16 codes. Sizes are checked against
// dtype_info() so the two descriptions cannot drift apart.
//
// Legacy blocks (32 weights):            value = d * q (+ m)
//   Q4_0: d, 16 bytes of nibbles; q = nibble - 8. Element j < 16 is the low nibble of qs[j],
//         element j + 16 its high nibble.
//   Q4_1: d, m, nibbles; q = nibble (unsigned), value = d * q + m.
//   Q5_0: d, qh (32 fifth bits, bit j for element j), nibbles; q = (nibble | bit << 4) - 16.
//   Q5_1: d, m, qh, nibbles; q unsigned 5-bit, value = d * q + m.
//   Q8_0: d, 32 int8 quants.
// K-quants (super-blocks of 256 weights, QK_K):
//   Q2_K: 16 sub-blocks of 16; 4-bit scale and 4-bit min per sub-block, 2-bit quants.
//   Q3_K: 16 sub-blocks of 16; 6-bit signed scales (packed in 12 bytes), 2 low bits in qs and a
//         high bit in hmask (a clear bit subtracts 4).
//   Q4_K: 8 sub-blocks of 32; 6-bit scale and min (packed in 12 bytes), 4-bit quants.
//   Q5_K: as Q4_K plus a fifth bit per weight in qh.
//   Q6_K: 16 sub-blocks of 16; int8 scales, 4 low bits in ql and 2 high bits in qh, q - 32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/float16.hpp"

namespace tinfer::quant {

inline constexpr int kQK = 32;    // weights per legacy block
inline constexpr int kQK_K = 256;  // weights per K-quant super-block
inline constexpr int kKScaleSize = 12;  // bytes of packed 6-bit scales/mins in Q4_K/Q5_K

struct block_q4_0 {
  f16 d;                      // scale
  std::uint8_t qs[kQK / 2];   // nibbles
};

struct block_q4_1 {
  f16 d;                      // scale
  f16 m;                      // min (offset)
  std::uint8_t qs[kQK / 2];   // nibbles
};

struct block_q5_0 {
  f16 d;                      // scale
  std::uint8_t qh[4];         // fifth bit of each quant (little-endian uint32)
  std::uint8_t qs[kQK / 2];   // low nibbles
};

struct block_q5_1 {
  f16 d;                      // scale
  f16 m;                      // min
  std::uint8_t qh[4];         // fifth bits
  std::uint8_t qs[kQK / 2];   // low nibbles
};

struct block_q8_0 {
  f16 d;                      // scale
  std::int8_t qs[kQK];        // quants
};

struct block_q2_K {
  std::uint8_t scales[kQK_K / 16];  // low nibble: scale, high nibble: min, per 16 weights
  std::uint8_t qs[kQK_K / 4];       // 2-bit quants
  f16 d;                            // super-block scale of the scales
  f16 dmin;                         // super-block scale of the mins
};

struct block_q3_K {
  std::uint8_t hmask[kQK_K / 8];    // high bit of each quant
  std::uint8_t qs[kQK_K / 4];       // low 2 bits
  std::uint8_t scales[12];          // sixteen 6-bit scales, biased by 32
  f16 d;                            // super-block scale
};

struct block_q4_K {
  f16 d;                            // super-block scale of the scales
  f16 dmin;                         // super-block scale of the mins
  std::uint8_t scales[kKScaleSize]; // eight 6-bit scales and eight 6-bit mins
  std::uint8_t qs[kQK_K / 2];       // 4-bit quants
};

struct block_q5_K {
  f16 d;
  f16 dmin;
  std::uint8_t scales[kKScaleSize];
  std::uint8_t qh[kQK_K / 8];       // fifth bits
  std::uint8_t qs[kQK_K / 2];       // low 4 bits
};

struct block_q6_K {
  std::uint8_t ql[kQK_K / 2];       // low 4 bits
  std::uint8_t qh[kQK_K / 4];       // high 2 bits
  std::int8_t scales[kQK_K / 16];   // per-16 scales
  f16 d;                            // super-block scale
};

/// The block struct of each quantized DType.
template <DType T>
struct block_of;
template <> struct block_of<DType::Q4_0> { using type = block_q4_0; };
template <> struct block_of<DType::Q4_1> { using type = block_q4_1; };
template <> struct block_of<DType::Q5_0> { using type = block_q5_0; };
template <> struct block_of<DType::Q5_1> { using type = block_q5_1; };
template <> struct block_of<DType::Q8_0> { using type = block_q8_0; };
template <> struct block_of<DType::Q2_K> { using type = block_q2_K; };
template <> struct block_of<DType::Q3_K> { using type = block_q3_K; };
template <> struct block_of<DType::Q4_K> { using type = block_q4_K; };
template <> struct block_of<DType::Q5_K> { using type = block_q5_K; };
template <> struct block_of<DType::Q6_K> { using type = block_q6_K; };
template <DType T>
using block_of_t = typename block_of<T>::type;

namespace detail {
template <DType T>
constexpr bool block_matches_dtype() {
  using B = block_of_t<T>;
  return std::is_trivially_copyable_v<B> && sizeof(B) == dtype_info(T)->block_bytes &&
         (T == DType::Q2_K || T == DType::Q3_K || T == DType::Q4_K || T == DType::Q5_K || T == DType::Q6_K
              ? dtype_info(T)->block_size == kQK_K
              : dtype_info(T)->block_size == kQK);
}
}  // namespace detail

static_assert(detail::block_matches_dtype<DType::Q4_0>());
static_assert(detail::block_matches_dtype<DType::Q4_1>());
static_assert(detail::block_matches_dtype<DType::Q5_0>());
static_assert(detail::block_matches_dtype<DType::Q5_1>());
static_assert(detail::block_matches_dtype<DType::Q8_0>());
static_assert(detail::block_matches_dtype<DType::Q2_K>());
static_assert(detail::block_matches_dtype<DType::Q3_K>());
static_assert(detail::block_matches_dtype<DType::Q4_K>());
static_assert(detail::block_matches_dtype<DType::Q5_K>());
static_assert(detail::block_matches_dtype<DType::Q6_K>());

}  // namespace tinfer::quant
