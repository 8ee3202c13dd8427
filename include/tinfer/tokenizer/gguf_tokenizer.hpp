// tinfer/tokenizer/gguf_tokenizer.hpp: the tokenizer stored in a GGUF file's metadata, as
// llama.cpp writes it.
//
// Keys: tokenizer.ggml.model ("gpt2": byte-level BPE; "llama": SentencePiece BPE),
// tokenizer.ggml.tokens, .scores (llama), .token_type, .merges (gpt2), .bos_token_id,
// .eos_token_id, .unknown_token_id, .add_bos_token, .add_space_prefix.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/tokenizer/byte_level_bpe.hpp"
#include "tinfer/tokenizer/sentencepiece_bpe.hpp"
#include "tinfer/tokenizer/tokenizer.hpp"

namespace tinfer {

/// True when the file carries a tokenizer (tokenizer.ggml.model and .tokens).
inline bool gguf_has_tokenizer(const io::GgufFile& f) {
  return f.contains("tokenizer.ggml.model") && f.contains("tokenizer.ggml.tokens");
}

/// Builds the file's tokenizer. Throws FormatError naming the key when metadata is missing or
/// inconsistent, UnsupportedError for a tokenizer model other than "gpt2" and "llama".
inline std::unique_ptr<Tokenizer> load_gguf_tokenizer(const io::GgufFile& f) {
  const std::string model = f.get_string("tokenizer.ggml.model");
  auto tokens = f.get_array_of<std::string>("tokenizer.ggml.tokens");
  std::vector<TokenType> types;
  if (f.contains("tokenizer.ggml.token_type")) {
    const auto raw = f.get_array_of<std::int32_t>("tokenizer.ggml.token_type");
    if (raw.size() != tokens.size()) {
      throw FormatError(f.path(), detail::str_cat("tokenizer.ggml.token_type has ", raw.size(), " entries for ", tokens.size(), " tokens"));
    }
    for (std::int32_t t : raw) {
      if (t < 0 || t > 6) throw FormatError(f.path(), detail::str_cat("tokenizer.ggml.token_type holds the unknown type ", t));
      types.push_back(static_cast<TokenType>(t));
    }
  }
  auto id = [&](const char* key) -> std::int32_t {
    if (!f.contains(key)) return -1;
    const std::int64_t v = f.get_int(key);
    // Converters write 0xFFFFFFFF (as uint32) for "none".
    if (v < 0 || v >= static_cast<std::int64_t>(tokens.size())) return -1;
    return static_cast<std::int32_t>(v);
  };
  SpecialIds ids;
  ids.bos = id("tokenizer.ggml.bos_token_id");
  ids.eos = id("tokenizer.ggml.eos_token_id");
  ids.unk = id("tokenizer.ggml.unknown_token_id");
  if (model == "gpt2") {
    ids.add_bos = f.contains("tokenizer.ggml.add_bos_token") && f.get_bool("tokenizer.ggml.add_bos_token");
    const auto merges = f.get_array_of<std::string>("tokenizer.ggml.merges");
    return std::make_unique<ByteLevelBpeTokenizer>(tokens, merges, std::move(types), ids, f.path());
  }
  if (model == "llama") {
    ids.add_bos = f.contains("tokenizer.ggml.add_bos_token") ? f.get_bool("tokenizer.ggml.add_bos_token") : true;
    std::vector<float> scores;
    if (f.contains("tokenizer.ggml.scores")) scores = f.get_array_of<float>("tokenizer.ggml.scores");
    SentencePieceOptions opt;
    if (f.contains("tokenizer.ggml.add_space_prefix")) opt.add_dummy_prefix = f.get_bool("tokenizer.ggml.add_space_prefix");
    return std::make_unique<SentencePieceBpeTokenizer>(std::move(tokens), std::move(scores), std::move(types), ids, opt, f.path());
  }
  throw UnsupportedError(detail::str_cat(f.path(), ": tokenizer model '", model, "' is not supported (supported: gpt2, llama)"));
}

}  // namespace tinfer
