// tinfer/io/safetensors.hpp: reader for Hugging Face safetensors files, single or sharded.
//
// Format: a little-endian uint64 N, then N bytes of JSON mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data that follows
// the header), plus an optional "__metadata__" object. Tensors are used in place from the
// memory-mapped file. Sharded checkpoints list each tensor's shard in
// model.safetensors.index.json ("weight_map").
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/mapped_file.hpp"
#include "tinfer/io/byte_reader.hpp"

namespace tinfer::io {

struct SafetensorsTensor {
  std::string name;
  DType type = DType::F32;
  std::vector<std::int64_t> shape;  // outermost first (row-major), as PyTorch
  std::span<const std::byte> data;  // inside the mapping
  std::string file;                 // for messages
};

/// One .safetensors file.
class SafetensorsFile {
 public:
  /// Maps and validates `path`: header length, JSON, dtypes, shapes against byte ranges, ranges
  /// inside the file and not overlapping. Throws IoError / FormatError / UnsupportedError.
  explicit SafetensorsFile(const std::string& path) : file_(path) {
    ByteReader r(file_.bytes(), path);
    const std::uint64_t n = r.read<std::uint64_t>("header length");
    if (n > r.remaining()) {
      throw FormatError(path, 0, detail::str_cat("header length ", n, " exceeds the file's remaining ", r.remaining(),
                                                 " bytes (truncated download, or not a safetensors file)"));
    }
    const std::string header = r.read_string(static_cast<std::size_t>(n), "JSON header");
    const std::span<const std::byte> data = file_.bytes().subspan(static_cast<std::size_t>(8 + n));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(header);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(path, 8, detail::str_cat("the header is not valid JSON: ", e.what()));
    }
    if (!j.is_object()) throw FormatError(path, 8, "the header is not a JSON object");
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "__metadata__") continue;
      const std::string& name = it.key();
      const auto& t = it.value();
      auto bad = [&](const std::string& what) -> FormatError {
        return FormatError(path, 8, detail::str_cat("tensor '", name, "': ", what));
      };
      if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") || !t.contains("data_offsets")) {
        throw bad("needs \"dtype\", \"shape\" and \"data_offsets\"");
      }
      if (!t["dtype"].is_string()) throw bad("\"dtype\" is not a string");
      const std::string dt = t["dtype"].get<std::string>();
      DType type;
      std::uint64_t elem;
      if (dt == "F32") type = DType::F32, elem = 4;
      else if (dt == "F16") type = DType::F16, elem = 2;
      else if (dt == "BF16") type = DType::BF16, elem = 2;
      else throw UnsupportedError(detail::str_cat(path, ": tensor '", name, "' has dtype ", dt, " (supported: F32, F16, BF16)"));
      const auto& shape = t["shape"];
      const auto& offs = t["data_offsets"];
      if (!shape.is_array() || shape.size() > 8) throw bad("\"shape\" must be an array of at most 8 dimensions");
      if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned()) {
        throw bad("\"data_offsets\" must be two non-negative integers");
      }
      SafetensorsTensor info;
      info.name = name;
      info.type = type;
      info.file = path;
      std::uint64_t count = 1;
      for (const auto& d : shape) {
        if (!d.is_number_unsigned()) throw bad("shape entries must be non-negative integers");
        const std::uint64_t v = d.get<std::uint64_t>();
        if (v > (std::uint64_t{1} << 40) || (v != 0 && count > (std::uint64_t{1} << 62) / v)) throw bad("shape is absurdly large");
        count *= v;
        info.shape.push_back(static_cast<std::int64_t>(v));
      }
      const std::uint64_t begin = offs[0].get<std::uint64_t>(), end = offs[1].get<std::uint64_t>();
      if (begin > end || end > data.size()) {
        throw bad(detail::str_cat("data_offsets [", begin, ", ", end, ") lie outside the ", data.size(), " data bytes"));
      }
      if (end - begin != count * elem) {
        throw bad(detail::str_cat("data_offsets span ", end - begin, " bytes but shape and dtype need ", count * elem));
      }
      info.data = data.subspan(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin));
      if (end > begin) ranges.emplace_back(begin, end);
      tensors_.emplace(name, std::move(info));
    }
    std::sort(ranges.begin(), ranges.end());
    for (std::size_t i = 1; i < ranges.size(); ++i) {
      if (ranges[i].first < ranges[i - 1].second) throw FormatError(path, 8, "tensor data ranges overlap");
    }
  }

  const std::map<std::string, SafetensorsTensor>& tensors() const noexcept { return tensors_; }
  const std::string& path() const noexcept { return file_.path(); }

 private:
  MappedFile file_;
  std::map<std::string, SafetensorsTensor> tensors_;
};

/// All tensors of a Hugging Face folder: model.safetensors, or the shards listed by
/// model.safetensors.index.json.
class SafetensorsModel {
 public:
  explicit SafetensorsModel(const std::filesystem::path& folder) {
    const auto single = folder / "model.safetensors";
    const auto index = folder / "model.safetensors.index.json";
    if (std::filesystem::exists(single)) {
      add(single.string());
    } else if (std::filesystem::exists(index)) {
      nlohmann::json j;
      try {
        MappedFile f(index.string());
        j = nlohmann::json::parse(reinterpret_cast<const char*>(f.data()), reinterpret_cast<const char*>(f.data()) + f.size());
      } catch (const nlohmann::json::exception& e) {
        throw FormatError(index.string(), detail::str_cat("not valid JSON: ", e.what()));
      }
      if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
        throw FormatError(index.string(), "has no \"weight_map\" object");
      }
      std::vector<std::string> shards;
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string()) throw FormatError(index.string(), detail::str_cat("weight_map entry '", it.key(), "' is not a file name"));
        const std::string shard = it.value().get<std::string>();
        if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos) {
          throw FormatError(index.string(), detail::str_cat("shard name '", shard, "' must be a plain file name in the folder"));
        }
        if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
      }
      for (const auto& s : shards) add((folder / s).string());
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!find(it.key())) throw FormatError(index.string(), detail::str_cat("tensor '", it.key(), "' is not in its shard"));
      }
    } else {
      throw IoError(detail::str_cat(folder.string(), ": no model.safetensors or model.safetensors.index.json"));
    }
  }

  const SafetensorsTensor* find(const std::string& name) const {
    for (const auto& f : files_) {
      auto it = f->tensors().find(name);
      if (it != f->tensors().end()) return &it->second;
    }
    return nullptr;
  }
  const SafetensorsTensor& get(const std::string& name) const {
    if (const auto* t = find(name)) return *t;
    throw FormatError(files_.empty() ? std::string("<none>") : files_.front()->path(),
                      detail::str_cat("tensor '", name, "' is missing"));
  }

 private:
  void add(const std::string& path) {
    auto f = std::make_unique<SafetensorsFile>(path);
    for (const auto& [name, t] : f->tensors()) {
      if (find(name)) throw FormatError(path, detail::str_cat("tensor '", name, "' appears in more than one shard"));
    }
    files_.push_back(std::move(f));
  }
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace tinfer::io
