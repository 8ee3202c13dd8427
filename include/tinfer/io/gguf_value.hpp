// tinfer/io/gguf_value.hpp: a GGUF metadata value (scalar, string or array, arrays nestable).
//
// GGUF stores metadata as key/value pairs whose values carry one of thirteen type tags. A
// GgufValue keeps the tag and the value exactly as stored, so a file read and written back is
// byte-identical, and typed access never silently converts (uint32 is not int32).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "tinfer/core/error.hpp"

namespace tinfer::io {

/// GGUF's metadata value type tags (gguf_type), numeric values as stored in files.
enum class GgufType : std::uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

/// The tag's name as GGUF tools print it ("uint32", "string", ...), or "unknown".
constexpr std::string_view gguf_type_name(GgufType t) noexcept {
  switch (t) {
    case GgufType::U8: return "uint8";
    case GgufType::I8: return "int8";
    case GgufType::U16: return "uint16";
    case GgufType::I16: return "int16";
    case GgufType::U32: return "uint32";
    case GgufType::I32: return "int32";
    case GgufType::F32: return "float32";
    case GgufType::Bool: return "bool";
    case GgufType::String: return "string";
    case GgufType::Array: return "array";
    case GgufType::U64: return "uint64";
    case GgufType::I64: return "int64";
    case GgufType::F64: return "float64";
  }
  return "unknown";
}

/// True if `raw` is one of the thirteen tags.
constexpr bool gguf_type_valid(std::uint32_t raw) noexcept { return raw <= 12; }

/// Bytes a scalar of this type occupies in a file; 0 for String and Array (variable size).
constexpr std::size_t gguf_scalar_size(GgufType t) noexcept {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::Bool: return 1;
    case GgufType::U16:
    case GgufType::I16: return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32: return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64: return 8;
    case GgufType::String:
    case GgufType::Array: return 0;
  }
  return 0;
}

class GgufValue;

/// A GGUF array: one element type for all items. Items of a nested array (type Array) may
/// themselves have different element types, as in GGUF.
struct GgufArray {
  GgufType type = GgufType::U8;
  std::vector<GgufValue> items;

  bool operator==(const GgufArray&) const = default;

  /// Builds an array of a scalar or string element type from C++ values.
  template <class T>
  static GgufArray of(const std::vector<T>& values);
};

namespace gguf_detail {
/// The C++ type stored for each GgufType, indexed like the variant below.
template <class T>
inline constexpr bool is_gguf_scalar_v =
    std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::uint16_t> ||
    std::is_same_v<T, std::int16_t> || std::is_same_v<T, std::uint32_t> || std::is_same_v<T, std::int32_t> ||
    std::is_same_v<T, float> || std::is_same_v<T, bool> || std::is_same_v<T, std::uint64_t> ||
    std::is_same_v<T, std::int64_t> || std::is_same_v<T, double>;

template <class T>
constexpr GgufType gguf_type_of() noexcept {
  if constexpr (std::is_same_v<T, std::uint8_t>) return GgufType::U8;
  else if constexpr (std::is_same_v<T, std::int8_t>) return GgufType::I8;
  else if constexpr (std::is_same_v<T, std::uint16_t>) return GgufType::U16;
  else if constexpr (std::is_same_v<T, std::int16_t>) return GgufType::I16;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return GgufType::U32;
  else if constexpr (std::is_same_v<T, std::int32_t>) return GgufType::I32;
  else if constexpr (std::is_same_v<T, float>) return GgufType::F32;
  else if constexpr (std::is_same_v<T, bool>) return GgufType::Bool;
  else if constexpr (std::is_same_v<T, std::string>) return GgufType::String;
  else if constexpr (std::is_same_v<T, GgufArray>) return GgufType::Array;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return GgufType::U64;
  else if constexpr (std::is_same_v<T, std::int64_t>) return GgufType::I64;
  else {
    static_assert(std::is_same_v<T, double>, "not a GGUF value type");
    return GgufType::F64;
  }
}
}  // namespace gguf_detail

/// The C++ types that map one-to-one onto GGUF value types: the eleven scalars (uint8_t ..
/// double, bool), std::string and GgufArray.
template <class T>
concept GgufValueType = gguf_detail::is_gguf_scalar_v<T> || std::is_same_v<T, std::string> || std::is_same_v<T, GgufArray>;

/// One metadata value with its GGUF type tag.
class GgufValue {
 public:
  /// Alternatives in GgufType order, so index() == the tag's numeric value.
  using Storage = std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t, std::int32_t, float,
                               bool, std::string, GgufArray, std::uint64_t, std::int64_t, double>;

  GgufValue() = default;  // uint8 0
  /// From exactly one of the GGUF scalar types (no implicit conversions: 5 is int32, 5u uint32).
  template <class T>
    requires gguf_detail::is_gguf_scalar_v<T>
  GgufValue(T v) : v_(std::in_place_type<T>, v) {}  // NOLINT: implicit by design
  GgufValue(std::string s) : v_(std::in_place_type<std::string>, std::move(s)) {}
  GgufValue(std::string_view s) : v_(std::in_place_type<std::string>, s) {}
  GgufValue(const char* s) : v_(std::in_place_type<std::string>, s) {}
  GgufValue(GgufArray a) : v_(std::in_place_type<GgufArray>, std::move(a)) {}

  GgufType type() const noexcept { return static_cast<GgufType>(v_.index()); }

  template <GgufValueType T>
  bool is() const noexcept {
    return std::holds_alternative<T>(v_);
  }
  /// Pointer to the value if it holds a T, else nullptr.
  template <GgufValueType T>
  const T* get_if() const noexcept {
    return std::get_if<T>(&v_);
  }
  /// The value as T; throws InvalidArgument naming both types if it holds another type.
  template <GgufValueType T>
  const T& get() const {
    if (const T* p = std::get_if<T>(&v_)) return *p;
    throw InvalidArgument(tinfer::detail::str_cat("GGUF value has type ", gguf_type_name(type()), ", expected ",
                                          gguf_type_name(gguf_detail::gguf_type_of<T>())));
  }

  const Storage& storage() const noexcept { return v_; }

  bool operator==(const GgufValue&) const = default;

 private:
  Storage v_;
};

template <class T>
GgufArray GgufArray::of(const std::vector<T>& values) {
  static_assert(GgufValueType<T> && !std::is_same_v<T, GgufArray>, "use a GgufArray with type Array for nesting");
  GgufArray a;
  a.type = gguf_detail::gguf_type_of<T>();
  a.items.reserve(values.size());
  for (const auto& v : values) a.items.emplace_back(T(v));
  return a;
}

}  // namespace tinfer::io
