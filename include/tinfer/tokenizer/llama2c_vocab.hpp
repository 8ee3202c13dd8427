// tinfer/tokenizer/llama2c_vocab.hpp: loads llama2.c's `tokenizer.bin`.
//
// Layout: int32 max_token_length, then for every token until the end of the file: float32
// score, int32 byte length, the bytes. llama2.c's exporter wrote pieces with '▁' turned into
// ' ' and BOS/EOS as "\n<s>\n" / "\n</s>\n"; this loader undoes both, so the result is the same
// SentencePiece vocabulary as the `tokenizer.model` it came from.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/core/mapped_file.hpp"
#include "tinfer/io/byte_reader.hpp"
#include "tinfer/tokenizer/sentencepiece_bpe.hpp"

namespace tinfer {

/// Parses a llama2.c tokenizer held in memory; `file` names it in error messages.
inline SentencePieceBpeTokenizer parse_llama2c_tokenizer(std::span<const std::byte> bytes, const std::string& file) {
  io::ByteReader r(bytes, file);
  const auto max_len = r.read<std::int32_t>("max_token_length");
  if (max_len <= 0 || max_len > (1 << 20)) r.fail(detail::str_cat("implausible max_token_length ", max_len));
  std::vector<std::string> pieces;
  std::vector<float> scores;
  while (!r.at_end()) {
    const std::string field = detail::str_cat("token ", pieces.size());
    scores.push_back(r.read<float>(field + " score"));
    const auto len = r.read<std::int32_t>(field + " length");
    if (len < 0 || len > max_len)
      r.fail(detail::str_cat(field, " has length ", len, ", outside [0, max_token_length = ", max_len, "]"));
    std::string s = r.read_string(static_cast<std::size_t>(len), field + " bytes");
    if (s == "\n<s>\n") s = "<s>";
    else if (s == "\n</s>\n") s = "</s>";
    std::string piece;
    for (char c : s) {
      if (c == ' ') piece += "\xE2\x96\x81";
      else piece += c;
    }
    pieces.push_back(std::move(piece));
  }
  if (pieces.empty()) throw FormatError(file, r.offset(), "no tokens");
  SpecialIds ids;
  ids.add_bos = true;
  return SentencePieceBpeTokenizer(std::move(pieces), std::move(scores), {}, ids, {}, file);
}

/// Loads llama2.c's `tokenizer.bin` (see parse_llama2c_tokenizer).
inline SentencePieceBpeTokenizer load_llama2c_tokenizer(const std::filesystem::path& path) {
  MappedFile f(path.string());
  return parse_llama2c_tokenizer(f.bytes(), path.string());
}

}  // namespace tinfer
