// tinfer/io/gguf_writer.hpp: writes GGUF v3 files (the layout GgufFile reads).
//
// Collect metadata and tensors, then write() or to_bytes(). Tensors are laid out in the order
// added, each at a multiple of the alignment (general.alignment if set as uint32, else 32),
// with zero padding, as llama.cpp's writer does; a file read by GgufFile and written back with
// the same keys and tensors in the same order is byte-identical.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/io/gguf_value.hpp"

namespace tinfer::io {

class GgufWriter {
 public:
  GgufWriter() = default;

  /// Adds metadata `key` = `value`. Throws InvalidArgument on a duplicate key, an array whose
  /// items do not all have its element type, or a general.alignment that is not a uint32 power
  /// of two.
  void set(std::string key, GgufValue value) {
    if (!keys_.insert(key).second) throw InvalidArgument(tinfer::detail::str_cat("GGUF writer: duplicate metadata key '", key, "'"));
    check_value(value, key);
    if (key == "general.alignment") {
      const auto* a = value.get_if<std::uint32_t>();
      if (a == nullptr || *a == 0 || (*a & (*a - 1)) != 0) {
        keys_.erase(key);
        throw InvalidArgument("GGUF writer: general.alignment must be a uint32 power of two");
      }
      alignment_ = *a;
    }
    kvs_.emplace_back(std::move(key), std::move(value));
  }

  /// Adds a tensor, copying `data`. `dims` is innermost first (dims[0] = row length), 1 to 4
  /// entries each >= 1; data must hold exactly the type's byte size for that shape. Throws
  /// InvalidArgument otherwise or on a duplicate name.
  void add_tensor(std::string name, std::vector<std::int64_t> dims, DType type, std::span<const std::byte> data) {
    Entry e = make_entry(std::move(name), std::move(dims), type, data.size());
    e.owned.assign(data.begin(), data.end());
    e.owns = true;
    push(std::move(e));
  }
  /// Like add_tensor but keeps only a view: `data` must stay valid until writing is done
  /// (saves a copy when tensors come from a mapped file).
  void add_tensor_view(std::string name, std::vector<std::int64_t> dims, DType type, std::span<const std::byte> data) {
    Entry e = make_entry(std::move(name), std::move(dims), type, data.size());
    e.view = data;
    push(std::move(e));
  }

  std::uint32_t alignment() const noexcept { return alignment_; }

  /// The whole file image.
  std::vector<std::byte> to_bytes() const {
    std::vector<std::byte> out;
    emit([&](const void* p, std::size_t n) {
      const auto* b = static_cast<const std::byte*>(p);
      out.insert(out.end(), b, b + n);
    });
    return out;
  }

  /// Writes the file to `path` (replacing it). Throws IoError if it cannot be written.
  void write(const std::filesystem::path& path) const {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw IoError(tinfer::detail::str_cat(path.string(), ": cannot open for writing"));
    emit([&](const void* p, std::size_t n) { f.write(static_cast<const char*>(p), static_cast<std::streamsize>(n)); });
    f.flush();
    if (!f) throw IoError(tinfer::detail::str_cat(path.string(), ": write failed (disk full?)"));
  }

 private:
  struct Entry {
    std::string name;
    std::vector<std::int64_t> dims;
    DType type = DType::F32;
    std::uint64_t n_bytes = 0;
    bool owns = false;
    std::vector<std::byte> owned;
    std::span<const std::byte> view;
    std::span<const std::byte> data() const { return owns ? std::span<const std::byte>(owned) : view; }
  };

  static void check_value(const GgufValue& v, const std::string& key) {
    const auto* a = v.get_if<GgufArray>();
    if (a == nullptr) return;
    for (const auto& item : a->items) {
      if (item.type() != a->type) {
        throw InvalidArgument(tinfer::detail::str_cat("GGUF writer: key '", key, "': array of ", gguf_type_name(a->type),
                                              " holds a ", gguf_type_name(item.type())));
      }
      check_value(item, key);
    }
  }

  Entry make_entry(std::string name, std::vector<std::int64_t> dims, DType type, std::size_t data_size) const {
    const auto info = dtype_info(type);
    if (!info) throw InvalidArgument(tinfer::detail::str_cat("GGUF writer: tensor '", name, "': unknown type ", static_cast<std::uint32_t>(type)));
    if (dims.empty() || dims.size() > kGgufMaxDims) {
      throw InvalidArgument(tinfer::detail::str_cat("GGUF writer: tensor '", name, "' has ", dims.size(), " dims, expected 1 to 4"));
    }
    std::uint64_t n = 1;
    for (const auto d : dims) {
      if (d < 1 || n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / static_cast<std::uint64_t>(d)) {
        throw InvalidArgument(tinfer::detail::str_cat("GGUF writer: tensor '", name, "' has a bad dimension ", d));
      }
      n *= static_cast<std::uint64_t>(d);
    }
    if (static_cast<std::uint64_t>(dims[0]) % info->block_size != 0) {
      throw InvalidArgument(tinfer::detail::str_cat("GGUF writer: tensor '", name, "': row length ", dims[0],
                                            " is not a multiple of the ", info->name, " block size ", info->block_size));
    }
    const std::uint64_t n_bytes = n / info->block_size * info->block_bytes;
    if (n_bytes != data_size) {
      throw InvalidArgument(tinfer::detail::str_cat("GGUF writer: tensor '", name, "': ", info->name, " data of this shape is ",
                                            n_bytes, " bytes, got ", data_size));
    }
    Entry e;
    e.name = std::move(name);
    e.dims = std::move(dims);
    e.type = type;
    e.n_bytes = n_bytes;
    return e;
  }

  void push(Entry e) {
    if (!names_.insert(e.name).second) throw InvalidArgument(tinfer::detail::str_cat("GGUF writer: duplicate tensor name '", e.name, "'"));
    entries_.push_back(std::move(e));
  }

  template <class Sink>
  static void put_string(Sink& sink, const std::string& s) {
    const std::uint64_t n = s.size();
    sink(&n, sizeof n);
    sink(s.data(), s.size());
  }

  template <class Sink>
  static void put_value(Sink& sink, const GgufValue& v) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put_string(sink, x);
          } else if constexpr (std::is_same_v<T, GgufArray>) {
            const auto t = static_cast<std::uint32_t>(x.type);
            const std::uint64_t n = x.items.size();
            sink(&t, sizeof t);
            sink(&n, sizeof n);
            for (const auto& item : x.items) put_value(sink, item);
          } else if constexpr (std::is_same_v<T, bool>) {
            const std::uint8_t b = x ? 1 : 0;
            sink(&b, 1);
          } else {
            sink(&x, sizeof x);
          }
        },
        v.storage());
  }

  template <class Sink>
  void emit(Sink&& sink) const {
    std::uint64_t pos = 0;
    auto out = [&](const void* p, std::size_t n) {
      sink(p, n);
      pos += n;
    };
    const std::uint32_t header[2] = {kGgufMagic, 3};
    out(header, sizeof header);
    const std::uint64_t counts[2] = {entries_.size(), kvs_.size()};
    out(counts, sizeof counts);
    for (const auto& [key, value] : kvs_) {
      put_string(out, key);
      const auto t = static_cast<std::uint32_t>(value.type());
      out(&t, sizeof t);
      put_value(out, value);
    }
    std::uint64_t offset = 0;
    for (const auto& e : entries_) {
      put_string(out, e.name);
      const auto n_dims = static_cast<std::uint32_t>(e.dims.size());
      out(&n_dims, sizeof n_dims);
      for (const auto d : e.dims) {
        const auto u = static_cast<std::uint64_t>(d);
        out(&u, sizeof u);
      }
      const auto t = static_cast<std::uint32_t>(e.type);
      out(&t, sizeof t);
      out(&offset, sizeof offset);
      offset += padded(e.n_bytes);
    }
    static const std::byte zeros[256] = {};
    auto pad_to = [&](std::uint64_t target) {
      while (pos < target) out(zeros, static_cast<std::size_t>(std::min<std::uint64_t>(target - pos, sizeof zeros)));
    };
    if (entries_.empty()) return;
    pad_to(padded(pos));
    for (const auto& e : entries_) {
      const auto d = e.data();
      out(d.data(), d.size());
      pad_to(padded(pos));
    }
  }

  std::uint64_t padded(std::uint64_t n) const { return (n + alignment_ - 1) / alignment_ * alignment_; }

  std::uint32_t alignment_ = kGgufDefaultAlignment;
  std::vector<std::pair<std::string, GgufValue>> kvs_;
  std::unordered_set<std::string> keys_;
  std::vector<Entry> entries_;
  std::unordered_set<std::string> names_;
};

}  // namespace tinfer::io
