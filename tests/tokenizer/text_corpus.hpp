// Generated test text for tokenizers: varied multilingual strings (shared by the sentencepiece
// oracle test, the robustness tests and bench/bench_tokenizer.cpp). Everything is generated
// from a seed, so nothing large is committed and runs are reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tinfer/tokenizer/unicode.hpp"

namespace tinfer::testing {

// The library's encoder; tests only pass valid scalar values.
using tinfer::unicode::append_utf8;

/// Generates varied text: words in Latin (with accents), Cyrillic, Greek, CJK, Arabic,
/// Devanagari (with vowel signs), Hangul, Thai; English words; numbers; punctuation; emoji,
/// skin tones and ZWJ sequences; combining marks; runs of spaces, tabs and newlines; and now
/// and then a very long word. All valid UTF-8, no NUL.
class TextGenerator {
 public:
  explicit TextGenerator(std::uint32_t seed) : rng_(seed) {}

  /// One string of about `words` words.
  std::string sentence(int words) {
    std::string s;
    for (int w = 0; w < words; ++w) {
      if (w > 0 || pick(4) == 0) whitespace(s);
      word(s);
      if (pick(6) == 0) punctuation(s);
    }
    return s;
  }

  /// Text of at least `bytes` bytes, built from sentences.
  std::string text(std::size_t bytes) {
    std::string s;
    while (s.size() < bytes) {
      s += sentence(1 + pick(40));
      s += pick(3) == 0 ? "\n\n" : "\n";
    }
    return s;
  }

  /// A string of `n` code points drawn uniformly from all of Unicode's planes 0-1 and 2
  /// (no surrogates, no NUL), plus ASCII and whitespace more often: stresses byte fallback.
  std::string random_code_points(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) {
      std::uint32_t cp;
      switch (pick(4)) {
        case 0: cp = 1 + pick(0x7F); break;                     // ASCII incl. controls
        case 1: cp = static_cast<std::uint32_t>(" \t\n\r"[pick(4)]); break;
        case 2: cp = 0x80 + pick(0x10000 - 0x80); break;         // BMP
        default: cp = 0x80 + pick(0x30000 - 0x80); break;        // planes 0-2
      }
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
      append_utf8(s, cp);
    }
    return s;
  }

  std::uint32_t pick(std::uint32_t n) { return std::uniform_int_distribution<std::uint32_t>(0, n - 1)(rng_); }

 private:
  void whitespace(std::string& s) {
    switch (pick(20)) {
      case 0: s += std::string(1 + pick(8), ' '); break;
      case 1: s += '\t'; break;
      case 2: s += "\n"; break;
      case 3: s += " \t \n  "; break;
      case 4: s += "\r\n"; break;
      case 5: s += "\xE3\x80\x80"; break;  // ideographic space
      case 6: s += "\xC2\xA0"; break;      // no-break space
      default: s += ' ';
    }
  }

  void punctuation(std::string& s) {
    static const char* const p[] = {".", ",", "!", "?", ";", ":", "...", "'", "\"", "(", ")", "-", "--", "\xE2\x80\x94",
                                    "\xC2\xBB", "\xC2\xAB", "\xE3\x80\x82", "\xEF\xBC\x8C", "\xD8\x8C", "\xE0\xA5\xA4",
                                    "'s", "n't", "#", "@", "$", "%", "&", "*", "/", "\\", "[", "]", "{", "}", "<", ">", "`",
                                    "~", "^", "_", "|", "+", "="};
    s += p[pick(sizeof p / sizeof p[0])];
  }

  void letters(std::string& s, std::uint32_t lo, std::uint32_t hi, int n) {
    for (int i = 0; i < n; ++i) append_utf8(s, lo + pick(hi - lo + 1));
  }

  void word(std::string& s) {
    static const char* const english[] = {"the", "The", "once", "upon", "a", "time", "there", "was", "little", "girl",
                                          "named", "Lily", "she", "loved", "to", "play", "in", "park", "with", "her",
                                          "friends", "Hello", "world", "tokenizer", "sentencepiece", "don't", "I'm",
                                          "HELLO", "internationalization", "C++", "llama.cpp", "GPT-2", "e-mail"};
    const int len = 1 + static_cast<int>(pick(8));
    switch (pick(24)) {
      case 0: case 1: case 2: case 3: case 4: case 5:
        s += english[pick(sizeof english / sizeof english[0])];
        break;
      case 6: {  // Latin with accents and combining marks
        for (int i = 0; i < len; ++i) {
          if (pick(5) == 0) append_utf8(s, 0xC0 + pick(0x40));
          else append_utf8(s, 'a' + pick(26));
          if (pick(8) == 0) append_utf8(s, 0x300 + pick(0x70));  // combining diacritic
        }
        break;
      }
      case 7: letters(s, 0x430, 0x44F, len); break;                  // Cyrillic
      case 8: letters(s, 0x3B1, 0x3C9, len); break;                  // Greek
      case 9: case 10: letters(s, 0x4E00, 0x4E00 + 3000, len); break;  // common CJK
      case 11: letters(s, 0x3041, 0x3096, len); break;               // Hiragana
      case 12: letters(s, 0x627, 0x64A, len); break;                 // Arabic
      case 13:                                                       // Devanagari + vowel signs
        for (int i = 0; i < len; ++i) {
          append_utf8(s, 0x915 + pick(0x39 - 0x15));
          if (pick(2) == 0) append_utf8(s, 0x93E + pick(0x0F));
        }
        break;
      case 14: letters(s, 0xAC00, 0xAC00 + 2000, len); break;  // Hangul
      case 15: letters(s, 0xE01, 0xE2E, len); break;           // Thai
      case 16: case 17: {                                      // numbers
        const int digits = 1 + static_cast<int>(pick(12));
        for (int i = 0; i < digits; ++i) s += static_cast<char>('0' + pick(10));
        if (pick(3) == 0) s += ".5";
        break;
      }
      case 18: {  // emoji, skin tones, ZWJ sequences, flags
        static const char* const e[] = {
            "\xF0\x9F\x98\x80", "\xF0\x9F\xA6\x99", "\xE2\x9D\xA4\xEF\xB8\x8F",
            "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",                                                            // 👍🏽
            "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7\xE2\x80\x8D\xF0\x9F\x91\xA6",  // family
            "\xF0\x9F\x8F\xB3\xEF\xB8\x8F\xE2\x80\x8D\xF0\x9F\x8C\x88",                                    // rainbow flag
            "\xF0\x9F\x87\xBA\xF0\x9F\x87\xB8", "\xE2\x9C\x85", "\xF0\x9F\x94\xA5"};
        for (int i = 0, n = 1 + static_cast<int>(pick(3)); i < n; ++i) s += e[pick(sizeof e / sizeof e[0])];
        break;
      }
      case 19:  // mixed-script word
        letters(s, 'a', 'z', 2);
        letters(s, 0x430, 0x44F, 2);
        letters(s, 0x4E00, 0x4E00 + 100, 1);
        break;
      case 20:
        if (pick(10) == 0) {  // a very long word
          const std::uint32_t base = pick(2) ? 'a' : 0x430;
          letters(s, base, base + 25, 200 + static_cast<int>(pick(2000)));
        } else {
          letters(s, 'A', 'Z', len);
        }
        break;
      default: letters(s, 'a', 'z', len);
    }
  }

  std::mt19937 rng_;
};

}  // namespace tinfer::testing
