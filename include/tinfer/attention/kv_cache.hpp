// tinfer/attention/kv_cache.hpp: the key/value cache of one sequence.
//
// Layout (float32, row-major):
//   keys   (n_layers, capacity, n_kv_heads, head_dim)
//   values (n_layers, capacity, n_kv_heads, head_dim)
// so the keys of one layer for positions [0, n) are one contiguous block, which is what decode
// attention streams. Memory: 2 * n_layers * capacity * n_kv_heads * head_dim * 4 bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/error.hpp"

namespace tinfer {

/// Element type of the keys or the values in a KV cache (llama.cpp's -ctk / -ctv names).
enum class KVCacheType { F32, F16, Q8_0 };

inline std::string_view kv_cache_type_name(KVCacheType t) noexcept {
  switch (t) {
    case KVCacheType::F32: return "f32";
    case KVCacheType::F16: return "f16";
    case KVCacheType::Q8_0: return "q8_0";
  }
  return "?";
}

/// "f32", "f16" or "q8_0" (as llama.cpp spells them); anything else: InvalidArgument.
inline KVCacheType parse_kv_cache_type(std::string_view name) {
  if (name == "f32") return KVCacheType::F32;
  if (name == "f16") return KVCacheType::F16;
  if (name == "q8_0") return KVCacheType::Q8_0;
  throw InvalidArgument(detail::str_cat("unknown KV cache type '", std::string(name), "' (use f32, f16 or q8_0)"));
}

class KVCache {
 public:
  KVCache() = default;
  /// Throws InvalidArgument for non-positive sizes and OutOfMemory when the cache cannot be
  /// allocated (the message gives the size asked for).
  KVCache(int n_layers, int capacity, int n_kv_heads, int head_dim, KVCacheType type_k = KVCacheType::F32,
          KVCacheType type_v = KVCacheType::F32)
      : n_layers_(n_layers), capacity_(capacity), n_kv_heads_(n_kv_heads), head_dim_(head_dim) {
    if (type_k != KVCacheType::F32 || type_v != KVCacheType::F32) {
      throw UnsupportedError(detail::str_cat("KV cache type ", kv_cache_type_name(type_k), "/", kv_cache_type_name(type_v),
                                             " is not implemented yet (use f32)"));
    }
    if (n_layers <= 0 || capacity <= 0 || n_kv_heads <= 0 || head_dim <= 0) {
      throw InvalidArgument(detail::str_cat("KV cache sizes must be positive (layers ", n_layers, ", capacity ", capacity,
                                            ", kv heads ", n_kv_heads, ", head dim ", head_dim, ")"));
    }
    const std::uint64_t per = static_cast<std::uint64_t>(n_layers) * static_cast<std::uint64_t>(capacity) *
                              static_cast<std::uint64_t>(kv_dim());
    // Keys and values together, checked before either is allocated and zeroed.
    check_memory_available(2 * per * sizeof(float), detail::str_cat("the KV cache for a context of ", capacity, " positions"),
                           "use a smaller context (-c)");
    keys_ = AlignedBuffer<float>(per);
    values_ = AlignedBuffer<float>(per);
  }

  int n_layers() const noexcept { return n_layers_; }
  /// Positions the cache can hold.
  int capacity() const noexcept { return capacity_; }
  int n_kv_heads() const noexcept { return n_kv_heads_; }
  int head_dim() const noexcept { return head_dim_; }
  /// Floats per position and layer: n_kv_heads * head_dim.
  std::int64_t kv_dim() const noexcept { return static_cast<std::int64_t>(n_kv_heads_) * head_dim_; }

  /// The keys of `layer` at `pos` (kv_dim floats); positions of a layer are contiguous.
  float* key(int layer, int pos) noexcept { return keys_.data() + offset(layer, pos); }
  const float* key(int layer, int pos) const noexcept { return keys_.data() + offset(layer, pos); }
  float* value(int layer, int pos) noexcept { return values_.data() + offset(layer, pos); }
  const float* value(int layer, int pos) const noexcept { return values_.data() + offset(layer, pos); }

  std::uint64_t bytes() const noexcept { return 2 * keys_.size() * sizeof(float); }

 private:
  std::int64_t offset(int layer, int pos) const noexcept {
    return (static_cast<std::int64_t>(layer) * capacity_ + pos) * kv_dim();
  }

  int n_layers_ = 0, capacity_ = 0, n_kv_heads_ = 0, head_dim_ = 0;
  AlignedBuffer<float> keys_, values_;
};

}  // namespace tinfer
