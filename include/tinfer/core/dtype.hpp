// tinfer/core/dtype.hpp: run-time element/block type tags.
//
// The numeric values are GGUF's (ggml_type) so a type read from a file maps directly. Block
// types store `block_size` elements in `block_bytes` bytes; plain types have block_size 1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tinfer/core/float16.hpp"

namespace tinfer {

enum class DType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct DTypeInfo {
  std::string_view name;
  std::size_t block_size;   // elements per block
  std::size_t block_bytes;  // bytes per block
};

/// Layout facts of a type, or nullopt for a value that names no type tinfer knows.
constexpr std::optional<DTypeInfo> dtype_info(DType t) noexcept {
  switch (t) {
    case DType::F32: return DTypeInfo{"F32", 1, 4};
    case DType::F16: return DTypeInfo{"F16", 1, 2};
    case DType::BF16: return DTypeInfo{"BF16", 1, 2};
    case DType::F64: return DTypeInfo{"F64", 1, 8};
    case DType::I8: return DTypeInfo{"I8", 1, 1};
    case DType::I16: return DTypeInfo{"I16", 1, 2};
    case DType::I32: return DTypeInfo{"I32", 1, 4};
    case DType::I64: return DTypeInfo{"I64", 1, 8};
    case DType::Q4_0: return DTypeInfo{"Q4_0", 32, 2 + 16};
    case DType::Q4_1: return DTypeInfo{"Q4_1", 32, 2 + 2 + 16};
    case DType::Q5_0: return DTypeInfo{"Q5_0", 32, 2 + 4 + 16};
    case DType::Q5_1: return DTypeInfo{"Q5_1", 32, 2 + 2 + 4 + 16};
    case DType::Q8_0: return DTypeInfo{"Q8_0", 32, 2 + 32};
    case DType::Q8_1: return DTypeInfo{"Q8_1", 32, 4 + 32};
    case DType::Q2_K: return DTypeInfo{"Q2_K", 256, 256 / 16 + 256 / 4 + 2 + 2};
    case DType::Q3_K: return DTypeInfo{"Q3_K", 256, 256 / 8 + 256 / 4 + 12 + 2};
    case DType::Q4_K: return DTypeInfo{"Q4_K", 256, 2 + 2 + 12 + 256 / 2};
    case DType::Q5_K: return DTypeInfo{"Q5_K", 256, 2 + 2 + 12 + 256 / 8 + 256 / 2};
    case DType::Q6_K: return DTypeInfo{"Q6_K", 256, 256 / 2 + 256 / 4 + 256 / 16 + 2};
    case DType::Q8_K: return DTypeInfo{"Q8_K", 256, 4 + 256 + 2 * 256 / 16};
  }
  return std::nullopt;
}

/// The type's name as GGUF tools print it ("F32", "Q4_K", ...), or "unknown".
constexpr std::string_view dtype_name(DType t) noexcept {
  const auto info = dtype_info(t);
  return info ? info->name : std::string_view("unknown");
}

/// Maps a C++ element type to its tag.
template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::F32;
};
template <>
struct dtype_of<f16> {
  static constexpr DType value = DType::F16;
};
template <>
struct dtype_of<bf16> {
  static constexpr DType value = DType::BF16;
};
template <class T>
inline constexpr DType dtype_of_v = dtype_of<T>::value;

/// The element types a Tensor may hold.
template <class T>
concept Element = requires { dtype_of<T>::value; };

}  // namespace tinfer
