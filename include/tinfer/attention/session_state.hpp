// tinfer/attention/session_state.hpp: saving a session's KV cache (and last logits) to a file and
// restoring it, for prompt caching across runs.
//
// File format, version 1 (little-endian):
//   offset 0   8 bytes   magic "TINFKVS\0"
//          8   u32       version (1)
//         12   u32       length of the architecture name, then its bytes ("llama", "gpt2")
//              i32 x 11  n_layers, n_kv_heads, head_dim, type_k, type_v (KVCacheType values),
//                        ring (0/1), capacity, window, n_past, first (first position stored),
//                        vocab (floats of logits stored; 0: none)
//              keys      for each layer, rows of positions [first, n_past) in the cache's row
//                        format (kv_cache.hpp), then the values likewise
//              logits    vocab floats
//              u64       FNV-1a hash of every byte before it
// Loading checks every header field against the session and throws FormatError naming the field
// (and its offset) on any mismatch, a truncated file or a wrong hash; the session is unchanged then.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/core/error.hpp"

namespace tinfer {

namespace kvstate {

inline constexpr char kMagic[8] = {'T', 'I', 'N', 'F', 'K', 'V', 'S', '\0'};
inline constexpr std::uint32_t kVersion = 1;

inline std::uint64_t fnv1a(const std::uint8_t* p, std::size_t n) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace kvstate

/// Writes `cache` (positions still held of [0, n_past)), the window it is used with and `logits`
/// (may be empty) to `path`. Throws IoError when the file cannot be written.
inline void save_session_state(const std::string& path, std::string_view arch, const KVCache& cache, int window,
                               std::span<const float> logits) {
  std::vector<std::uint8_t> buf;
  auto put = [&](const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    buf.insert(buf.end(), b, b + n);
  };
  auto put_i32 = [&](std::int32_t v) { put(&v, 4); };
  put(kvstate::kMagic, 8);
  const std::uint32_t version = kvstate::kVersion, alen = static_cast<std::uint32_t>(arch.size());
  put(&version, 4);
  put(&alen, 4);
  put(arch.data(), arch.size());
  const int first = cache.oldest_position();
  for (std::int32_t v : {cache.n_layers(), cache.n_kv_heads(), cache.head_dim(), static_cast<int>(cache.type_k()),
                         static_cast<int>(cache.type_v()), cache.ring() ? 1 : 0, cache.capacity(), window, cache.n_past(), first,
                         static_cast<int>(logits.size())}) {
    put_i32(v);
  }
  for (int l = 0; l < cache.n_layers(); ++l)
    for (int p = first; p < cache.n_past(); ++p) put(cache.key_row(l, cache.row_of(p)), static_cast<std::size_t>(cache.key_row_bytes()));
  for (int l = 0; l < cache.n_layers(); ++l)
    for (int p = first; p < cache.n_past(); ++p)
      put(cache.value_row(l, cache.row_of(p)), static_cast<std::size_t>(cache.value_row_bytes()));
  put(logits.data(), logits.size() * sizeof(float));
  const std::uint64_t h = kvstate::fnv1a(buf.data(), buf.size());
  put(&h, 8);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError(detail::str_cat(path, ": cannot create the session state file"));
  out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
  if (!out) throw IoError(detail::str_cat(path, ": cannot write the session state file (disk full?)"));
}

/// Restores a file written by save_session_state() into `cache` (which must have the same
/// architecture, shape, element types, window and enough capacity) and `logits` (resized to the
/// stored count). Throws IoError when the file cannot be read and FormatError naming the field
/// otherwise; on error `cache` and `logits` are unchanged.
inline void load_session_state(const std::string& path, std::string_view arch, KVCache& cache, int window,
                               std::vector<float>& logits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(detail::str_cat(path, ": cannot open the session state file"));
  std::vector<std::uint8_t> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t at = 0;
  auto need = [&](std::size_t n, const char* field) {
    if (buf.size() - at < n) {
      throw FormatError(path, at, detail::str_cat("the file ends inside field '", field, "' (", n, " bytes needed, ", buf.size() - at,
                                                  " left): it is truncated"));
    }
  };
  auto get_u32 = [&](const char* field) {
    need(4, field);
    std::uint32_t v;
    std::memcpy(&v, buf.data() + at, 4);
    at += 4;
    return v;
  };
  need(8, "magic");
  if (std::memcmp(buf.data(), kvstate::kMagic, 8) != 0) throw FormatError(path, 0, "field 'magic': not a tinfer session state file");
  at = 8;
  const std::uint32_t version = get_u32("version");
  if (version != kvstate::kVersion) {
    throw FormatError(path, 8, detail::str_cat("field 'version' is ", version, "; this build reads version ", kvstate::kVersion));
  }
  const std::uint32_t alen = get_u32("architecture");
  need(alen, "architecture");
  const std::string file_arch(reinterpret_cast<const char*>(buf.data() + at), alen);
  if (file_arch != arch) {
    throw FormatError(path, at, detail::str_cat("field 'architecture' is '", file_arch, "', this session's model is '", std::string(arch), "'"));
  }
  at += alen;
  auto expect = [&](const char* field, std::int64_t want) {
    const std::size_t where = at;
    const auto v = static_cast<std::int32_t>(get_u32(field));
    if (v != want) throw FormatError(path, where, detail::str_cat("field '", field, "' is ", v, ", this session's is ", want));
    return v;
  };
  expect("n_layers", cache.n_layers());
  expect("n_kv_heads", cache.n_kv_heads());
  expect("head_dim", cache.head_dim());
  expect("type_k", static_cast<int>(cache.type_k()));
  expect("type_v", static_cast<int>(cache.type_v()));
  expect("ring", cache.ring() ? 1 : 0);
  std::size_t where = at;
  const auto capacity = static_cast<std::int32_t>(get_u32("capacity"));
  if (cache.ring() && capacity != cache.capacity()) {
    throw FormatError(path, where, detail::str_cat("field 'capacity' is ", capacity, ", this session's ring is ", cache.capacity()));
  }
  expect("window", window);
  where = at;
  const auto n_past = static_cast<std::int32_t>(get_u32("n_past"));
  const auto first = static_cast<std::int32_t>(get_u32("first"));
  if (n_past < 0 || first < 0 || first > n_past || (!cache.ring() && (first != 0 || n_past > cache.capacity())) ||
      (cache.ring() && n_past - first > cache.capacity())) {
    throw FormatError(path, where, detail::str_cat("fields 'n_past' ", n_past, " and 'first' ", first,
                                                   " do not fit this session (capacity ", cache.capacity(), ")"));
  }
  where = at;
  const auto vocab = static_cast<std::int32_t>(get_u32("vocab"));
  if (vocab < 0 || vocab > (1 << 24)) throw FormatError(path, where, detail::str_cat("field 'vocab' is ", vocab));
  const std::size_t n_rows = static_cast<std::size_t>(n_past - first) * static_cast<std::size_t>(cache.n_layers());
  const std::size_t kbytes = n_rows * static_cast<std::size_t>(cache.key_row_bytes());
  const std::size_t vbytes = n_rows * static_cast<std::size_t>(cache.value_row_bytes());
  need(kbytes, "keys");
  const std::size_t kat = at;
  at += kbytes;
  need(vbytes, "values");
  const std::size_t vat = at;
  at += vbytes;
  need(static_cast<std::size_t>(vocab) * 4, "logits");
  const std::size_t lat = at;
  at += static_cast<std::size_t>(vocab) * 4;
  need(8, "hash");
  std::uint64_t h;
  std::memcpy(&h, buf.data() + at, 8);
  if (h != kvstate::fnv1a(buf.data(), at)) throw FormatError(path, at, "field 'hash' does not match the content: the file is corrupt");
  if (buf.size() != at + 8) throw FormatError(path, at + 8, "trailing bytes after field 'hash'");
  // Valid: copy in.
  const std::uint8_t* kp = buf.data() + kat;
  const std::uint8_t* vp = buf.data() + vat;
  for (int l = 0; l < cache.n_layers(); ++l)
    for (int p = first; p < n_past; ++p, kp += cache.key_row_bytes())
      std::memcpy(cache.key_row(l, cache.row_of(p)), kp, static_cast<std::size_t>(cache.key_row_bytes()));
  for (int l = 0; l < cache.n_layers(); ++l)
    for (int p = first; p < n_past; ++p, vp += cache.value_row_bytes())
      std::memcpy(cache.value_row(l, cache.row_of(p)), vp, static_cast<std::size_t>(cache.value_row_bytes()));
  logits.assign(static_cast<std::size_t>(vocab), 0.0f);
  if (vocab > 0) std::memcpy(logits.data(), buf.data() + lat, static_cast<std::size_t>(vocab) * 4);
  cache.set_n_past(n_past);
}

}  // namespace tinfer
