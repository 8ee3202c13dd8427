// Helpers for the GGUF tests: a raw little-endian byte builder (to craft malformed files the
// writer refuses to produce), temp files, and the list of real GGUF assets.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "test_assets.hpp"

namespace tinfer::testing {

/// Appends little-endian fields to a byte vector; pos() gives the offset of the next field.
class RawGguf {
 public:
  template <class T>
  RawGguf& put(T v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof(T));
    return *this;
  }
  RawGguf& u8(std::uint8_t v) { return put(v); }
  RawGguf& u32(std::uint32_t v) { return put(v); }
  RawGguf& u64(std::uint64_t v) { return put(v); }
  RawGguf& str(std::string_view s) {
    u64(s.size());
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    bytes.insert(bytes.end(), p, p + s.size());
    return *this;
  }
  /// Magic, version and the two counts.
  RawGguf& header(std::uint64_t n_tensors, std::uint64_t n_kv, std::uint32_t version = 3) {
    return u32(0x46554747u).u32(version).u64(n_tensors).u64(n_kv);
  }
  /// A uint32 key/value pair.
  RawGguf& kv_u32(std::string_view key, std::uint32_t v) { return str(key).u32(4).u32(v); }
  /// A tensor info.
  RawGguf& tensor(std::string_view name, std::vector<std::uint64_t> dims, std::uint32_t type, std::uint64_t offset) {
    str(name).u32(static_cast<std::uint32_t>(dims.size()));
    for (auto d : dims) u64(d);
    return u32(type).u64(offset);
  }
  /// Zero bytes up to the next multiple of `a`.
  RawGguf& pad(std::size_t a = 32) {
    while (bytes.size() % a != 0) bytes.push_back(std::byte{0});
    return *this;
  }
  RawGguf& zeros(std::size_t n) {
    bytes.insert(bytes.end(), n, std::byte{0});
    return *this;
  }
  std::size_t pos() const { return bytes.size(); }

  std::vector<std::byte> bytes;
};

/// A file under the system temp directory, removed when the object dies.
class TempFile {
 public:
  explicit TempFile(std::string_view stem) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            (std::string("tinfer_test_") + std::string(stem) + "_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter++) + ".gguf");
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(std::span<const std::byte> bytes) const {
    std::ofstream f(path_, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline std::filesystem::path gguf_asset(std::string_view name) { return assets_dir() / "gguf" / std::string(name); }

/// Every GGUF file the shared assets hold (models and vocab-only files).
inline std::vector<std::filesystem::path> all_real_gguf_files() {
  std::vector<std::filesystem::path> out;
  for (const char* dir : {"gguf", "llamacpp-vocab"}) {
    const auto d = assets_dir() / dir;
    if (!std::filesystem::is_directory(d)) continue;
    for (const auto& e : std::filesystem::directory_iterator(d))
      if (e.path().extension() == ".gguf") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<std::byte> read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  if (!c.empty()) std::memcpy(out.data(), c.data(), c.size());
  return out;
}

}  // namespace tinfer::testing
