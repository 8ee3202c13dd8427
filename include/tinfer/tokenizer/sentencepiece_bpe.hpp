// tinfer/tokenizer/sentencepiece_bpe.hpp: SentencePiece-style BPE (Llama, Llama 2, TinyStories).
//
// Follows llama.cpp's SPM tokenizer, which matches sentencepiece for BPE models: spaces become
// U+2581 '▁', a '▁' is prepended at the start of the text and after each special token (the
// "dummy prefix"), the text is split into UTF-8 characters, and adjacent symbols are merged
// while their concatenation is a vocabulary piece, the pair whose piece has the highest score
// first (ties: leftmost). Characters that are not pieces fall back to <0xNN> byte tokens, or to
// the unknown token when the vocabulary has no byte tokens.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/tokenizer/tokenizer.hpp"
#include "tinfer/tokenizer/unicode.hpp"

namespace tinfer {

/// How a SentencePiece model normalizes text before merging.
struct SentencePieceOptions {
  bool add_dummy_prefix = true;           ///< prepend '▁' to the text (and after special tokens)
  bool remove_extra_whitespaces = false;  ///< strip leading/trailing spaces and collapse runs
  std::string unk_surface = " \xE2\x81\x87 ";  ///< how the unknown token decodes (" ⁇ ")
};

class SentencePieceBpeTokenizer : public Tokenizer {
 public:
  /// Builds from in-memory vocabulary data, e.g. GGUF's `tokenizer.ggml.tokens`, `.scores` and
  /// `.token_type`:
  /// - `pieces[id]`: the piece text with U+2581 for spaces; byte tokens written "<0xNN>".
  /// - `scores[id]`: merge priority (higher merges first); empty for all 0.
  /// - `types[id]`: empty to infer from the text: "<unk>" Unknown, "<s>"/"</s>" Control,
  ///   "<0xNN>" Byte, everything else Normal.
  /// - `ids`: BOS/EOS/unknown ids (-1 for none; when types are inferred, unset ids are taken
  ///   from the inferred "<unk>", "<s>", "</s>") and whether BOS is added by default.
  /// From GGUF: `tokenizer.ggml.bos_token_id`/`eos_token_id`/`unknown_token_id`/`add_bos_token`
  /// fill `ids`; `tokenizer.ggml.add_space_prefix` (default true) is options.add_dummy_prefix.
  /// Throws InvalidArgument when the array lengths differ, FormatError for bad special ids or a
  /// Byte token not written <0xNN>.
  SentencePieceBpeTokenizer(std::vector<std::string> pieces, std::vector<float> scores, std::vector<TokenType> types,
                            SpecialIds ids, SentencePieceOptions options = {}, const std::string& source = "<memory>")
      : options_(options) {
    if (!scores.empty() && scores.size() != pieces.size())
      throw InvalidArgument(detail::str_cat(source, ": ", pieces.size(), " pieces but ", scores.size(), " scores"));
    if (scores.empty()) scores.assign(pieces.size(), 0.0f);
    if (types.empty()) {
      types.resize(pieces.size(), TokenType::Normal);
      for (std::size_t i = 0; i < pieces.size(); ++i) {
        const auto id = static_cast<std::int32_t>(i);
        if (pieces[i] == "<unk>") {
          types[i] = TokenType::Unknown;
          if (ids.unk < 0) ids.unk = id;
        } else if (pieces[i] == "<s>") {
          types[i] = TokenType::Control;
          if (ids.bos < 0) ids.bos = id;
        } else if (pieces[i] == "</s>") {
          types[i] = TokenType::Control;
          if (ids.eos < 0) ids.eos = id;
        } else if (parse_byte_piece(pieces[i]) >= 0) {
          types[i] = TokenType::Byte;
        }
      }
    }
    scores_ = std::move(scores);
    set_vocab(std::move(pieces), std::move(types), ids, source);
    byte_ids_.fill(-1);
    for (std::size_t i = 0; i < texts_.size(); ++i) {
      if (types_[i] == TokenType::Byte) {
        const int b = parse_byte_piece(texts_[i]);
        if (b < 0) throw FormatError(source, detail::str_cat("byte token ", i, " (\"", texts_[i], "\") is not written <0xNN>"));
        if (byte_ids_[static_cast<std::size_t>(b)] < 0) byte_ids_[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(i);
      }
      // Only ordinary pieces take part in merging; control/byte/unknown pieces are reserved.
      if (types_[i] == TokenType::Normal || types_[i] == TokenType::UserDefined) {
        mergeable_.emplace(texts_[i], static_cast<std::int32_t>(i));
        // A piece with '▁' right after another character could span a word boundary.
        const std::string& t = texts_[i];
        for (std::size_t at = t.find(kSpaceMark, 1); at != std::string::npos; at = t.find(kSpaceMark, at + 1))
          if (at < kSpaceMark.size() || t.compare(at - kSpaceMark.size(), kSpaceMark.size(), kSpaceMark) != 0)
            split_words_ = false;
      }
    }
  }

  const SentencePieceOptions& options() const noexcept { return options_; }
  float score(std::int32_t id) const {
    check_id(id);
    return scores_[static_cast<std::size_t>(id)];
  }

  std::string token_to_piece(std::int32_t id) const override {
    check_id(id);
    const auto i = static_cast<std::size_t>(id);
    switch (types_[i]) {
      case TokenType::Byte:
        return std::string(1, static_cast<char>(parse_byte_piece(texts_[i])));
      case TokenType::Unknown:
        return options_.unk_surface;  // as sentencepiece renders an unknown piece
      case TokenType::Control:
        return texts_[i];
      default:
        return replace_all(texts_[i], kSpaceMark, " ");
    }
  }

 protected:
  static constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'

  bool drops_leading_space() const noexcept override { return options_.add_dummy_prefix; }

  void encode_text(std::string_view raw, bool after_special, std::vector<std::int32_t>& out) const override {
    std::string text;
    if (options_.remove_extra_whitespaces) {
      for (char c : raw) {
        if (c == ' ' && (text.empty() || text.back() == ' ')) continue;
        text += c;
      }
      while (!text.empty() && text.back() == ' ') text.pop_back();
      if (text.empty()) return;
    } else {
      text.assign(raw);
    }
    if (options_.add_dummy_prefix && after_special) text.insert(0, " ");
    text = replace_all(text, " ", kSpaceMark);
    if (options_.remove_extra_whitespaces) {
      // sentencepiece strips trailing whitespace after escaping it, so a '▁' written in the
      // text goes too (and with it the dummy prefix when nothing else is left).
      while (text.ends_with(kSpaceMark)) text.resize(text.size() - kSpaceMark.size());
      if (text.empty()) return;
    }

    // When no piece holds a '▁' right after another character (true of Llama's and most
    // vocabularies), no merge crosses the point before a '▁' that follows a non-'▁': the text
    // is merged word by word there, with the same result and small heaps (fast on long texts).
    if (split_words_) {
      const std::string_view t = text;
      std::size_t begin = 0;
      for (std::size_t at = t.find(kSpaceMark, 1); at != std::string_view::npos; at = t.find(kSpaceMark, at + 1)) {
        if (at - begin >= kSpaceMark.size() && t.compare(at - kSpaceMark.size(), kSpaceMark.size(), kSpaceMark) == 0) continue;
        if (at > begin) merge_word(t.substr(begin, at - begin), out);
        begin = at;
      }
      merge_word(t.substr(begin), out);
      return;
    }
    merge_word(text, out);
  }

  /// BPE over one run of escaped text (no special tokens), appending the ids.
  void merge_word(std::string_view text, std::vector<std::int32_t>& out) const {
    // Symbols form a doubly linked list over `text`; a merged symbol absorbs its right neighbour.
    struct Symbol {
      std::int32_t prev, next;
      std::size_t offset, len;
    };
    std::vector<Symbol> sym;
    for (std::size_t i = 0; i < text.size();) {
      const std::uint32_t len = unicode::decode_utf8(text, i).len;
      const auto k = static_cast<std::int32_t>(sym.size());
      sym.push_back({k - 1, k + 1, i, len});
      i += len;
    }
    if (sym.empty()) return;
    sym.back().next = -1;

    struct Bigram {
      float score;
      std::int32_t left, right;
      std::size_t len;  // combined length when queued; a mismatch later means it is stale
      bool operator<(const Bigram& o) const {  // priority_queue pops the largest
        return score < o.score || (score == o.score && left > o.left);
      }
    };
    std::priority_queue<Bigram> queue;
    auto try_pair = [&](std::int32_t l, std::int32_t r) {
      if (l < 0 || r < 0) return;
      const std::size_t len = sym[static_cast<std::size_t>(l)].len + sym[static_cast<std::size_t>(r)].len;
      auto it = mergeable_.find(text.substr(sym[static_cast<std::size_t>(l)].offset, len));
      if (it == mergeable_.end()) return;
      queue.push({scores_[static_cast<std::size_t>(it->second)], l, r, len});
    };
    for (std::size_t i = 1; i < sym.size(); ++i) try_pair(static_cast<std::int32_t>(i - 1), static_cast<std::int32_t>(i));
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& l = sym[static_cast<std::size_t>(b.left)];
      Symbol& r = sym[static_cast<std::size_t>(b.right)];
      if (l.len == 0 || r.len == 0 || l.len + r.len != b.len || l.next != b.right) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sym[static_cast<std::size_t>(r.next)].prev = b.left;
      try_pair(l.prev, b.left);
      try_pair(b.left, l.next);
    }

    for (std::int32_t i = 0; i >= 0; i = sym[static_cast<std::size_t>(i)].next) {
      const Symbol& s = sym[static_cast<std::size_t>(i)];
      const std::string_view piece = text.substr(s.offset, s.len);
      if (auto it = mergeable_.find(piece); it != mergeable_.end()) {
        out.push_back(it->second);
        continue;
      }
      bool have_bytes = true;
      for (char c : piece) have_bytes = have_bytes && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (have_bytes) {
        for (char c : piece) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      } else if (ids_.unk >= 0) {
        out.push_back(ids_.unk);
      }
    }
  }

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  /// "<0xNN>" -> NN, else -1.
  static int parse_byte_piece(std::string_view p) noexcept {
    if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
    auto hex = [](char c) {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const int hi = hex(p[3]);
    const int lo = hex(p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }

  static std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
      if (s.compare(i, from.size(), from) == 0) {
        out += to;
        i += from.size();
      } else {
        out += s[i++];
      }
    }
    return out;
  }

  SentencePieceOptions options_;
  std::vector<float> scores_;
  std::array<std::int32_t, 256> byte_ids_{};
  std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> mergeable_;
  bool split_words_ = true;  // see encode_text
};

}  // namespace tinfer
