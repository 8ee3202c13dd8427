// tinfer/core/error.hpp: the exception hierarchy.
//
// Every error tinfer reports derives from tinfer::Error, so a client can catch one type. The
// derived kinds say what went wrong; the message says where (file, byte offset, field) and,
// where possible, what to do about it.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace tinfer {

/// Base of every exception thrown by tinfer.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file could not be opened, read or mapped (missing, permissions, I/O failure).
class IoError : public Error {
 public:
  using Error::Error;
};

/// A file's content is malformed: truncated, inconsistent or absurd values. Carries the file
/// and the byte offset where the problem was found.
class FormatError : public Error {
 public:
  FormatError(std::string file, std::uint64_t offset, const std::string& what)
      : Error(file + ": at byte offset " + std::to_string(offset) + ": " + what),
        file_(std::move(file)),
        offset_(offset) {}
  /// For problems that have no single offset (e.g. a missing key).
  FormatError(std::string file, const std::string& what)
      : Error(file + ": " + what), file_(std::move(file)) {}

  const std::string& file() const noexcept { return file_; }
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  std::string file_;
  std::uint64_t offset_ = 0;
};

/// A well-formed input that tinfer does not support (e.g. an unknown tensor type).
class UnsupportedError : public Error {
 public:
  using Error::Error;
};

/// A caller passed an invalid argument (bad shape, out-of-range index, bad option value).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// A request needs more memory than can be allocated.
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

namespace detail {
/// Concatenates streamable values into a string, for building error messages.
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace tinfer
