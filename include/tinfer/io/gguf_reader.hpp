// tinfer/io/gguf_reader.hpp: reads GGUF v2/v3 files (llama.cpp's model format).
//
// Layout (all little-endian): magic "GGUF", uint32 version, uint64 tensor count, uint64 KV
// count; the KV pairs (string key, uint32 type, value); the tensor infos (string name, uint32
// n_dims, uint64 dims[n_dims] innermost first, uint32 ggml type, uint64 offset relative to the
// data section); padding to `general.alignment` (default 32); the data section. Strings are a
// uint64 length followed by that many bytes (no terminator).
//
// The file is memory-mapped and kept open by the GgufFile, so tensor data is used in place.
// Every field is validated while parsing: a malformed file gives a FormatError naming the file,
// the byte offset and the field; an unknown tensor type or version gives an UnsupportedError.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/mapped_file.hpp"
#include "tinfer/io/byte_reader.hpp"
#include "tinfer/io/gguf_value.hpp"

namespace tinfer::io {

inline constexpr std::uint32_t kGgufMagic = 0x46554747u;  // "GGUF" read as a little-endian uint32
inline constexpr std::uint32_t kGgufDefaultAlignment = 32;
inline constexpr std::uint32_t kGgufMaxDims = 4;  // ggml's GGML_MAX_DIMS

/// The ggml name of tensor type id `raw`: tinfer's own types, plus the ggml types tinfer does
/// not implement so an UnsupportedError can say what the file needs (values from ggml.h; gaps
/// are types ggml removed). Empty for an id ggml does not define.
constexpr std::string_view ggml_type_name(std::uint32_t raw) noexcept {
  if (auto info = dtype_info(static_cast<DType>(raw))) return info->name;
  switch (raw) {
    case 16: return "IQ2_XXS";
    case 17: return "IQ2_XS";
    case 18: return "IQ3_XXS";
    case 19: return "IQ1_S";
    case 20: return "IQ4_NL";
    case 21: return "IQ3_S";
    case 22: return "IQ2_S";
    case 23: return "IQ4_XS";
    case 29: return "IQ1_M";
    case 34: return "TQ1_0";
    case 35: return "TQ2_0";
    case 39: return "MXFP4";
    case 40: return "NVFP4";
    default: return "";
  }
}

/// One tensor's description from the file's tensor-info table.
struct GgufTensorInfo {
  std::string name;
  /// Dimensions, innermost first: dims[0] is the row length (ggml's ne[0]); 1 to 4 entries,
  /// each >= 1. A 2-D weight of `rows` x `cols` is stored as dims = {cols, rows}.
  std::vector<std::int64_t> dims;
  DType type = DType::F32;
  std::uint64_t offset = 0;       // from the start of the data section; a multiple of the alignment
  std::uint64_t n_elements = 0;   // product of dims
  std::uint64_t n_bytes = 0;      // n_elements / block_size * block_bytes
  std::uint64_t info_offset = 0;  // file offset of this entry in the tensor-info table (for errors)

  /// Elements per row (dims[0]).
  std::int64_t row_length() const noexcept { return dims.empty() ? 0 : dims[0]; }
  /// Number of rows: product of dims[1..].
  std::int64_t n_rows() const noexcept {
    std::int64_t r = 1;
    for (std::size_t i = 1; i < dims.size(); ++i) r *= dims[i];
    return r;
  }
  /// Bytes per row.
  std::uint64_t row_bytes() const noexcept { return n_rows() > 0 ? n_bytes / static_cast<std::uint64_t>(n_rows()) : 0; }
};

/// A parsed, memory-mapped GGUF file. Immutable after construction; tensor_data() views stay
/// valid while the GgufFile lives (moving it keeps them valid: the mapping moves).
class GgufFile {
 public:
  /// Maps and parses `path`. Throws IoError (cannot open), FormatError (malformed) or
  /// UnsupportedError (version 1, big-endian, or a tensor type tinfer lacks).
  explicit GgufFile(std::string path) : file_(std::move(path)) { parse(file_.bytes(), file_.path()); }
  static GgufFile open(std::string path) { return GgufFile(std::move(path)); }

  /// Whether rewrite_tensor_bytes() may be used: the file was read into memory (LoadMode::Read).
  bool can_rewrite() const noexcept { return file_.owns_bytes(); }
  /// Calls fn(std::byte* base) with the file's bytes writable at `base` (tensor_data() views
  /// point into them), for a model that repacks its weights in place and is the only user of
  /// this file. Throws InvalidArgument unless can_rewrite().
  template <class F>
  void rewrite_tensor_bytes(F&& fn) const {
    file_.rewrite(std::forward<F>(fn));
  }

  /// Parses a GGUF image held in memory (e.g. built by GgufWriter::to_bytes()); `name` stands
  /// for the file name in error messages.
  static GgufFile from_bytes(std::vector<std::byte> bytes, std::string name = "<memory>") {
    GgufFile f;
    f.buffer_ = std::move(bytes);
    f.parse(f.buffer_, std::move(name));
    return f;
  }

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;

  /// The file name used in messages.
  const std::string& path() const noexcept { return name_; }
  std::uint32_t version() const noexcept { return version_; }
  std::uint32_t alignment() const noexcept { return alignment_; }
  /// File offset of the data section (aligned).
  std::uint64_t data_offset() const noexcept { return data_offset_; }
  /// The whole file.
  std::span<const std::byte> bytes() const noexcept { return bytes_; }

  // ---- metadata ----

  /// Keys and values in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const noexcept { return kvs_; }
  /// The value of `key`, or nullptr if absent.
  const GgufValue* find(std::string_view key) const {
    auto it = kv_index_.find(std::string(key));
    return it == kv_index_.end() ? nullptr : &kvs_[it->second].second;
  }
  bool contains(std::string_view key) const { return find(key) != nullptr; }

  /// The value of `key` as exactly type T. Throws FormatError naming the key if it is missing
  /// or has another type (no conversions: see get_int/get_float for lenient access).
  template <GgufValueType T>
  const T& get(std::string_view key) const {
    const GgufValue& v = require(key);
    if (const T* p = v.get_if<T>()) return *p;
    throw FormatError(name_, tinfer::detail::str_cat("metadata key '", key, "' has type ", gguf_type_name(v.type()),
                                             ", expected ", gguf_type_name(gguf_detail::gguf_type_of<T>())));
  }
  std::uint8_t get_u8(std::string_view key) const { return get<std::uint8_t>(key); }
  std::int8_t get_i8(std::string_view key) const { return get<std::int8_t>(key); }
  std::uint16_t get_u16(std::string_view key) const { return get<std::uint16_t>(key); }
  std::int16_t get_i16(std::string_view key) const { return get<std::int16_t>(key); }
  std::uint32_t get_u32(std::string_view key) const { return get<std::uint32_t>(key); }
  std::int32_t get_i32(std::string_view key) const { return get<std::int32_t>(key); }
  std::uint64_t get_u64(std::string_view key) const { return get<std::uint64_t>(key); }
  std::int64_t get_i64(std::string_view key) const { return get<std::int64_t>(key); }
  float get_f32(std::string_view key) const { return get<float>(key); }
  double get_f64(std::string_view key) const { return get<double>(key); }
  bool get_bool(std::string_view key) const { return get<bool>(key); }
  const std::string& get_string(std::string_view key) const { return get<std::string>(key); }
  const GgufArray& get_array(std::string_view key) const { return get<GgufArray>(key); }

  /// Any integer type, as int64 (converters disagree on int32 vs uint32 for sizes). Throws
  /// FormatError if missing, not an integer, or a uint64 above INT64_MAX.
  std::int64_t get_int(std::string_view key) const {
    const GgufValue& v = require(key);
    switch (v.type()) {
      case GgufType::U8: return v.get<std::uint8_t>();
      case GgufType::I8: return v.get<std::int8_t>();
      case GgufType::U16: return v.get<std::uint16_t>();
      case GgufType::I16: return v.get<std::int16_t>();
      case GgufType::U32: return v.get<std::uint32_t>();
      case GgufType::I32: return v.get<std::int32_t>();
      case GgufType::I64: return v.get<std::int64_t>();
      case GgufType::U64: {
        const std::uint64_t x = v.get<std::uint64_t>();
        if (x > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          throw FormatError(name_, tinfer::detail::str_cat("metadata key '", key, "' value ", x, " is too large"));
        return static_cast<std::int64_t>(x);
      }
      default:
        throw FormatError(name_, tinfer::detail::str_cat("metadata key '", key, "' has type ", gguf_type_name(v.type()),
                                                         ", expected an integer"));
    }
  }
  /// float32 or float64, as double.
  double get_float(std::string_view key) const {
    const GgufValue& v = require(key);
    if (const float* f = v.get_if<float>()) return *f;
    if (const double* d = v.get_if<double>()) return *d;
    throw FormatError(name_, tinfer::detail::str_cat("metadata key '", key, "' has type ", gguf_type_name(v.type()),
                                             ", expected float32 or float64"));
  }
  /// The items of array `key`, whose elements must be exactly T (e.g. std::string, float).
  template <GgufValueType T>
  std::vector<T> get_array_of(std::string_view key) const {
    const GgufArray& a = get_array(key);
    if (a.type != gguf_detail::gguf_type_of<T>()) {
      throw FormatError(name_, tinfer::detail::str_cat("metadata key '", key, "' is an array of ", gguf_type_name(a.type),
                                               ", expected an array of ", gguf_type_name(gguf_detail::gguf_type_of<T>())));
    }
    std::vector<T> out;
    out.reserve(a.items.size());
    for (const auto& item : a.items) out.push_back(item.get<T>());
    return out;
  }

  // ---- tensors ----

  /// Tensor infos in file order.
  const std::vector<GgufTensorInfo>& tensors() const noexcept { return tensors_; }
  /// The tensor named `name`, or nullptr.
  const GgufTensorInfo* find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(std::string(name));
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }
  /// The tensor named `name`; throws FormatError naming it if absent.
  const GgufTensorInfo& tensor(std::string_view name) const {
    if (const GgufTensorInfo* t = find_tensor(name)) return *t;
    throw FormatError(name_, tinfer::detail::str_cat("tensor '", name, "' is missing"));
  }
  /// The tensor's bytes inside the mapping (n_bytes long). Throws InvalidArgument if `info`
  /// does not describe a range of this file.
  std::span<const std::byte> tensor_data(const GgufTensorInfo& info) const {
    const std::uint64_t size = bytes_.size();
    if (data_offset_ > size || info.offset > size - data_offset_ || info.n_bytes > size - data_offset_ - info.offset) {
      throw InvalidArgument(tinfer::detail::str_cat(name_, ": tensor '", info.name, "' does not lie inside this file"));
    }
    return bytes_.subspan(static_cast<std::size_t>(data_offset_ + info.offset), static_cast<std::size_t>(info.n_bytes));
  }
  std::span<const std::byte> tensor_data(std::string_view name) const { return tensor_data(tensor(name)); }

 private:
  GgufFile() = default;

  const GgufValue& require(std::string_view key) const {
    if (const GgufValue* v = find(key)) return *v;
    throw FormatError(name_, tinfer::detail::str_cat("metadata key '", key, "' is missing"));
  }

  // Nesting deeper than this is no real file and would risk the stack.
  static constexpr int kMaxArrayDepth = 16;

  static std::string read_gguf_string(ByteReader& r, std::string_view field) {
    const std::size_t at = r.offset();
    const std::uint64_t len = r.read<std::uint64_t>(field);
    if (len > r.remaining()) {
      throw FormatError(r.file(), at,
                        tinfer::detail::str_cat(field, ": string length ", len, " runs past the end of the file (",
                                                r.remaining(), " bytes left)"));
    }
    return r.read_string(static_cast<std::size_t>(len), field);
  }

  static GgufType read_type_tag(ByteReader& r, std::string_view field) {
    const std::size_t at = r.offset();
    const auto raw = r.read<std::uint32_t>(field);
    if (!gguf_type_valid(raw)) {
      throw FormatError(r.file(), at, tinfer::detail::str_cat(field, ": unknown metadata value type ", raw));
    }
    return static_cast<GgufType>(raw);
  }

  // Smallest encoding of one value of type t, for rejecting impossible counts before allocating.
  static std::uint64_t min_encoded_size(GgufType t) {
    if (t == GgufType::String) return 8;
    if (t == GgufType::Array) return 4 + 8;
    return gguf_scalar_size(t);
  }

  static GgufValue read_value(ByteReader& r, GgufType t, const std::string& key, int depth) {
    switch (t) {
      case GgufType::U8: return r.read<std::uint8_t>(key);
      case GgufType::I8: return r.read<std::int8_t>(key);
      case GgufType::U16: return r.read<std::uint16_t>(key);
      case GgufType::I16: return r.read<std::int16_t>(key);
      case GgufType::U32: return r.read<std::uint32_t>(key);
      case GgufType::I32: return r.read<std::int32_t>(key);
      case GgufType::F32: return r.read<float>(key);
      case GgufType::U64: return r.read<std::uint64_t>(key);
      case GgufType::I64: return r.read<std::int64_t>(key);
      case GgufType::F64: return r.read<double>(key);
      case GgufType::Bool: {
        const std::size_t at = r.offset();
        const auto b = r.read<std::uint8_t>(key);
        if (b > 1) throw FormatError(r.file(), at, tinfer::detail::str_cat(key, ": bool value is ", int(b), ", expected 0 or 1"));
        return b != 0;
      }
      case GgufType::String: return read_gguf_string(r, key);
      case GgufType::Array: {
        if (depth >= kMaxArrayDepth) {
          r.fail(tinfer::detail::str_cat(key, ": arrays nested more than ", kMaxArrayDepth, " deep"));
        }
        GgufArray a;
        a.type = read_type_tag(r, key + " (array element type)");
        const std::size_t count_at = r.offset();
        const auto n = r.read<std::uint64_t>(key + " (array length)");
        if (n > r.remaining() / min_encoded_size(a.type)) {
          throw FormatError(r.file(), count_at,
                            tinfer::detail::str_cat(key, ": array of ", n, " ", gguf_type_name(a.type),
                                            " values cannot fit in the ", r.remaining(), " bytes left"));
        }
        a.items.reserve(static_cast<std::size_t>(n));
        for (std::uint64_t i = 0; i < n; ++i) a.items.push_back(read_value(r, a.type, key, depth + 1));
        return a;
      }
    }
    r.fail(tinfer::detail::str_cat(key, ": unknown metadata value type"));  // unreachable: tags validated
  }

  void parse(std::span<const std::byte> bytes, std::string name) {
    bytes_ = bytes;
    name_ = std::move(name);
    ByteReader r(bytes, name_);

    const auto magic = r.read<std::uint32_t>("magic");
    if (magic != kGgufMagic) {
      throw FormatError(name_, 0,
                        tinfer::detail::str_cat("bad magic 0x", std::hex, magic, std::dec,
                                        ": not a GGUF file (expected the bytes \"GGUF\")"));
    }
    version_ = r.read<std::uint32_t>("version");
    if (version_ == 1) {
      throw UnsupportedError(tinfer::detail::str_cat(name_, ": GGUF version 1 (32-bit counts, 2023) is not supported; "
                                                    "convert the model again with a current llama.cpp"));
    }
    if (version_ != 2 && version_ != 3) {
      // A big-endian writer stores the version byte-swapped (C++20 has no std::byteswap).
      const std::uint32_t swapped = (version_ >> 24) | ((version_ >> 8) & 0xff00u) | ((version_ << 8) & 0xff0000u) |
                                    (version_ << 24);
      if (swapped == 2 || swapped == 3) {
        throw UnsupportedError(tinfer::detail::str_cat(name_, ": big-endian GGUF file (version ", swapped,
                                               "); tinfer reads little-endian files only"));
      }
      throw UnsupportedError(tinfer::detail::str_cat(name_, ": GGUF version ", version_, " is not supported (only 2 and 3)"));
    }

    const std::size_t counts_at = r.offset();
    const auto n_tensors = r.read<std::uint64_t>("tensor count");
    const auto n_kv = r.read<std::uint64_t>("metadata key/value count");
    // Reject counts the file cannot hold before reserving memory for them: a KV pair takes at
    // least 13 bytes (key length, type, 1-byte value), a tensor info at least 24.
    if (n_kv > r.remaining() / 13) {
      throw FormatError(name_, counts_at + 8,
                        tinfer::detail::str_cat("metadata key/value count ", n_kv, " cannot fit in a file of ",
                                        bytes.size(), " bytes"));
    }
    if (n_tensors > (r.remaining() - n_kv * 13) / 24) {
      throw FormatError(name_, counts_at,
                        tinfer::detail::str_cat("tensor count ", n_tensors, " cannot fit in a file of ", bytes.size(), " bytes"));
    }

    kvs_.reserve(static_cast<std::size_t>(n_kv));
    for (std::uint64_t i = 0; i < n_kv; ++i) {
      const std::size_t at = r.offset();
      std::string key = read_gguf_string(r, tinfer::detail::str_cat("metadata key #", i));
      const GgufType t = read_type_tag(r, tinfer::detail::str_cat("type of metadata key '", key, "'"));
      GgufValue v = read_value(r, t, key, 0);
      if (!kv_index_.emplace(key, kvs_.size()).second) {
        throw FormatError(name_, at, tinfer::detail::str_cat("duplicate metadata key '", key, "'"));
      }
      kvs_.emplace_back(std::move(key), std::move(v));
    }

    alignment_ = kGgufDefaultAlignment;
    if (const GgufValue* a = find("general.alignment")) {
      const auto* u = a->get_if<std::uint32_t>();
      if (u == nullptr) {
        throw FormatError(name_, tinfer::detail::str_cat("metadata key 'general.alignment' has type ", gguf_type_name(a->type()),
                                                 ", expected uint32"));
      }
      if (*u == 0 || (*u & (*u - 1)) != 0) {
        throw FormatError(name_, tinfer::detail::str_cat("general.alignment is ", *u, ", expected a power of two"));
      }
      alignment_ = *u;
    }

    tensors_.reserve(static_cast<std::size_t>(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) tensors_.push_back(read_tensor_info(r, i));

    // The data section starts at the next multiple of the alignment after the infos.
    const std::uint64_t end_of_infos = r.offset();
    data_offset_ = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;  // no overflow: both < 2^33 * file
    if (tensors_.empty()) return;  // writers may omit the padding when there is no data
    if (data_offset_ > bytes.size()) {
      throw FormatError(name_, end_of_infos,
                        tinfer::detail::str_cat("data section would start at offset ", data_offset_, " (aligned to ",
                                        alignment_, "), past the end of the file (", bytes.size(), " bytes)"));
    }
    const std::uint64_t data_size = bytes.size() - data_offset_;
    for (const auto& t : tensors_) {
      if (t.offset % alignment_ != 0) {
        throw FormatError(name_, t.info_offset,
                          tinfer::detail::str_cat("tensor '", t.name, "': data offset ", t.offset,
                                          " is not a multiple of the alignment ", alignment_));
      }
      if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
        throw FormatError(name_, t.info_offset,
                          tinfer::detail::str_cat("tensor '", t.name, "': data [", t.offset, ", +", t.n_bytes,
                                          ") runs past the end of the data section (", data_size,
                                          " bytes; truncated file?)"));
      }
    }
    // Tensors must not overlap (a crafted file could alias them).
    std::vector<std::size_t> order(tensors_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    for (std::size_t k = 1; k < order.size(); ++k) {
      const auto& prev = tensors_[order[k - 1]];
      const auto& cur = tensors_[order[k]];
      if (prev.n_bytes > 0 && cur.offset < prev.offset + prev.n_bytes) {
        throw FormatError(name_, cur.info_offset,
                          tinfer::detail::str_cat("tensor '", cur.name, "' (offset ", cur.offset, ") overlaps tensor '",
                                          prev.name, "' (offset ", prev.offset, ", ", prev.n_bytes, " bytes)"));
      }
    }
  }

  GgufTensorInfo read_tensor_info(ByteReader& r, std::uint64_t index) {
    GgufTensorInfo t;
    t.info_offset = r.offset();
    t.name = read_gguf_string(r, tinfer::detail::str_cat("name of tensor #", index));
    const std::string what = tinfer::detail::str_cat("tensor '", t.name, "'");

    const std::size_t dims_at = r.offset();
    const auto n_dims = r.read<std::uint32_t>(what + " n_dims");
    if (n_dims == 0 || n_dims > kGgufMaxDims) {
      throw FormatError(name_, dims_at, tinfer::detail::str_cat(what, ": n_dims is ", n_dims, ", expected 1 to ", kGgufMaxDims));
    }
    std::uint64_t n_elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const std::size_t at = r.offset();
      const auto ne = r.read<std::uint64_t>(what + " dims");
      if (ne == 0 || ne > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        throw FormatError(name_, at, tinfer::detail::str_cat(what, ": dimension ", d, " is ", ne, ", expected >= 1"));
      }
      if (n_elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / ne) {
        throw FormatError(name_, at, tinfer::detail::str_cat(what, ": element count overflows at dimension ", d));
      }
      n_elements *= ne;
      t.dims.push_back(static_cast<std::int64_t>(ne));
    }
    t.n_elements = n_elements;

    const std::size_t type_at = r.offset();
    const auto raw_type = r.read<std::uint32_t>(what + " type");
    const auto info = dtype_info(static_cast<DType>(raw_type));
    if (!info) {
      const std::string_view known = ggml_type_name(raw_type);
      throw UnsupportedError(tinfer::detail::str_cat(
          name_, ": at byte offset ", type_at, ": ", what, " has tensor type ", raw_type,
          known.empty() ? std::string(", which is not a ggml type") : tinfer::detail::str_cat(" (", known, ")"),
          ", which tinfer does not support"));
    }
    t.type = static_cast<DType>(raw_type);
    if (static_cast<std::uint64_t>(t.dims[0]) % info->block_size != 0) {
      throw FormatError(name_, dims_at,
                        tinfer::detail::str_cat(what, ": row length ", t.dims[0], " is not a multiple of the ", info->name,
                                        " block size ", info->block_size));
    }
    const std::uint64_t n_blocks = n_elements / info->block_size;
    if (n_blocks > std::numeric_limits<std::uint64_t>::max() / info->block_bytes) {
      throw FormatError(name_, type_at, tinfer::detail::str_cat(what, ": byte size overflows"));
    }
    t.n_bytes = n_blocks * info->block_bytes;
    t.offset = r.read<std::uint64_t>(what + " offset");

    if (!tensor_index_.emplace(t.name, tensors_.size()).second) {
      throw FormatError(name_, t.info_offset, tinfer::detail::str_cat("duplicate tensor name '", t.name, "'"));
    }
    return t;
  }

  MappedFile file_;
  std::vector<std::byte> buffer_;  // backing store for from_bytes()
  std::span<const std::byte> bytes_;
  std::string name_;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = kGgufDefaultAlignment;
  std::uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kvs_;
  std::unordered_map<std::string, std::size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, std::size_t> tensor_index_;
};

}  // namespace tinfer::io
