// The fuzz targets' bodies, shared by the libFuzzer binaries (fuzz_*.cpp) and by the unit test
// that replays the seed corpus and every past finding (tests/io/test_fuzz_corpus.cpp).
// tinfer::Error is the expected outcome for bad input; anything else escaping is a finding.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "fuzz_program_args.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/io/safetensors.hpp"
#include "tinfer/models/llama.hpp"
#include "tinfer/models/model.hpp"
#include "tinfer/tokenizer/byte_level_bpe.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"
#include "tinfer/tokenizer/hf_tokenizer_json.hpp"
#include "tinfer/tokenizer/llama2c_tokenizer.hpp"
#include "tinfer/tokenizer/load_tokenizer.hpp"
#include "tinfer/tokenizer/sentencepiece_bpe.hpp"
#include "tinfer/tokenizer/sentencepiece_model.hpp"
#include "tinfer/tokenizer/stream_decoder.hpp"

namespace tinfer_fuzz {

// libFuzzer target: the GGUF reader, then everything a model load reads from it.
inline void fuzz_gguf(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  try {
    auto file = std::make_shared<const tinfer::io::GgufFile>(tinfer::io::GgufFile::from_bytes(std::move(bytes), "fuzz.gguf"));
    for (const auto& t : file->tensors()) (void)file->tensor_data(t);
    try {
      if (tinfer::gguf_has_tokenizer(*file)) {
        auto tok = tinfer::load_gguf_tokenizer(*file);
        auto ids = tok->encode("Hello, world! \xF0\x9F\x98\x80 <s>", {.parse_special = true});
        (void)tok->decode(ids);
      }
    } catch (const tinfer::Error&) {
    }
    auto model = tinfer::load_model(file);
    auto session = model->new_session(std::min(model->max_context(), 4));
    (void)model->forward(*session, 0, 0);
  } catch (const tinfer::Error&) {
  }
}


// libFuzzer target: a safetensors file (header JSON, offsets, dtypes).
inline void fuzz_safetensors(const std::uint8_t* data, std::size_t size) {
  const auto path = tinfer_fuzz::write_scratch("model.safetensors", data, size);
  try {
    tinfer::io::SafetensorsFile f(path.string());
    for (const auto& [name, t] : f.tensors()) {
      volatile std::uint8_t sink = 0;
      if (!t.data.empty()) sink = static_cast<std::uint8_t>(t.data.back());
      (void)sink;
    }
  } catch (const tinfer::Error&) {
  }
}


// libFuzzer target: a Hugging Face config.json (llama and gpt2 readers). The folder has no
inline void fuzz_config_json(const std::uint8_t* data, std::size_t size) {
  tinfer_fuzz::write_scratch("config.json", data, size);
  try {
    (void)tinfer::load_hf_model(tinfer_fuzz::scratch_dir());
  } catch (const tinfer::Error&) {
  }
}


// libFuzzer target: llama2.c checkpoints (header validation, sizes) and one forward pass of
inline void fuzz_llama2c(const std::uint8_t* data, std::size_t size) {
  const auto path = tinfer_fuzz::write_scratch("model.bin", data, size);
  try {
    const auto model = tinfer::LlamaModel::load_llama2c(path.string());
    tinfer::LlamaSession s(model, std::min(model.config().max_seq_len, 2));
    (void)model.forward(s, 0, 0);
  } catch (const tinfer::Error&) {
  }
  try {
    const auto tok = tinfer::Llama2cTokenizer::load(path.string());
    (void)tok.decode(tok.encode("Once upon a time \xC3\xA9\xFF", true));
  } catch (const tinfer::Error&) {
  }
}


// A finding that is not a crash: a property of the output that a bug would break.
[[noreturn]] inline void finding(const char* what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what);
  std::abort();
}

// Exercises a freshly loaded tokenizer: fixed strings through encode/decode, every id decoded
// (bounded, so a huge vocabulary does not make one input take seconds).
inline void exercise_tokenizer(const tinfer::Tokenizer& tok) {
  const std::int32_t n = tok.vocab_size();
  for (const bool special : {false, true}) {
    const auto ids = tok.encode("Hello, world!  \t\n\xF0\x9F\x98\x80 <s></s><|endoftext|> \xC3\xA9\xFF", {.parse_special = special});
    for (std::int32_t id : ids)
      if (id < 0 || id >= n) finding("encode produced an id outside the vocabulary");
    (void)tok.decode(ids, {.render_special = special});
  }
  std::vector<std::int32_t> all;
  for (std::int32_t id = 0; id < std::min(n, 4096); ++id) all.push_back(id);
  (void)tok.decode(all, {.render_special = true});
  tinfer::StreamDecoder sd(tok);
  for (std::int32_t id : all) (void)sd.push(id);
  (void)sd.finish();
}

// libFuzzer target: a Hugging Face tokenizer.json (vocabulary, merges, added tokens, the
// normalizer/pre-tokenizer/post-processor fields we read), then encode/decode with it.
inline void fuzz_tokenizer_json(const std::uint8_t* data, std::size_t size) {
  const auto path = tinfer_fuzz::write_scratch("tokenizer.json", data, size);
  try {
    exercise_tokenizer(*tinfer::load_hf_tokenizer_json(path));
  } catch (const tinfer::Error&) {
  }
}

// libFuzzer target: a SentencePiece tokenizer.model (protobuf ModelProto), then encode/decode.
inline void fuzz_tokenizer_model(const std::uint8_t* data, std::size_t size) {
  try {
    const auto tok = tinfer::parse_sentencepiece_model(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz.model");
    exercise_tokenizer(tok);
  } catch (const tinfer::Error&) {
  }
}

// The reference tokenizers for the encode/decode targets: the real GPT-2 and Llama 2 ones from
// the assets folder when present (deep merge tables), else small ones built here so the
// targets and their replay test run anywhere.
inline std::filesystem::path fuzz_assets_dir() {
  if (const char* env = std::getenv("TINFER_ASSETS"); env != nullptr && *env != '\0') return env;
#if defined(TINFER_DEFAULT_ASSETS)
  return TINFER_DEFAULT_ASSETS;
#elif defined(TINFER_FUZZ_ASSETS)
  return TINFER_FUZZ_ASSETS;
#else
  return {};
#endif
}

inline const tinfer::Tokenizer& byte_level_reference() {
  static const std::unique_ptr<tinfer::Tokenizer> tok = []() -> std::unique_ptr<tinfer::Tokenizer> {
    const auto real = fuzz_assets_dir() / "gpt2-bpe" / "tokenizer.json";
    if (std::filesystem::exists(real)) return tinfer::load_hf_tokenizer_json(real);
    // All 256 bytes (byte-to-unicode form), a few merges and a control token.
    std::vector<std::string> tokens;
    const auto& map = tinfer::detail::gpt2_byte_to_unicode();
    for (std::uint32_t b = 0; b < 256; ++b) {
      tokens.emplace_back();
      tinfer::unicode::append_utf8(tokens.back(), map[b]);
    }
    const std::vector<std::string> merges = {"\xC4\xA0 t", "h e", "t he", "\xC4\xA0t he", "i n", "o n", "in g", "\xC4\xA0 a"};
    for (const auto& m : merges) {
      const auto sp = m.find(' ');
      tokens.push_back(m.substr(0, sp) + m.substr(sp + 1));
    }
    tokens.push_back("<|endoftext|>");
    std::vector<tinfer::TokenType> types(tokens.size(), tinfer::TokenType::Normal);
    types.back() = tinfer::TokenType::Control;
    const auto eot = static_cast<std::int32_t>(tokens.size() - 1);
    return std::make_unique<tinfer::ByteLevelBpeTokenizer>(tokens, merges, types, tinfer::SpecialIds{.bos = eot, .eos = eot});
  }();
  return *tok;
}

inline const tinfer::Tokenizer& sentencepiece_reference() {
  static const std::unique_ptr<tinfer::Tokenizer> tok = []() -> std::unique_ptr<tinfer::Tokenizer> {
    const auto real = fuzz_assets_dir() / "llama2-tokenizer" / "tokenizer.model";
    if (std::filesystem::exists(real)) return std::make_unique<tinfer::SentencePieceBpeTokenizer>(tinfer::load_sentencepiece_model(real));
    // <unk> <s> </s>, 256 byte pieces, a few merged pieces (Llama's layout, byte fallback).
    std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "<0x%02X>", b);
      pieces.emplace_back(buf);
    }
    std::vector<float> scores(pieces.size(), 0.0f);
    const char* merged[] = {"\xE2\x96\x81", "e", "t", "h", "th", "the", "\xE2\x96\x81" "the", "a", "\xE2\x96\x81" "a", "n", "an", "d", "and"};
    for (const char* m : merged) {
      pieces.emplace_back(m);
      scores.push_back(-static_cast<float>(scores.size()));
    }
    return std::make_unique<tinfer::SentencePieceBpeTokenizer>(pieces, scores, std::vector<tinfer::TokenType>{}, tinfer::SpecialIds{.add_bos = true});
  }();
  return *tok;
}

// Encode/decode on arbitrary bytes. The first byte picks the options; the rest is the text.
// The same bytes are then read as a sequence of 16-bit ids (some beyond the vocabulary) and
// decoded, whole and streamed: an out-of-range id must be an InvalidArgument, nothing else.
inline void fuzz_codec(const tinfer::Tokenizer& tok, bool lossless, const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::uint8_t flags = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool special = flags & 1, render = flags & 2;
  const auto ids = tok.encode(text, {.add_bos = (flags & 4) != 0, .add_eos = (flags & 8) != 0, .parse_special = special});
  const std::int32_t n = tok.vocab_size();
  for (std::int32_t id : ids)
    if (id < 0 || id >= n) finding("encode produced an id outside the vocabulary");
  const std::string back = tok.decode(ids, {.render_special = render});
  // Byte-level BPE loses nothing: without special-token parsing or added BOS/EOS the text
  // comes back byte for byte.
  if (lossless && (flags & 15) == 0 && back != text) finding("byte-level BPE decode(encode(text)) != text");
  tinfer::StreamDecoder sd(tok, {.render_special = render});
  std::string streamed;
  for (std::int32_t id : ids) streamed += sd.push(id);
  streamed += sd.finish();
  (void)streamed;

  std::vector<std::int32_t> raw;
  for (std::size_t i = 1; i + 1 < size; i += 2) {
    std::int32_t id = static_cast<std::int32_t>(data[i] | (data[i + 1] << 8));
    if (flags & 16) id %= (n + 2);  // mostly valid ids, sometimes n or n+1
    if (flags & 32) id = -id - 1;   // negative ids
    raw.push_back(id);
  }
  const bool in_range = std::all_of(raw.begin(), raw.end(), [&](std::int32_t id) { return id >= 0 && id < n; });
  try {
    (void)tok.decode(raw, {.render_special = render});
    if (!in_range) finding("decode accepted an id outside the vocabulary");
  } catch (const tinfer::InvalidArgument&) {
    if (in_range) finding("decode rejected valid ids");
  }
  tinfer::StreamDecoder sd2(tok, {.render_special = render});
  try {
    for (std::int32_t id : raw) (void)sd2.push(id);
    (void)sd2.finish();
    if (!in_range) finding("stream decode accepted an id outside the vocabulary");
  } catch (const tinfer::InvalidArgument&) {
    if (in_range) finding("stream decode rejected valid ids");
  }
}

// libFuzzer target: GPT-2 byte-level BPE encode/decode on arbitrary bytes.
inline void fuzz_tokenize_bpe(const std::uint8_t* data, std::size_t size) { fuzz_codec(byte_level_reference(), true, data, size); }

// libFuzzer target: SentencePiece BPE (Llama 2) encode/decode on arbitrary bytes.
inline void fuzz_tokenize_spm(const std::uint8_t* data, std::size_t size) { fuzz_codec(sentencepiece_reference(), false, data, size); }

}  // namespace tinfer_fuzz
