// tinfer/tokenizer/tokenizer.hpp: the interface shared by all tokenizers.
//
// A Tokenizer owns a vocabulary (id -> token text and type) and turns text into ids and back.
// The base class does what every family does the same way: special-token splitting, BOS/EOS,
// and decoding piece by piece; a family (byte-level BPE, SentencePiece BPE) only supplies how a
// run of ordinary text becomes ids and what bytes a token stands for.
//
// A loaded tokenizer is immutable: encode() and decode() may be called from several threads.
// Loaders and constructors live in byte_level_bpe.hpp, sentencepiece_bpe.hpp,
// sentencepiece_model.hpp, llama2c_vocab.hpp and hf_tokenizer_json.hpp; load_tokenizer.hpp
// picks one by looking at a path.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tinfer/core/error.hpp"

namespace tinfer {

/// Token kinds, numbered as SentencePiece's ModelProto and GGUF's `tokenizer.ggml.token_type`.
enum class TokenType : std::int32_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,      ///< the unknown token (<unk>)
  Control = 3,      ///< BOS, EOS, <|endoftext|>, ...: never produced from ordinary text
  UserDefined = 4,  ///< always matched as a whole wherever it occurs in the text
  Unused = 5,
  Byte = 6,  ///< a byte-fallback token <0xNN>
};

/// The special token ids of a vocabulary; -1 where the vocabulary has none.
struct SpecialIds {
  std::int32_t bos = -1;
  std::int32_t eos = -1;
  std::int32_t unk = -1;
  bool add_bos = false;  ///< whether encode() adds BOS by default
};

struct EncodeOptions {
  /// Prepend BOS; unset means the tokenizer's own default (true for Llama, false for GPT-2).
  std::optional<bool> add_bos = std::nullopt;
  /// Append EOS.
  bool add_eos = false;
  /// Recognise control/unknown tokens written in the text (e.g. "<|endoftext|>", "<s>") and
  /// emit their ids; otherwise such text is tokenized as ordinary characters. User-defined
  /// tokens are always recognised (as llama.cpp and Hugging Face do).
  bool parse_special = false;
};

struct DecodeOptions {
  /// Render control tokens (BOS, EOS, <|endoftext|>) as their text instead of skipping them.
  bool render_special = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Text -> ids. Never fails on any byte string (invalid UTF-8 is encoded byte-wise where
  /// the vocabulary allows, else as the unknown token).
  std::vector<std::int32_t> encode(std::string_view text, const EncodeOptions& opts = {}) const {
    std::vector<std::int32_t> out;
    if (opts.add_bos.value_or(ids_.add_bos) && ids_.bos >= 0) out.push_back(ids_.bos);
    bool after_special = true;  // the start of the text counts as "after a special token"
    std::size_t start = 0;
    auto flush_text = [&](std::size_t end) {
      if (end > start) {
        encode_text(text.substr(start, end - start), after_special, out);
        after_special = false;
      }
    };
    for (std::size_t i = 0; i < text.size();) {
      const auto [id, len] = match_special(text, i, opts.parse_special);
      if (len == 0) {
        ++i;
        continue;
      }
      flush_text(i);
      out.push_back(id);
      after_special = true;
      i += len;
      start = i;
    }
    flush_text(text.size());
    if (opts.add_eos && ids_.eos >= 0) out.push_back(ids_.eos);
    return out;
  }

  /// Ids -> text (raw bytes; may be invalid UTF-8 if the ids split a character). Throws
  /// InvalidArgument for an id outside [0, vocab_size()).
  std::string decode(std::span<const std::int32_t> ids, const DecodeOptions& opts = {}) const {
    std::string out;
    bool at_start = true;
    for (std::int32_t id : ids) append_decoded(id, opts, at_start, out);
    return out;
  }

  /// decode({1, 15043}): a braced list does not convert to std::span in C++20.
  std::string decode(std::initializer_list<std::int32_t> ids, const DecodeOptions& opts = {}) const {
    return decode(std::span<const std::int32_t>(ids.begin(), ids.size()), opts);
  }

  /// Appends the text of one token to `out` as decode() does; `at_start` (initially true)
  /// tracks whether no text has been produced yet, for families that drop a leading space.
  void append_decoded(std::int32_t id, const DecodeOptions& opts, bool& at_start, std::string& out) const {
    check_id(id);
    if (types_[static_cast<std::size_t>(id)] == TokenType::Control && !opts.render_special) return;
    std::string piece = token_to_piece(id);
    // Control tokens (a rendered BOS) do not count as text: the first real piece still loses
    // its dummy-prefix space.
    if (types_[static_cast<std::size_t>(id)] == TokenType::Control) {
      out += piece;
      return;
    }
    // SentencePiece strips the dummy prefix only from an ordinary piece (not from <unk>'s
    // surface or a byte token).
    const TokenType type = types_[static_cast<std::size_t>(id)];
    if (at_start && drops_leading_space() && (type == TokenType::Normal || type == TokenType::UserDefined) &&
        !piece.empty() && piece.front() == ' ')
      piece.erase(0, 1);
    at_start = false;  // only the first piece loses its space, even if that left it empty
    out += piece;
  }

  /// The bytes token `id` stands for in decoded text (control tokens: their literal text).
  virtual std::string token_to_piece(std::int32_t id) const = 0;

  std::int32_t vocab_size() const noexcept { return static_cast<std::int32_t>(texts_.size()); }
  std::int32_t bos_id() const noexcept { return ids_.bos; }
  std::int32_t eos_id() const noexcept { return ids_.eos; }
  std::int32_t unk_id() const noexcept { return ids_.unk; }
  bool add_bos_by_default() const noexcept { return ids_.add_bos; }

  /// The token's text as the vocabulary matches it (byte-level BPE: the raw bytes; SentencePiece:
  /// the piece with U+2581 for spaces).
  const std::string& token_text(std::int32_t id) const {
    check_id(id);
    return texts_[static_cast<std::size_t>(id)];
  }
  TokenType token_type(std::int32_t id) const {
    check_id(id);
    return types_[static_cast<std::size_t>(id)];
  }
  /// The id of the token whose token_text() is `text`, if any.
  std::optional<std::int32_t> find_token(std::string_view text) const {
    auto it = by_text_.find(std::string(text));
    if (it == by_text_.end()) return std::nullopt;
    return it->second;
  }

 protected:
  Tokenizer() = default;

  /// Encodes a run of text that contains no special token. `after_special` is true at the
  /// start of the input and right after a special token.
  virtual void encode_text(std::string_view text, bool after_special, std::vector<std::int32_t>& out) const = 0;

  /// Whether decoding drops one leading space of the first piece (SentencePiece's dummy prefix).
  virtual bool drops_leading_space() const noexcept { return false; }

  /// Installs the vocabulary; call once from the derived constructor. `types` may be empty
  /// (all Normal). Builds the text lookup and the special-token matcher.
  void set_vocab(std::vector<std::string> texts, std::vector<TokenType> types, SpecialIds ids, const std::string& source) {
    if (!types.empty() && types.size() != texts.size())
      throw InvalidArgument(detail::str_cat(source, ": ", texts.size(), " tokens but ", types.size(), " token types"));
    if (types.empty()) types.assign(texts.size(), TokenType::Normal);
    const auto n = static_cast<std::int64_t>(texts.size());
    for (auto [name, v] : {std::pair{"bos", ids.bos}, std::pair{"eos", ids.eos}, std::pair{"unk", ids.unk}})
      if (v < -1 || v >= n)
        throw FormatError(source, detail::str_cat(name, " token id ", v, " is outside the vocabulary of ", n, " tokens"));
    texts_ = std::move(texts);
    types_ = std::move(types);
    ids_ = ids;
    by_text_.clear();
    by_text_.reserve(texts_.size());
    specials_.clear();
    has_user_defined_ = false;
    for (std::size_t i = 0; i < texts_.size(); ++i) {
      by_text_.emplace(texts_[i], static_cast<std::int32_t>(i));  // first id wins for duplicates
      const TokenType t = types_[i];
      if ((t == TokenType::Control || t == TokenType::Unknown || t == TokenType::UserDefined) && !texts_[i].empty())
        specials_.push_back(static_cast<std::int32_t>(i));
      if (t == TokenType::UserDefined && !texts_[i].empty()) has_user_defined_ = true;
    }
    // Longest first, so "<|endoftext|>" wins over a shorter special that is its prefix.
    std::stable_sort(specials_.begin(), specials_.end(), [&](std::int32_t a, std::int32_t b) {
      return texts_[static_cast<std::size_t>(a)].size() > texts_[static_cast<std::size_t>(b)].size();
    });
  }

  void check_id(std::int32_t id) const {
    if (id < 0 || id >= vocab_size())
      throw InvalidArgument(detail::str_cat("token id ", id, " is outside the vocabulary [0, ", vocab_size(), ")"));
  }

  std::vector<std::string> texts_;
  std::vector<TokenType> types_;
  SpecialIds ids_;
  std::unordered_map<std::string, std::int32_t> by_text_;

 private:
  /// The special token written at text[pos], as {id, length}; length 0 if none.
  std::pair<std::int32_t, std::size_t> match_special(std::string_view text, std::size_t pos, bool parse_special) const {
    if (!parse_special && !has_user_defined_) return {-1, 0};
    for (std::int32_t id : specials_) {
      const std::string& s = texts_[static_cast<std::size_t>(id)];
      if (!parse_special && types_[static_cast<std::size_t>(id)] != TokenType::UserDefined) continue;
      if (text.compare(pos, s.size(), s) == 0) return {id, s.size()};
    }
    return {-1, 0};
  }

  std::vector<std::int32_t> specials_;
  bool has_user_defined_ = false;
};

}  // namespace tinfer
