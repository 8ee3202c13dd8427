// tinfer/io/byte_reader.hpp: a bounds-checked little-endian cursor over a byte range.
//
// Every read checks the remaining length first, so a truncated or malicious file produces a
// FormatError naming the file, the offset and the field being read, never an out-of-bounds read.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "tinfer/core/error.hpp"

namespace tinfer::io {

static_assert(std::endian::native == std::endian::little, "tinfer's file readers assume a little-endian host");

class ByteReader {
 public:
  ByteReader(std::span<const std::byte> bytes, std::string file) : bytes_(bytes), file_(std::move(file)) {}

  std::size_t offset() const noexcept { return pos_; }
  std::size_t size() const noexcept { return bytes_.size(); }
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }
  bool at_end() const noexcept { return pos_ == bytes_.size(); }
  const std::string& file() const noexcept { return file_; }

  /// Reads a trivially copyable value (little-endian), naming `field` if the data ends early.
  template <class T>
    requires std::is_trivially_copyable_v<T>
  T read(std::string_view field) {
    require(sizeof(T), field);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  /// Returns a view of the next `n` bytes and advances past them.
  std::span<const std::byte> take(std::size_t n, std::string_view field) {
    require(n, field);
    auto s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

  std::string read_string(std::size_t n, std::string_view field) {
    auto s = take(n, field);
    return std::string(reinterpret_cast<const char*>(s.data()), s.size());
  }

  void skip(std::size_t n, std::string_view field) {
    require(n, field);
    pos_ += n;
  }

  void seek(std::size_t offset, std::string_view field) {
    if (offset > bytes_.size()) {
      throw FormatError(file_, pos_, detail::str_cat(field, " points to offset ", offset, " beyond the end of the file (",
                                                     bytes_.size(), " bytes)"));
    }
    pos_ = offset;
  }

  /// Throws a FormatError at the current offset.
  [[noreturn]] void fail(const std::string& what) const { throw FormatError(file_, pos_, what); }

  void require(std::size_t n, std::string_view field) const {
    if (n > remaining()) {
      throw FormatError(file_, pos_, detail::str_cat("file ends while reading ", field, ": need ", n, " bytes, ",
                                                     remaining(), " left (truncated download?)"));
    }
  }

 private:
  std::span<const std::byte> bytes_;
  std::string file_;
  std::size_t pos_ = 0;
};

}  // namespace tinfer::io
