// tinfer/tokenizer/byte_level_bpe.hpp: GPT-2's byte-level BPE tokenizer.
//
// Text is split by GPT-2's pre-tokenization regex, each word's bytes become single-byte tokens,
// and adjacent pairs are merged in the order of the merge list (rank 0 first) until no listed
// pair remains. Vocabulary files write tokens through GPT-2's byte-to-unicode table (a printable
// character per byte, e.g. U+0120 'Ġ' for a space); this class converts them back to raw bytes
// once at load time, so encoding and decoding work on bytes directly.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <queue>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "tinfer/core/error.hpp"
#include "tinfer/tokenizer/gpt2_pretokenizer.hpp"
#include "tinfer/tokenizer/tokenizer.hpp"
#include "tinfer/tokenizer/unicode.hpp"

namespace tinfer {

namespace detail {

/// GPT-2's byte -> code point table: printable Latin-1 bytes map to themselves, the other 68
/// bytes to U+0100 upwards in byte order.
inline const std::array<std::uint32_t, 256>& gpt2_byte_to_unicode() {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    std::uint32_t next = 256;
    for (std::uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? b : next++;
    }
    return t;
  }();
  return table;
}

/// Converts a token written with GPT-2's byte-to-unicode table back to raw bytes. Text that
/// uses characters outside the table (e.g. added tokens stored verbatim) is returned unchanged.
inline std::string gpt2_unmap_bytes(std::string_view mapped) {
  static const std::unordered_map<std::uint32_t, char> inverse = [] {
    std::unordered_map<std::uint32_t, char> m;
    const auto& t = gpt2_byte_to_unicode();
    for (std::uint32_t b = 0; b < 256; ++b) m.emplace(t[b], static_cast<char>(b));
    return m;
  }();
  std::string out;
  out.reserve(mapped.size());
  for (std::size_t i = 0; i < mapped.size();) {
    const unicode::Utf8Unit u = unicode::decode_utf8(mapped, i);
    auto it = u.valid ? inverse.find(u.cp) : inverse.end();
    if (it == inverse.end()) return std::string(mapped);
    out += it->second;
    i += u.len;
  }
  return out;
}

inline std::string read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(detail::str_cat(path.string(), ": cannot open"));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw IoError(detail::str_cat(path.string(), ": read error"));
  return s.str();
}

inline nlohmann::json parse_json_file(const std::filesystem::path& path) {
  const std::string text = read_whole_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(path.string(), e.byte > 0 ? e.byte - 1 : 0, detail::str_cat("invalid JSON: ", e.what()));
  }
}

/// Turns a {token: id} JSON object into a vector indexed by id (gaps become empty Unused tokens).
inline void json_vocab_to_vector(const nlohmann::json& vocab, const std::string& file, std::string_view field,
                                 std::vector<std::string>& tokens, std::vector<TokenType>& types) {
  if (!vocab.is_object()) throw FormatError(file, detail::str_cat(field, " must be a JSON object of token -> id"));
  std::int64_t max_id = -1;
  for (const auto& [tok, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() >= (1 << 26))
      throw FormatError(file, detail::str_cat(field, ": token ", nlohmann::json(tok).dump(), " has invalid id ", id.dump()));
    max_id = std::max(max_id, id.get<std::int64_t>());
  }
  // Gaps are allowed, but not so many that a tiny file could demand gigabytes.
  if (max_id >= static_cast<std::int64_t>(vocab.size()) * 2 + 65536)
    throw FormatError(file, detail::str_cat(field, ": largest id ", max_id, " is far beyond the ", vocab.size(), " entries"));
  tokens.assign(static_cast<std::size_t>(max_id + 1), std::string());
  types.assign(tokens.size(), TokenType::Unused);
  for (const auto& [tok, id] : vocab.items()) {
    const auto i = static_cast<std::size_t>(id.get<std::int64_t>());
    if (types[i] != TokenType::Unused)
      throw FormatError(file, detail::str_cat(field, ": id ", i, " is used by two tokens"));
    tokens[i] = tok;
    types[i] = TokenType::Normal;
  }
}

}  // namespace detail

class ByteLevelBpeTokenizer : public Tokenizer {
 public:
  /// Builds from in-memory vocabulary data, e.g. GGUF's `tokenizer.ggml.tokens`, `.merges` and
  /// `.token_type`:
  /// - `tokens[id]`: the token as written in GPT-2 vocabulary files (byte-to-unicode form);
  ///   control/user-defined tokens may be plain text (e.g. "<|endoftext|>").
  /// - `merges`: "left right" (both sides in byte-to-unicode form), highest priority first.
  /// - `types`: one per token, or empty for all Normal.
  /// - `ids`: BOS/EOS/unknown ids (-1 for none) and whether BOS is added by default.
  /// `source` names the origin in error messages. Throws FormatError for a malformed merge or
  /// one whose parts or result are not in the vocabulary.
  /// From GGUF (`tokenizer.ggml.model` = "gpt2"): `tokenizer.ggml.bos_token_id`/`eos_token_id`
  /// fill `ids` (GPT-2 uses <|endoftext|> = 50256 for both); `add_bos_token` is ids.add_bos.
  ByteLevelBpeTokenizer(const std::vector<std::string>& tokens, std::span<const std::string> merges,
                        std::vector<TokenType> types = {}, SpecialIds ids = {}, const std::string& source = "<memory>") {
    std::vector<std::string> raw;
    raw.reserve(tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const bool special = !types.empty() && i < types.size() &&
                           (types[i] == TokenType::Control || types[i] == TokenType::UserDefined);
      raw.push_back(special ? tokens[i] : detail::gpt2_unmap_bytes(tokens[i]));
    }
    set_vocab(std::move(raw), std::move(types), ids, source);
    byte_ids_.fill(-1);
    for (std::uint32_t b = 0; b < 256; ++b)
      if (auto id = find_token(std::string(1, static_cast<char>(b)))) byte_ids_[b] = *id;
    merges_.reserve(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const std::string& m = merges[rank];
      const auto sp = m.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 >= m.size() || m.find(' ', sp + 1) != std::string::npos)
        throw FormatError(source, detail::str_cat("merge ", rank, " (\"", m, "\") is not two tokens separated by one space"));
      add_merge(detail::gpt2_unmap_bytes(std::string_view(m).substr(0, sp)),
                detail::gpt2_unmap_bytes(std::string_view(m).substr(sp + 1)), static_cast<std::int32_t>(rank), source);
    }
  }

  /// Loads OpenAI's `encoder.json` + `vocab.bpe`, or the identical Hugging Face layout
  /// `vocab.json` + `merges.txt`. `<|endoftext|>`, if present, becomes a control token used as
  /// BOS and EOS (BOS is not added by default), as GPT-2 uses it.
  static ByteLevelBpeTokenizer from_vocab_and_merges(const std::filesystem::path& vocab_json,
                                                     const std::filesystem::path& merges_txt) {
    std::vector<std::string> tokens;
    std::vector<TokenType> types;
    detail::json_vocab_to_vector(detail::parse_json_file(vocab_json), vocab_json.string(), "vocabulary", tokens, types);
    std::vector<std::string> merges;
    {
      const std::string text = detail::read_whole_file(merges_txt);
      std::size_t pos = 0;
      while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        std::string line = text.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        // The first line of vocab.bpe / merges.txt is a "#version: 0.2" comment.
        if (!line.empty() && !(merges.empty() && line.rfind("#version", 0) == 0)) merges.push_back(std::move(line));
        pos = nl + 1;
      }
    }
    SpecialIds ids;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] == "<|endoftext|>") {
        types[i] = TokenType::Control;
        ids.bos = ids.eos = static_cast<std::int32_t>(i);
      }
    }
    return ByteLevelBpeTokenizer(tokens, merges, std::move(types), ids, merges_txt.string());
  }

  std::string token_to_piece(std::int32_t id) const override { return token_text(id); }

  /// Hugging Face's ByteLevel `add_prefix_space` (RoBERTa-style vocabularies): a space is put
  /// before each run of text that does not start with one, so the first word is tokenized like
  /// the others. Decoding keeps that space. Off for GPT-2.
  void set_add_prefix_space(bool on) noexcept { add_prefix_space_ = on; }
  bool add_prefix_space() const noexcept { return add_prefix_space_; }

 protected:
  void encode_text(std::string_view text, bool /*after_special*/, std::vector<std::int32_t>& out) const override {
    std::string prefixed;
    if (add_prefix_space_ && !text.empty() && text.front() != ' ') {
      prefixed = " ";
      prefixed += text;
      text = prefixed;
    }
    std::vector<std::int32_t> word;
    for (std::string_view w : gpt2_pretokenize(text)) {
      word.clear();
      for (char c : w) {
        const std::int32_t id = byte_ids_[static_cast<unsigned char>(c)];
        if (id >= 0) word.push_back(id);
        else if (ids_.unk >= 0) word.push_back(ids_.unk);  // only for vocabularies lacking a byte
      }
      bpe(word);
      out.insert(out.end(), word.begin(), word.end());
    }
  }

 private:
  struct Merge {
    std::int32_t rank;
    std::int32_t result;
  };
  static std::uint64_t key(std::int32_t a, std::int32_t b) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }

  void add_merge(const std::string& left, const std::string& right, std::int32_t rank, const std::string& source) {
    const auto a = find_token(left);
    const auto b = find_token(right);
    const auto r = find_token(left + right);
    if (!a || !b || !r)
      throw FormatError(source, detail::str_cat("merge ", rank, " refers to a token that is not in the vocabulary"));
    merges_.emplace(key(*a, *b), Merge{rank, *r});  // a repeated pair keeps its first (best) rank
  }

  /// Applies merges to `word` in place: always the lowest-ranked adjacent pair, leftmost first
  /// on ties (the same result as OpenAI's encoder, which merges every occurrence of the best
  /// pair per pass). A heap over a linked list keeps long words at O(n log n).
  void bpe(std::vector<std::int32_t>& word) const {
    const std::size_t n = word.size();
    if (n < 2) return;
    std::vector<std::int32_t> next(n);
    std::vector<std::int32_t> prev(n);
    for (std::size_t i = 0; i < n; ++i) {
      prev[i] = static_cast<std::int32_t>(i) - 1;
      next[i] = i + 1 < n ? static_cast<std::int32_t>(i + 1) : -1;
    }
    struct Candidate {
      std::int32_t rank, left, left_id, right_id;
      bool operator>(const Candidate& o) const { return rank > o.rank || (rank == o.rank && left > o.left); }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    auto consider = [&](std::int32_t l) {
      if (l < 0 || next[static_cast<std::size_t>(l)] < 0) return;
      const std::int32_t a = word[static_cast<std::size_t>(l)];
      const std::int32_t b = word[static_cast<std::size_t>(next[static_cast<std::size_t>(l)])];
      if (auto it = merges_.find(key(a, b)); it != merges_.end()) heap.push({it->second.rank, l, a, b});
    };
    for (std::size_t i = 0; i + 1 < n; ++i) consider(static_cast<std::int32_t>(i));
    std::vector<bool> dead(n, false);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      const auto l = static_cast<std::size_t>(c.left);
      // Skip entries made stale by an earlier merge of either symbol.
      if (dead[l] || word[l] != c.left_id || next[l] < 0) continue;
      const auto r = static_cast<std::size_t>(next[l]);
      if (word[r] != c.right_id) continue;
      word[l] = merges_.find(key(c.left_id, c.right_id))->second.result;
      dead[r] = true;
      next[l] = next[r];
      if (next[r] >= 0) prev[static_cast<std::size_t>(next[r])] = c.left;
      consider(prev[l]);
      consider(c.left);
    }
    std::size_t k = 0;
    for (std::int32_t i = 0; i >= 0; i = next[static_cast<std::size_t>(i)]) word[k++] = word[static_cast<std::size_t>(i)];
    word.resize(k);
  }

  std::array<std::int32_t, 256> byte_ids_{};
  std::unordered_map<std::uint64_t, Merge> merges_;
  bool add_prefix_space_ = false;
};

}  // namespace tinfer
