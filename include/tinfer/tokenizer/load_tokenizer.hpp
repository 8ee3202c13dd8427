// tinfer/tokenizer/load_tokenizer.hpp: opens any supported tokenizer file by looking at it.
#pragma once

#include <filesystem>
#include <fstream>
#include <string_view>
#include <memory>

#include "tinfer/core/error.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/tokenizer/byte_level_bpe.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"
#include "tinfer/tokenizer/hf_tokenizer_json.hpp"
#include "tinfer/tokenizer/llama2c_vocab.hpp"
#include "tinfer/tokenizer/sentencepiece_model.hpp"
#include "tinfer/tokenizer/tokenizer.hpp"

namespace tinfer {

/// Loads a tokenizer from `path`, which may be:
/// - a folder holding tokenizer.json, vocab.json + merges.txt, tokenizer.model, or
///   encoder.json + vocab.bpe (tried in that order);
/// - a Hugging Face tokenizer.json;
/// - encoder.json (with vocab.bpe beside it) or vocab.json (with merges.txt beside it);
/// - a SentencePiece model (*.model) or a llama2.c tokenizer (*.bin);
/// - a GGUF file (the tokenizer in its metadata).
/// Throws IoError when nothing loadable is found, FormatError/UnsupportedError from the loaders.
inline std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  auto exists = [](const fs::path& p) { return fs::is_regular_file(p); };
  if (fs::is_directory(path)) {
    if (exists(path / "tokenizer.json")) return load_hf_tokenizer_json(path / "tokenizer.json");
    if (exists(path / "vocab.json") && exists(path / "merges.txt"))
      return std::make_unique<ByteLevelBpeTokenizer>(
          ByteLevelBpeTokenizer::from_vocab_and_merges(path / "vocab.json", path / "merges.txt"));
    if (exists(path / "tokenizer.model"))
      return std::make_unique<SentencePieceBpeTokenizer>(load_sentencepiece_model(path / "tokenizer.model"));
    if (exists(path / "encoder.json") && exists(path / "vocab.bpe"))
      return std::make_unique<ByteLevelBpeTokenizer>(
          ByteLevelBpeTokenizer::from_vocab_and_merges(path / "encoder.json", path / "vocab.bpe"));
    throw IoError(detail::str_cat(path.string(), ": folder has no tokenizer.json, vocab.json + merges.txt, "
                                                 "tokenizer.model or encoder.json + vocab.bpe"));
  }
  if (!exists(path)) throw IoError(detail::str_cat(path.string(), ": no such file"));
  {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    if (in.gcount() == 4 && std::string_view(magic, 4) == "GGUF") {
      const io::GgufFile f(path.string());
      if (!gguf_has_tokenizer(f)) throw FormatError(path.string(), "this GGUF file holds no tokenizer (tokenizer.ggml.* keys)");
      return load_gguf_tokenizer(f);
    }
  }
  const std::string name = path.filename().string();
  const std::string ext = path.extension().string();
  if (ext == ".json") {
    // encoder.json / vocab.json are plain token -> id maps that need their merges file.
    for (auto [vocab, merges] : {std::pair{"encoder.json", "vocab.bpe"}, std::pair{"vocab.json", "merges.txt"}}) {
      if (name != vocab) continue;
      const fs::path m = path.parent_path() / merges;
      if (!exists(m)) throw IoError(detail::str_cat(path.string(), ": needs ", merges, " in the same folder"));
      return std::make_unique<ByteLevelBpeTokenizer>(ByteLevelBpeTokenizer::from_vocab_and_merges(path, m));
    }
    return load_hf_tokenizer_json(path);
  }
  if (ext == ".model") return std::make_unique<SentencePieceBpeTokenizer>(load_sentencepiece_model(path));
  if (ext == ".bin") return std::make_unique<SentencePieceBpeTokenizer>(load_llama2c_tokenizer(path));
  throw UnsupportedError(detail::str_cat(path.string(), ": unknown tokenizer file type (expected tokenizer.json, ",
                                         "encoder.json, vocab.json, *.model or *.bin)"));
}

}  // namespace tinfer
