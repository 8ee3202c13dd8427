// tinfer/tokenizer/unicode.hpp: UTF-8 decoding/encoding and the Unicode classes tokenizers need.
//
// Tokenizers see arbitrary bytes, so decoding never throws: a byte that does not start a valid,
// shortest-form UTF-8 sequence is reported as a one-byte invalid unit, which callers treat as an
// opaque symbol (it still round-trips through byte-level or byte-fallback tokens).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "tinfer/tokenizer/unicode_tables.hpp"

namespace tinfer::unicode {

/// One decoded unit of UTF-8 text.
struct Utf8Unit {
  std::uint32_t cp;   ///< the code point, or U+FFFD for an invalid byte
  std::uint32_t len;  ///< bytes consumed (1..4)
  bool valid;         ///< false: `len` is 1 and the byte is not valid UTF-8 at this position
};

/// Decodes the unit starting at `s[pos]` (requires pos < s.size()). Rejects overlong forms,
/// surrogates, code points above U+10FFFF and truncated sequences.
inline Utf8Unit decode_utf8(std::string_view s, std::size_t pos) noexcept {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) return {b0, 1, true};
  std::uint32_t len = 0;
  std::uint32_t cp = 0;
  std::uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return {0xFFFD, 1, false};
  }
  if (pos + len > s.size()) return {0xFFFD, 1, false};
  for (std::uint32_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) return {0xFFFD, 1, false};
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {0xFFFD, 1, false};
  return {cp, len, true};
}

/// Appends the UTF-8 encoding of `cp` (which must be a valid scalar value) to `out`.
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// True if `s` is entirely valid UTF-8.
inline bool is_valid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    const Utf8Unit u = decode_utf8(s, i);
    if (!u.valid) return false;
    i += u.len;
  }
  return true;
}

/// Length of the tail of `s` that is the start of a valid multi-byte sequence still missing
/// bytes (0 when `s` does not end inside a character). Used to hold back text while streaming.
inline std::size_t incomplete_utf8_tail(std::string_view s) noexcept {
  // A sequence is at most 4 bytes, so only the last 3 bytes can start an incomplete one.
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<unsigned char>(s[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back
    std::size_t need = 0;
    if ((b & 0xE0) == 0xC0) need = 2;
    else if ((b & 0xF0) == 0xE0) need = 3;
    else if ((b & 0xF8) == 0xF0) need = 4;
    if (need <= back) return 0;  // ASCII, invalid lead, or a sequence that is already complete
    // Check that the bytes present could still become a valid character (first continuation
    // byte ranges exclude overlong forms, surrogates and values above U+10FFFF).
    if (back >= 2) {
      const auto b1 = static_cast<unsigned char>(s[n - back + 1]);
      if ((b == 0xE0 && b1 < 0xA0) || (b == 0xED && b1 > 0x9F) || (b == 0xF0 && b1 < 0x90) ||
          (b == 0xF4 && b1 > 0x8F) || b == 0xC0 || b == 0xC1 || b > 0xF4)
        return 0;
    } else if (b == 0xC0 || b == 0xC1 || b > 0xF4) {
      return 0;
    }
    return back;
  }
  return 0;
}

/// Replaces every invalid byte of `s` with U+FFFD, so the result is valid UTF-8.
inline std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const Utf8Unit u = decode_utf8(s, i);
    if (u.valid) out.append(s.substr(i, u.len));
    else append_utf8(out, 0xFFFD);
    i += u.len;
  }
  return out;
}

namespace detail {
inline bool in_ranges(std::span<const unicode_tables::CodepointRange> ranges, std::uint32_t cp) noexcept {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), cp,
                             [](std::uint32_t v, const unicode_tables::CodepointRange& r) { return v < r.first; });
  return it != ranges.begin() && cp <= std::prev(it)->last;
}
}  // namespace detail

/// \p{L}: general category L (Lu, Ll, Lt, Lm, Lo).
inline bool is_letter(std::uint32_t cp) noexcept {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return detail::in_ranges(unicode_tables::kLetter, cp);
}

/// \p{N}: general category N (Nd, Nl, No).
inline bool is_number(std::uint32_t cp) noexcept {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return detail::in_ranges(unicode_tables::kNumber, cp);
}

/// \s: the White_Space property.
inline bool is_whitespace(std::uint32_t cp) noexcept {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return detail::in_ranges(unicode_tables::kWhitespace, cp);
}

}  // namespace tinfer::unicode
