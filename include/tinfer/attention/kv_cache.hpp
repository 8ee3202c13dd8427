// tinfer/attention/kv_cache.hpp: the key/value cache of one sequence.
//
// Layout. Keys and values are two byte arrays of shape (n_layers, capacity, row), where a row
// holds the kv_dim = n_kv_heads * head_dim elements of one position (heads concatenated) in the
// cache's element type:
//   F32   kv_dim floats                                   (4 bytes per element)
//   F16   kv_dim IEEE half floats                         (2 bytes per element)
//   Q8_0  kv_dim / 32 blocks of {f16 scale d, 32 int8 q}  (34 bytes per 32 elements), value = d*q,
//         quantized as ggml's reference quantize_row_q8_0 does (d = max|x| / 127, q = round(x/d)).
//         Blocks are 32 consecutive elements of the row: inside one head when head_dim is a
//         multiple of 32, spanning 32 / head_dim heads when the heads are smaller.
// So the keys of one layer are `capacity` rows of `row_bytes` each, which attention streams
// (attention_kernels.hpp reads every type directly, never dequantizing the whole cache).
//
// Positions map to rows: row = pos in a linear cache, row = pos % capacity in a ring (used for
// sliding-window attention, where only the last `window` positions are ever read).
//
// Bookkeeping: n_past() is the number of positions [0, n_past) the cache holds for its sequence;
// forward passes set it, truncate() lowers it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/float16.hpp"

namespace tinfer {

/// Element type of the keys or the values in a KV cache (llama.cpp's -ctk / -ctv names).
enum class KVCacheType { F32 = 0, F16 = 1, Q8_0 = 2 };

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

namespace kv {

inline constexpr int kQ8Block = 32;     // elements per Q8_0 block
inline constexpr int kQ8BlockBytes = 34;  // f16 scale + 32 int8

/// Bytes of one row of n elements of type t (n a multiple of 32 for Q8_0).
inline std::int64_t row_bytes(KVCacheType t, std::int64_t n) noexcept {
  switch (t) {
    case KVCacheType::F32: return n * 4;
    case KVCacheType::F16: return n * 2;
    case KVCacheType::Q8_0: return n / kQ8Block * kQ8BlockBytes;
  }
  return 0;
}

/// Converts n floats to a row of type t.
inline void encode_row(KVCacheType t, const float* x, std::int64_t n, std::uint8_t* dst) noexcept {
  switch (t) {
    case KVCacheType::F32: std::memcpy(dst, x, static_cast<std::size_t>(n) * 4); return;
    case KVCacheType::F16:
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint16_t h = f16::from_float(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case KVCacheType::Q8_0:
      for (std::int64_t b = 0; b < n / kQ8Block; ++b) {
        const float* xb = x + b * kQ8Block;
        std::uint8_t* blk = dst + b * kQ8BlockBytes;
        float amax = 0.0f;
        for (int i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const std::uint16_t h = f16::from_float(d);
        std::memcpy(blk, &h, 2);
        for (int i = 0; i < kQ8Block; ++i) {
          blk[2 + i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::lround(xb[i] * id)));
        }
      }
      return;
  }
}

/// Converts a row of type t back to n floats.
inline void decode_row(KVCacheType t, const std::uint8_t* src, std::int64_t n, float* y) noexcept {
  switch (t) {
    case KVCacheType::F32: std::memcpy(y, src, static_cast<std::size_t>(n) * 4); return;
    case KVCacheType::F16:
      for (std::int64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        y[i] = f16::to_float(h);
      }
      return;
    case KVCacheType::Q8_0:
      for (std::int64_t b = 0; b < n / kQ8Block; ++b) {
        const std::uint8_t* blk = src + b * kQ8BlockBytes;
        std::uint16_t h;
        std::memcpy(&h, blk, 2);
        const float d = f16::to_float(h);
        for (int i = 0; i < kQ8Block; ++i) y[b * kQ8Block + i] = d * static_cast<float>(static_cast<std::int8_t>(blk[2 + i]));
      }
      return;
  }
}

}  // namespace kv

class KVCache {
 public:
  KVCache() = default;
  /// A cache of `capacity` rows per layer. `ring`: position p lives in row p % capacity.
  /// Throws InvalidArgument for non-positive sizes, UnsupportedError when Q8_0 is asked for a
  /// row (n_kv_heads * head_dim) that is not a multiple of 32, and OutOfMemory when the cache
  /// cannot be allocated (the message gives the size asked for).
  KVCache(int n_layers, int capacity, int n_kv_heads, int head_dim, KVCacheType type_k = KVCacheType::F32,
          KVCacheType type_v = KVCacheType::F32, bool ring = false)
      : n_layers_(n_layers),
        capacity_(capacity),
        n_kv_heads_(n_kv_heads),
        head_dim_(head_dim),
        type_k_(type_k),
        type_v_(type_v),
        ring_(ring) {
    if (n_layers <= 0 || capacity <= 0 || n_kv_heads <= 0 || head_dim <= 0) {
      throw InvalidArgument(detail::str_cat("KV cache sizes must be positive (layers ", n_layers, ", capacity ", capacity,
                                            ", kv heads ", n_kv_heads, ", head dim ", head_dim, ")"));
    }
    for (KVCacheType t : {type_k, type_v}) {
      if (t == KVCacheType::Q8_0 && kv_dim() % kv::kQ8Block != 0) {
        throw UnsupportedError(detail::str_cat("KV cache type q8_0 needs rows of a multiple of 32 elements; this model's are ",
                                               kv_dim(), " (", n_kv_heads, " kv heads x ", head_dim, "): use f16 or f32"));
      }
    }
    k_row_ = kv::row_bytes(type_k, kv_dim());
    v_row_ = kv::row_bytes(type_v, kv_dim());
    const auto rows = static_cast<std::uint64_t>(n_layers) * static_cast<std::uint64_t>(capacity);
    // Keys and values together, checked before either is allocated and zeroed.
    check_memory_available(rows * (static_cast<std::uint64_t>(k_row_) + static_cast<std::uint64_t>(v_row_)),
                           detail::str_cat("the KV cache for a context of ", capacity, " positions"), "use a smaller context (-c)");
    keys_ = AlignedBuffer<std::uint8_t>(rows * static_cast<std::uint64_t>(k_row_));
    values_ = AlignedBuffer<std::uint8_t>(rows * static_cast<std::uint64_t>(v_row_));
  }

  int n_layers() const noexcept { return n_layers_; }
  /// Rows per layer: the positions a linear cache can hold, the ring length of a ring.
  int capacity() const noexcept { return capacity_; }
  int n_kv_heads() const noexcept { return n_kv_heads_; }
  int head_dim() const noexcept { return head_dim_; }
  KVCacheType type_k() const noexcept { return type_k_; }
  KVCacheType type_v() const noexcept { return type_v_; }
  bool ring() const noexcept { return ring_; }
  /// Elements per position and layer: n_kv_heads * head_dim.
  std::int64_t kv_dim() const noexcept { return static_cast<std::int64_t>(n_kv_heads_) * head_dim_; }
  /// Bytes of one position's keys / values in one layer.
  std::int64_t key_row_bytes() const noexcept { return k_row_; }
  std::int64_t value_row_bytes() const noexcept { return v_row_; }
  /// Bytes one position costs over all layers, keys and values.
  std::int64_t bytes_per_token() const noexcept { return static_cast<std::int64_t>(n_layers_) * (k_row_ + v_row_); }
  std::uint64_t bytes() const noexcept { return keys_.size() + values_.size(); }

  /// The row of position `pos`.
  int row_of(int pos) const noexcept { return ring_ ? pos % capacity_ : pos; }
  /// The oldest position whose row still holds it, given n_past (0 for a linear cache).
  int oldest_position() const noexcept { return ring_ ? std::max(0, n_past_ - capacity_) : 0; }

  /// Whether a query at position `pos`, attending to [pos - window + 1, pos] (window 0: all of
  /// [0, pos]), finds the positions before `first_new` (the first position a pass writes anew)
  /// still in the cache. Always true for a linear cache; a ring fails once those rows were
  /// overwritten. An empty range (pos 0, a restart) is always held.
  bool holds_window_before(int pos, int first_new, int window) const noexcept {
    if (!ring_) return true;
    const int lo = window > 0 ? std::max(0, pos - window + 1) : 0;
    const int hi = std::min(pos, first_new);  // needed from the cache: [lo, hi)
    return lo >= hi || lo >= oldest_position();
  }

  /// Raw rows: the keys / values of `layer` at row `row` (row_of(pos) for a position).
  std::uint8_t* key_row(int layer, int row) noexcept { return keys_.data() + offset(layer, row) * k_row_; }
  const std::uint8_t* key_row(int layer, int row) const noexcept { return keys_.data() + offset(layer, row) * k_row_; }
  std::uint8_t* value_row(int layer, int row) noexcept { return values_.data() + offset(layer, row) * v_row_; }
  const std::uint8_t* value_row(int layer, int row) const noexcept { return values_.data() + offset(layer, row) * v_row_; }

  /// Stores kv_dim floats as the keys / values of `layer` at `pos` (converted to the cache type).
  void store_key(int layer, int pos, const float* k) noexcept { kv::encode_row(type_k_, k, kv_dim(), key_row(layer, row_of(pos))); }
  void store_value(int layer, int pos, const float* v) noexcept {
    kv::encode_row(type_v_, v, kv_dim(), value_row(layer, row_of(pos)));
  }
  /// Reads the keys / values of `layer` at `pos` back as kv_dim floats.
  void load_key(int layer, int pos, float* k) const noexcept { kv::decode_row(type_k_, key_row(layer, row_of(pos)), kv_dim(), k); }
  void load_value(int layer, int pos, float* v) const noexcept {
    kv::decode_row(type_v_, value_row(layer, row_of(pos)), kv_dim(), v);
  }

  /// Positions [0, n_past) hold this sequence's keys and values.
  int n_past() const noexcept { return n_past_; }
  void set_n_past(int n) noexcept { n_past_ = n; }
  /// Forgets positions [n, n_past) (no data moves; the next token goes to position n).
  /// InvalidArgument when n is negative, or when a ring no longer holds the window before n.
  void truncate(int n, int window = 0) {
    if (n < 0) throw InvalidArgument(detail::str_cat("cannot truncate the KV cache to a negative length ", n));
    if (n >= n_past_) return;
    if (!holds_window_before(n, n, window)) {
      throw InvalidArgument(detail::str_cat("cannot truncate the sliding-window cache to ", n, " positions: it only holds positions ",
                                            oldest_position(), "..", n_past_ - 1, " and the window before position ", n,
                                            " was overwritten"));
    }
    n_past_ = n;
  }

  /// Makes this cache hold positions [0, n) of `src` (a fork of its prefix). The caches must have
  /// the same shape and types (InvalidArgument otherwise); n must be at most src.n_past().
  void copy_prefix_from(const KVCache& src, int n) {
    if (src.n_layers_ != n_layers_ || src.n_kv_heads_ != n_kv_heads_ || src.head_dim_ != head_dim_ || src.type_k_ != type_k_ ||
        src.type_v_ != type_v_ || src.ring_ != ring_ || (ring_ && src.capacity_ != capacity_)) {
      throw InvalidArgument("copy_prefix_from(): the sessions' caches differ in shape, element types or ring layout");
    }
    if (n < 0 || n > src.n_past_) {
      throw InvalidArgument(detail::str_cat("copy_prefix_from(): ", n, " positions asked, the source holds ", src.n_past_));
    }
    if (!ring_ && n > capacity_) {
      throw InvalidArgument(detail::str_cat("copy_prefix_from(): ", n, " positions do not fit in a context of ", capacity_));
    }
    if (ring_ && n < src.n_past_) {
      throw InvalidArgument("copy_prefix_from(): a sliding-window (ring) cache can only be copied whole (n = source n_past)");
    }
    const int rows = ring_ ? capacity_ : n;
    for (int l = 0; l < n_layers_; ++l) {
      if (rows == 0) break;
      std::memcpy(key_row(l, 0), src.key_row(l, 0), static_cast<std::size_t>(rows * k_row_));
      std::memcpy(value_row(l, 0), src.value_row(l, 0), static_cast<std::size_t>(rows * v_row_));
    }
    n_past_ = n;
  }

  /// Context shift: drops positions [n_keep, n_keep + n_discard) and moves positions
  /// [n_keep + n_discard, n_past) down by n_discard; n_past shrinks by n_discard.
  /// `rekey(layer, key_row_floats, new_pos)` is called on every moved key (as kv_dim floats, then
  /// stored back in the cache type) so a RoPE model can re-rotate it by -n_discard; pass an
  /// empty function to move keys unchanged. A ring cache cannot shift (UnsupportedError).
  void shift(int n_keep, int n_discard, const std::function<void(int layer, float* key, int new_pos)>& rekey) {
    if (ring_) throw UnsupportedError("context shift is not supported on a sliding-window (ring) KV cache");
    if (n_keep < 0 || n_discard <= 0 || n_keep + n_discard > n_past_) {
      throw InvalidArgument(detail::str_cat("context shift: keep ", n_keep, " and discard ", n_discard, " do not fit the ", n_past_,
                                            " cached positions (need keep >= 0, discard > 0, keep + discard <= ", n_past_, ")"));
    }
    std::vector<float> tmp(static_cast<std::size_t>(kv_dim()));
    for (int l = 0; l < n_layers_; ++l) {
      for (int p = n_keep + n_discard; p < n_past_; ++p) {
        const int q = p - n_discard;
        if (rekey) {
          kv::decode_row(type_k_, key_row(l, p), kv_dim(), tmp.data());
          rekey(l, tmp.data(), q);
          kv::encode_row(type_k_, tmp.data(), kv_dim(), key_row(l, q));
        } else {
          std::memmove(key_row(l, q), key_row(l, p), static_cast<std::size_t>(k_row_));
        }
        std::memmove(value_row(l, q), value_row(l, p), static_cast<std::size_t>(v_row_));
      }
    }
    n_past_ -= n_discard;
  }

 private:
  std::int64_t offset(int layer, int row) const noexcept { return static_cast<std::int64_t>(layer) * capacity_ + row; }

  int n_layers_ = 0, capacity_ = 0, n_kv_heads_ = 0, head_dim_ = 0;
  KVCacheType type_k_ = KVCacheType::F32, type_v_ = KVCacheType::F32;
  bool ring_ = false;
  std::int64_t k_row_ = 0, v_row_ = 0;
  int n_past_ = 0;
  AlignedBuffer<std::uint8_t> keys_, values_;
};

}  // namespace tinfer
