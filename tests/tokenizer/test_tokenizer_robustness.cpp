// Streaming decode, invalid UTF-8 input, and malformed tokenizer files.
#include <gtest/gtest.h>

#include <fstream>
#include <cstdio>
#include <cstring>
#include <random>

#include "test_assets.hpp"
#include "tinfer/tokenizer/byte_level_bpe.hpp"
#include "tinfer/tokenizer/hf_tokenizer_json.hpp"
#include "tinfer/tokenizer/llama2c_vocab.hpp"
#include "tinfer/tokenizer/load_tokenizer.hpp"
#include "tinfer/tokenizer/sentencepiece_model.hpp"
#include "tinfer/tokenizer/stream_decoder.hpp"
#include "tinfer/tokenizer/unicode.hpp"

namespace {

using tinfer::testing::assets_dir;

std::filesystem::path llama_model() { return assets_dir() / "llama2-tokenizer/tokenizer.model"; }
std::filesystem::path gpt2_dir() { return assets_dir() / "gpt2-bpe"; }

std::vector<std::byte> file_bytes(const std::filesystem::path& p) {
  const std::string s = tinfer::testing::read_text_file(p);
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

std::filesystem::path write_temp(const std::string& name, const std::string& content) {
  const auto p = std::filesystem::temp_directory_path() / ("tinfer_test_" + name);
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

// Feeds ids one by one; every chunk must be valid UTF-8 and the chunks must add up to decode().
void check_stream(const tinfer::Tokenizer& tok, const std::vector<std::int32_t>& ids) {
  tinfer::StreamDecoder stream(tok);
  std::string all;
  for (std::int32_t id : ids) {
    const std::string chunk = stream.push(id);
    EXPECT_TRUE(tinfer::unicode::is_valid_utf8(chunk)) << "partial UTF-8 emitted after id " << id;
    all += chunk;
  }
  all += stream.finish();
  // Same text as decode(), with invalid bytes (from invalid input) replaced by U+FFFD.
  EXPECT_EQ(all, tinfer::unicode::sanitize_utf8(tok.decode(ids)));
}

TEST(StreamDecoder, HoldsBackSplitCharactersSentencePiece) {
  TINFER_REQUIRE_FILE(llama_model());
  const auto tok = tinfer::load_sentencepiece_model(llama_model());
  // 🦙 is not a piece: it becomes four byte tokens <0xF0> <0x9F> <0xA6> <0x99>.
  const auto ids = tok.encode("this is \xF0\x9F\xA6\x99.cpp");
  tinfer::StreamDecoder stream(tok);
  std::vector<std::string> chunks;
  for (std::int32_t id : ids) chunks.push_back(stream.push(id));
  EXPECT_EQ(stream.finish(), "");
  std::string all;
  int empty = 0;
  for (const auto& c : chunks) {
    EXPECT_TRUE(tinfer::unicode::is_valid_utf8(c));
    empty += c.empty();
    all += c;
  }
  EXPECT_EQ(all, "this is \xF0\x9F\xA6\x99.cpp");
  EXPECT_GE(empty, 3 + 1);  // BOS, and three of the four byte tokens
  check_stream(tok, tok.encode("F\xC3\xBChrer \xE1\x9E\x80\xE1\x9E\xB6 \xF0\x9F\x98\x81 \xE6\x97\xA5\xE6\x9C\xAC"));
}

TEST(StreamDecoder, HoldsBackSplitCharactersByteLevel) {
  TINFER_REQUIRE_FILE(gpt2_dir() / "encoder.json");
  const auto tok = tinfer::ByteLevelBpeTokenizer::from_vocab_and_merges(gpt2_dir() / "encoder.json", gpt2_dir() / "vocab.bpe");
  // GPT-2 writes " 🦙" as three tokens: " \xF0\x9F", "\xA6", "\x99".
  const auto ids = tok.encode(" \xF0\x9F\xA6\x99");
  ASSERT_EQ(ids, (std::vector<std::int32_t>{12520, 99, 247}));
  tinfer::StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(ids[0]), " ");
  EXPECT_EQ(stream.pending_bytes(), 2u);
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.push(ids[2]), "\xF0\x9F\xA6\x99");
  check_stream(tok, tok.encode("\xE1\x9E\x80\xE1\x9E\xB6\xE1\x9E\x93\xE1\x9F\x8B \xF0\x9F\x98\x81 \xE7\x94\x9F\xE6\xB4\xBB"));
}

TEST(StreamDecoder, InvalidBytesBecomeReplacementCharacters) {
  TINFER_REQUIRE_FILE(llama_model());
  const auto tok = tinfer::load_sentencepiece_model(llama_model());
  const auto byte = [&](int b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    return *tok.find_token(name);
  };
  tinfer::StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(byte(0xFF)), "\xEF\xBF\xBD");  // can never start a character
  EXPECT_EQ(stream.push(byte(0xE6)), "");               // start of a 3-byte character
  EXPECT_EQ(stream.push(byte(0x41)), "\xEF\xBF\xBD" "A");  // ... interrupted
  EXPECT_EQ(stream.push(byte(0xF0)), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");  // unfinished at the end
  EXPECT_THROW(stream.push(tok.vocab_size()), tinfer::InvalidArgument);
}

TEST(TokenizerRobustness, InvalidUtf8Input) {
  TINFER_REQUIRE_FILE(llama_model());
  TINFER_REQUIRE_FILE(gpt2_dir() / "encoder.json");
  const auto spm = tinfer::load_sentencepiece_model(llama_model());
  const auto bpe = tinfer::ByteLevelBpeTokenizer::from_vocab_and_merges(gpt2_dir() / "encoder.json", gpt2_dir() / "vocab.bpe");
  const std::vector<std::string> fixed = {
      "\xFF", "\xC3", "abc\xC3", "\xE6\x97", "\xED\xA0\x80 surrogate", "\xC0\xAF overlong", "\xF4\x90\x80\x80",
      "\x80\x80\x80", "caf\xC3\xA9\xE9 x", std::string("nul\0byte", 8), "\xF0\x9F\xA6 \xF0\x9F\xA6\x99"};
  std::mt19937 rng(12345);
  std::vector<std::string> texts = fixed;
  for (int i = 0; i < 300; ++i) {
    std::string s(rng() % 24, '\0');
    for (auto& c : s) c = static_cast<char>(rng() % 4 == 0 ? ' ' : rng() & 0xFF);
    texts.push_back(s);
  }
  for (const auto& t : texts) {
    // Both families are lossless on arbitrary bytes: byte-level tokens, or byte fallback.
    EXPECT_EQ(bpe.decode(bpe.encode(t)), t);
    EXPECT_EQ(spm.decode(spm.encode(t)), t);
    EXPECT_NO_THROW(check_stream(bpe, bpe.encode(t)));
    EXPECT_NO_THROW(check_stream(spm, spm.encode(t)));
  }
}

TEST(TokenizerRobustness, TruncatedSentencePieceModel) {
  const auto path = assets_dir() / "stories260K/tok512.model";
  TINFER_REQUIRE_FILE(path);
  const auto bytes = file_bytes(path);
  // Every prefix is malformed: cut inside a message, or complete pieces without the
  // TrainerSpec that says BPE.
  for (std::size_t n = 0; n < bytes.size(); n += (n < 400 ? 1 : 37)) {
    EXPECT_THROW(tinfer::parse_sentencepiece_model(std::span(bytes.data(), n), "cut.model"), tinfer::Error) << n;
  }
  try {
    tinfer::parse_sentencepiece_model(std::span(bytes.data(), 100), "cut.model");
  } catch (const tinfer::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("cut.model"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos);
  }
  // Random corruption: an error or a (different) tokenizer, never a crash.
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    auto b = bytes;
    for (int k = 0; k < 4; ++k) b[rng() % b.size()] = static_cast<std::byte>(rng() & 0xFF);
    try {
      const auto tok = tinfer::parse_sentencepiece_model(b, "corrupt.model");
      (void)tok.decode(tok.encode("Once upon a time"));
    } catch (const tinfer::Error&) {
    }
  }
  // A length prefix far beyond the data.
  const unsigned char huge[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x0A};
  EXPECT_THROW(tinfer::parse_sentencepiece_model(std::as_bytes(std::span(huge)), "huge.model"), tinfer::FormatError);
  EXPECT_THROW(tinfer::load_sentencepiece_model(assets_dir() / "no-such.model"), tinfer::IoError);
}

TEST(TokenizerRobustness, TruncatedLlama2cTokenizer) {
  const auto path = assets_dir() / "stories260K/tok512.bin";
  TINFER_REQUIRE_FILE(path);
  const auto bytes = file_bytes(path);
  // Cuts inside a token's record must fail; cuts between records give a shorter vocabulary.
  for (std::size_t n : {std::size_t{0}, std::size_t{3}, std::size_t{4}, std::size_t{6}, std::size_t{10}, bytes.size() - 1,
                        bytes.size() - 2})
    EXPECT_THROW(tinfer::parse_llama2c_tokenizer(std::span(bytes.data(), n), "cut.bin"), tinfer::FormatError) << n;
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    try {
      const auto tok = tinfer::parse_llama2c_tokenizer(std::span(bytes.data(), n), "cut.bin");
      (void)tok.encode("hello");
    } catch (const tinfer::Error&) {
    }
  }
  auto bad = bytes;
  const std::int32_t neg = -5;
  std::memcpy(bad.data() + 8, &neg, 4);  // first token's length
  EXPECT_THROW(tinfer::parse_llama2c_tokenizer(bad, "neg.bin"), tinfer::FormatError);
}

TEST(TokenizerRobustness, MalformedJson) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"not json", "{\"model\": "},
      {"no model", "{\"added_tokens\": []}"},
      {"model not object", "{\"model\": 3}"},
      {"no vocab", R"({"model": {"type": "BPE", "merges": []}, "decoder": {"type": "ByteLevel"}})"},
      {"no merges", R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "decoder": {"type": "ByteLevel"}})"},
      {"vocab id negative", R"({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}, "decoder": {"type": "ByteLevel"}})"},
      {"vocab id string", R"({"model": {"type": "BPE", "vocab": {"a": "0"}, "merges": []}})"},
      {"merge unknown", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}, "decoder": {"type": "ByteLevel"}})"},
      {"merge malformed", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}})"},
      {"added token bad", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": "x"}]})"},
      {"sparse ids", R"({"model": {"type": "BPE", "vocab": {"a": 60000000}, "merges": []}})"},
      {"added id huge", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 60000000, "content": "<s>"}]})"},
      {"special not bool", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 1, "content": "<s>", "special": 7}]})"},
  };
  for (const auto& [what, text] : bad) {
    const auto p = write_temp("bad_tokenizer.json", text);
    EXPECT_THROW(tinfer::load_hf_tokenizer_json(p), tinfer::FormatError) << what;
    std::filesystem::remove(p);
  }
  const auto p = write_temp("unigram_tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  EXPECT_THROW(tinfer::load_hf_tokenizer_json(p), tinfer::UnsupportedError);
  std::filesystem::remove(p);

  const auto v = write_temp("bad_vocab.json", "[1, 2]");
  const auto m = write_temp("bad_merges.txt", "#version: 0.2\na b\n");
  EXPECT_THROW(tinfer::ByteLevelBpeTokenizer::from_vocab_and_merges(v, m), tinfer::FormatError);
  std::ofstream(v) << R"({"a": 0, "b": 1})";
  EXPECT_THROW(tinfer::ByteLevelBpeTokenizer::from_vocab_and_merges(v, m), tinfer::FormatError);  // "ab" missing
  std::ofstream(m) << "#version: 0.2\nab\n";
  EXPECT_THROW(tinfer::ByteLevelBpeTokenizer::from_vocab_and_merges(v, m), tinfer::FormatError);  // no space
  std::filesystem::remove(v);
  std::filesystem::remove(m);
  EXPECT_THROW(tinfer::load_tokenizer(assets_dir() / "no-such-folder/tokenizer.json"), tinfer::IoError);
}

// Needs no assets: a byte-fallback vocabulary built in memory.
TEST(StreamDecoder, InMemoryByteFallback) {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    pieces.push_back(name);
  }
  pieces.push_back("\xE2\x96\x81");       // 259: ▁
  pieces.push_back("a");                   // 260
  pieces.push_back("\xE2\x96\x81" "a");  // 261: ▁a
  const tinfer::SentencePieceBpeTokenizer tok(pieces, {}, {}, {.bos = -1, .eos = -1, .unk = -1, .add_bos = true});
  const std::string text = "a \xE6\x97\xA5\xF0\x9F\xA6\x99" "a";
  const auto ids = tok.encode(text);
  ASSERT_EQ(ids.size(), 1 + 1 + 1 + 3 + 4 + 1u);  // BOS ▁a ▁ <3 bytes> <4 bytes> a
  EXPECT_EQ(tok.decode(ids), text);
  check_stream(tok, ids);
  tinfer::StreamDecoder stream(tok);
  std::string seen;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::string chunk = stream.push(ids[i]);
    if (i == 5) {
      EXPECT_EQ(chunk, "\xE6\x97\xA5");  // the third byte completes 日
    } else if (i == 9) {
      EXPECT_EQ(chunk, "\xF0\x9F\xA6\x99");
    } else if (i >= 3 && i <= 8) {
      EXPECT_EQ(chunk, "") << i;
    }
    seen += chunk;
  }
  EXPECT_EQ(seen + stream.finish(), text);
}

TEST(TokenizerRobustness, InMemoryVocabularies) {
  // A three-letter SentencePiece vocabulary without byte tokens: unknown characters map to <unk>.
  const tinfer::SentencePieceBpeTokenizer spm({"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "ab", "\xE2\x96\x81" "ab"},
                                              {0, 0, 0, -1, -2, -3, -0.5f, -0.1f}, {}, {});
  EXPECT_EQ(spm.bos_id(), 1);
  EXPECT_EQ(spm.unk_id(), 0);
  EXPECT_EQ(spm.encode("ab", {.add_bos = false}), (std::vector<std::int32_t>{7}));
  EXPECT_EQ(spm.encode("abz", {.add_bos = false}), (std::vector<std::int32_t>{7, 0}));
  EXPECT_EQ(spm.decode(spm.encode("ab ba")), "ab ba");
  EXPECT_THROW(tinfer::SentencePieceBpeTokenizer({"a"}, {1.0f, 2.0f}, {}, {}), tinfer::InvalidArgument);
  EXPECT_THROW(tinfer::SentencePieceBpeTokenizer({"a"}, {}, {}, {.bos = 5}), tinfer::FormatError);
  EXPECT_THROW(tinfer::SentencePieceBpeTokenizer({"<0xZZ>"}, {}, {tinfer::TokenType::Byte}, {}), tinfer::FormatError);
  // Byte-level BPE with malformed merges.
  std::vector<std::string> toks;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    tinfer::unicode::append_utf8(s, tinfer::detail::gpt2_byte_to_unicode()[static_cast<std::size_t>(b)]);
    toks.push_back(s);
  }
  toks.push_back("ab");
  const std::vector<std::string> good = {"a b"};
  const tinfer::ByteLevelBpeTokenizer bpe(toks, good);
  EXPECT_EQ(bpe.encode("ab"), (std::vector<std::int32_t>{256}));
  EXPECT_EQ(bpe.encode(" ab"), (std::vector<std::int32_t>{32, 256}));
  const std::vector<std::string> bad = {"a  b"};
  EXPECT_THROW(tinfer::ByteLevelBpeTokenizer(toks, bad), tinfer::FormatError);
}

}  // namespace
