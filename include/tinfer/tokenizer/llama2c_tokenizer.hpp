// tinfer/tokenizer/llama2c_tokenizer.hpp: the tokenizer of llama2.c checkpoints.
//
// File format (`tokenizer.bin`, little-endian): int32 max_token_length, then for each of the
// vocabulary's tokens: float32 score, int32 byte length, the bytes. Ids 0, 1, 2 are <unk>, <s>
// (BOS) and </s> (EOS); ids 3..258 are the byte-fallback tokens <0x00>..<0xFF>.
//
// encode() follows llama2.c's run.c exactly, so prompts give the ids that run.c feeds: BOS, a
// dummy-prefix " " token for non-empty text, one token per UTF-8 character (or its bytes as
// <0xNN> tokens when the character is not in the vocabulary), then repeated merging of the
// adjacent pair whose merged string has the highest score.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/core/mapped_file.hpp"
#include "tinfer/io/byte_reader.hpp"

namespace tinfer {

class Llama2cTokenizer {
 public:
  static constexpr std::int32_t kUnk = 0, kBos = 1, kEos = 2;
  static constexpr std::int32_t kFirstByteToken = 3;  // <0x00>

  /// Reads `path`. `vocab_size` is the model's (the file does not store it); -1 reads tokens
  /// until the end of the file. Throws IoError / FormatError (naming the token and offset).
  static Llama2cTokenizer load(const std::string& path, std::int32_t vocab_size = -1) {
    MappedFile file(path);
    io::ByteReader r(file.bytes(), path);
    Llama2cTokenizer t;
    const std::size_t at = r.offset();
    t.max_token_length_ = r.read<std::int32_t>("max_token_length");
    if (t.max_token_length_ <= 0 || t.max_token_length_ > (1 << 16)) {
      throw FormatError(path, at, detail::str_cat("max_token_length = ", t.max_token_length_,
                                                  " is absurd; is this a llama2.c tokenizer.bin?"));
    }
    if (vocab_size == 0 || vocab_size < -1) throw InvalidArgument(detail::str_cat("vocabulary size ", vocab_size, " is invalid"));
    // Each token takes at least 8 bytes, which bounds the count before anything is allocated.
    if (vocab_size > 0 && static_cast<std::uint64_t>(vocab_size) * 8 > r.remaining()) {
      throw FormatError(path, r.offset(), detail::str_cat("file is too short for ", vocab_size, " tokens (", r.remaining(),
                                                          " bytes left); truncated, or the model's vocabulary differs"));
    }
    for (std::int32_t i = 0; vocab_size < 0 ? !r.at_end() : i < vocab_size; ++i) {
      const std::string field = detail::str_cat("token ", i);
      const float score = r.read<float>(field + " score");
      const std::size_t len_at = r.offset();
      const std::int32_t len = r.read<std::int32_t>(field + " length");
      if (len < 0 || len > t.max_token_length_) {
        throw FormatError(path, len_at, detail::str_cat(field, " has length ", len, ", outside [0, max_token_length = ",
                                                        t.max_token_length_, "]"));
      }
      t.scores_.push_back(score);
      t.vocab_.push_back(r.read_string(static_cast<std::size_t>(len), field + " bytes"));
    }
    if (t.vocab_.size() < static_cast<std::size_t>(kFirstByteToken)) {
      throw FormatError(path, r.offset(), "vocabulary has fewer than 3 tokens (<unk>, <s>, </s>)");
    }
    t.build_lookup();
    return t;
  }

  /// Builds a tokenizer from pieces and scores directly.
  Llama2cTokenizer(std::vector<std::string> vocab, std::vector<float> scores)
      : vocab_(std::move(vocab)), scores_(std::move(scores)) {
    if (vocab_.size() != scores_.size()) throw InvalidArgument("tokenizer: pieces and scores differ in count");
    for (const auto& p : vocab_) max_token_length_ = std::max<std::int32_t>(max_token_length_, static_cast<std::int32_t>(p.size()));
    build_lookup();
  }

  std::int32_t vocab_size() const noexcept { return static_cast<std::int32_t>(vocab_.size()); }
  std::int32_t bos_id() const noexcept { return kBos; }
  std::int32_t eos_id() const noexcept { return kEos; }
  const std::string& piece(std::int32_t id) const { return vocab_.at(check_id(id)); }
  float score(std::int32_t id) const { return scores_.at(check_id(id)); }

  /// Token ids of `text` as run.c's encode() gives them. Any bytes are accepted: invalid UTF-8
  /// falls back to byte tokens.
  std::vector<std::int32_t> encode(std::string_view text, bool add_bos = true, bool add_eos = false) const {
    std::vector<std::int32_t> tokens;
    tokens.reserve(text.size() + 3);
    if (add_bos) tokens.push_back(kBos);
    if (!text.empty()) {
      // run.c adds the " " token as a separate dummy prefix, then merges it like any other.
      if (auto it = lookup_.find(" "); it != lookup_.end()) tokens.push_back(it->second);
    }
    // Split into UTF-8 characters: a lead byte starts a new one; at most 4 bytes each.
    std::string buf;
    for (std::size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      if ((c & 0xC0) != 0x80) buf.clear();
      buf.push_back(static_cast<char>(c));
      const bool next_is_continuation = i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
      if (next_is_continuation && buf.size() < 4) continue;
      if (auto it = lookup_.find(buf); it != lookup_.end()) {
        tokens.push_back(it->second);
      } else {
        // Byte fallback; a vocabulary too small to hold the byte tokens gets <unk> instead
        // (run.c would index past its vocabulary here).
        for (unsigned char b : buf) {
          const std::int32_t id = static_cast<std::int32_t>(b) + kFirstByteToken;
          tokens.push_back(id < vocab_size() ? id : kUnk);
        }
      }
      buf.clear();
    }
    // Merge the best-scoring adjacent pair until none merges (first pair wins ties). Like run.c,
    // pairs with BOS are considered too (no merge contains BOS's piece).
    const std::size_t first = 0;
    std::string merged;
    for (;;) {
      float best_score = -1e10f;
      std::int32_t best_id = -1;
      std::size_t best_idx = 0;
      for (std::size_t i = first; i + 1 < tokens.size(); ++i) {
        merged = vocab_[static_cast<std::size_t>(tokens[i])];
        merged += vocab_[static_cast<std::size_t>(tokens[i + 1])];
        auto it = lookup_.find(merged);
        if (it != lookup_.end() && scores_[static_cast<std::size_t>(it->second)] > best_score) {
          best_score = scores_[static_cast<std::size_t>(it->second)];
          best_id = it->second;
          best_idx = i;
        }
      }
      if (best_id < 0) break;
      tokens[best_idx] = best_id;
      tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_idx) + 1);
    }
    if (add_eos) tokens.push_back(kEos);
    return tokens;
  }

  /// The text of `token` when it follows `prev`, as run.c's decode() gives it: the leading space
  /// of a piece right after BOS is dropped, and <0xNN> pieces become the byte NN.
  std::string decode_piece(std::int32_t prev, std::int32_t token) const {
    std::string_view p = piece(token);
    if (prev == kBos && !p.empty() && p[0] == ' ') p.remove_prefix(1);
    if (int byte = parse_byte_piece(p); byte >= 0) return std::string(1, static_cast<char>(byte));
    return std::string(p);
  }

  /// The text of a token sequence (prev = BOS before the first token).
  std::string decode(const std::vector<std::int32_t>& tokens) const {
    std::string out;
    std::int32_t prev = kBos;
    for (std::int32_t t : tokens) {
      out += decode_piece(prev, t);
      prev = t;
    }
    return out;
  }

 private:
  Llama2cTokenizer() = default;

  std::size_t check_id(std::int32_t id) const {
    if (id < 0 || id >= vocab_size()) {
      throw InvalidArgument(detail::str_cat("token id ", id, " is outside the vocabulary [0, ", vocab_size(), ")"));
    }
    return static_cast<std::size_t>(id);
  }

  // "<0xNN>" with one or two hex digits (what run.c's sscanf("<0x%02hhX>") accepts); -1 if not.
  static int parse_byte_piece(std::string_view p) {
    if (p.size() < 4 || p.substr(0, 3) != "<0x") return -1;
    int v = 0, digits = 0;
    for (std::size_t i = 3; i < p.size() && digits < 2; ++i, ++digits) {
      const char c = p[i];
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else break;
      v = v * 16 + d;
    }
    return digits > 0 ? v : -1;
  }

  void build_lookup() {
    lookup_.reserve(vocab_.size());
    // The first id of a duplicated piece wins.
    for (std::size_t i = 0; i < vocab_.size(); ++i) lookup_.emplace(vocab_[i], static_cast<std::int32_t>(i));
  }

  std::vector<std::string> vocab_;
  std::vector<float> scores_;
  std::unordered_map<std::string, std::int32_t> lookup_;
  std::int32_t max_token_length_ = 0;
};

}  // namespace tinfer
