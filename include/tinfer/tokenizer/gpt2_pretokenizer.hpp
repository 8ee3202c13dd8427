// tinfer/tokenizer/gpt2_pretokenizer.hpp: GPT-2's pre-tokenization regex, implemented by hand.
//
// GPT-2 splits text into words with
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// before BPE runs on each word. This is a direct matcher for exactly that pattern (first
// alternative that matches wins, each greedy), so no regex engine is needed. Bytes that are not
// valid UTF-8 count as "other" characters (neither letter, number nor space), like U+FFFD.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tinfer/tokenizer/unicode.hpp"

namespace tinfer {

/// Splits `text` into GPT-2 pre-tokens (views into `text`, in order, covering it exactly).
inline std::vector<std::string_view> gpt2_pretokenize(std::string_view text) {
  enum Class : std::uint8_t { kOther, kLetter, kNumber, kSpace };
  struct Char {
    std::uint32_t cp;
    std::size_t offset;
    Class cls;
  };
  std::vector<Char> cs;
  cs.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const unicode::Utf8Unit u = unicode::decode_utf8(text, i);
    Class c = kOther;
    if (u.valid) {
      if (unicode::is_letter(u.cp)) c = kLetter;
      else if (unicode::is_number(u.cp)) c = kNumber;
      else if (unicode::is_whitespace(u.cp)) c = kSpace;
    }
    cs.push_back({u.valid ? u.cp : 0xFFFD, i, c});
    i += u.len;
  }
  const std::size_t n = cs.size();
  auto cls = [&](std::size_t i) { return i < n ? cs[i].cls : kOther; };
  auto cp = [&](std::size_t i) { return i < n ? cs[i].cp : 0u; };
  auto run_end = [&](std::size_t i, Class c) {  // end of the run of class c starting at i
    while (i < n && cs[i].cls == c) ++i;
    return i;
  };

  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < n) {
    std::size_t end = i;
    // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, as in GPT-2)
    if (cp(i) == '\'') {
      const std::uint32_t a = cp(i + 1);
      const std::uint32_t b = cp(i + 2);
      if (a == 's' || a == 't' || a == 'm' || a == 'd') end = i + 2;
      else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) end = i + 3;
    }
    if (end == i) {
      // ` ?X+` for X = letters, numbers, and "other" (not space, letter or number)
      const std::size_t j = cp(i) == ' ' && cls(i + 1) != kSpace ? i + 1 : i;
      const Class c = cls(j);
      if (j < n && c != kSpace) {
        end = run_end(j, c);
      } else {
        // \s+(?!\S) then \s+: a whitespace run, leaving its last character to the next word
        // when a non-space follows and the run is longer than one.
        const std::size_t e = run_end(i, kSpace);
        end = (e == n || e - i == 1) ? e : e - 1;
      }
    }
    const std::size_t from = cs[i].offset;
    const std::size_t to = end < n ? cs[end].offset : text.size();
    words.push_back(text.substr(from, to - from));
    i = end;
  }
  return words;
}

}  // namespace tinfer
