// llama2.c's tokenizer.bin format and run.c's encoding algorithm.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_assets.hpp"
#include "tinfer/tokenizer/llama2c_tokenizer.hpp"

namespace {

using tinfer::Llama2cTokenizer;
using tinfer::testing::assets_dir;

std::filesystem::path tok512() { return assets_dir() / "stories260K" / "tok512.bin"; }

// A small vocabulary built by hand: the merge order follows the scores.
Llama2cTokenizer toy() {
  std::vector<std::string> v = {"<unk>", "\n<s>\n", "\n</s>\n"};
  std::vector<float> s = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.push_back(buf);
    s.push_back(0);
  }
  for (auto [piece, score] : std::vector<std::pair<std::string, float>>{
           {" ", -1}, {"a", -2}, {"b", -3}, {"c", -4}, {"ab", -5}, {" a", -20}, {"abc", -6}, {" abc", -7}, {"é", -8}}) {
    v.push_back(piece);
    s.push_back(score);
  }
  return Llama2cTokenizer(v, s);
}

TEST(Llama2cTokenizer, MergesByScore) {
  const auto t = toy();
  const int sp = 259, a = 260, b = 261, c = 262, ab = 263, abc = 265, sabc = 266, e_acute = 267;
  (void)a; (void)b; (void)c; (void)ab; (void)abc;
  // " " + "a" + "b" + "c": "ab" (-5) merges before " a" (-20), then "abc" (-6), then " abc" (-7).
  EXPECT_EQ(t.encode("abc", true), (std::vector<std::int32_t>{1, sabc}));
  EXPECT_EQ(t.encode("abc", false, true), (std::vector<std::int32_t>{sabc, 2}));
  EXPECT_EQ(t.encode("", true), (std::vector<std::int32_t>{1}));
  // A character outside the vocabulary falls back to its UTF-8 bytes; one inside does not.
  EXPECT_EQ(t.encode("\xe2\x82\xac", true), (std::vector<std::int32_t>{1, sp, 0xe2 + 3, 0x82 + 3, 0xac + 3}));
  EXPECT_EQ(t.encode("\xc3\xa9", true), (std::vector<std::int32_t>{1, sp, e_acute}));
  // Invalid UTF-8 (a lone continuation byte, a truncated sequence) still encodes, as bytes.
  EXPECT_EQ(t.encode("\x80", false), (std::vector<std::int32_t>{sp, 0x80 + 3}));
  EXPECT_EQ(t.encode("\xe2\x82", false), (std::vector<std::int32_t>{sp, 0xe2 + 3, 0x82 + 3}));
}

TEST(Llama2cTokenizer, DecodesLikeRunC) {
  const auto t = toy();
  EXPECT_EQ(t.decode_piece(1, 266), std::string("abc"));   // leading space dropped after BOS
  EXPECT_EQ(t.decode_piece(5, 266), " abc");  // kept elsewhere
  EXPECT_EQ(t.decode_piece(5, 3 + 0x41), "A");  // <0x41>
  EXPECT_EQ(t.decode({t.encode("abc abc", true)}), "\n<s>\nabc abc");
  EXPECT_THROW(t.decode_piece(1, 100000), tinfer::InvalidArgument);
  EXPECT_THROW(t.decode_piece(1, -1), tinfer::InvalidArgument);
}

TEST(Llama2cTokenizer, Tok512FromFile) {
  TINFER_REQUIRE_FILE(tok512());
  const auto t = Llama2cTokenizer::load(tok512().string(), 512);
  EXPECT_EQ(t.vocab_size(), 512);
  EXPECT_EQ(t.piece(3), "<0x00>");
  EXPECT_EQ(t.piece(258), "<0xFF>");
  // run.c's ids for these prompts are the leading fed_tokens of reference/stories260K/*.json.
  EXPECT_EQ(t.encode("Once upon a time", true), (std::vector<std::int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(t.encode("The little dog", true), (std::vector<std::int32_t>{1, 291, 376, 400, 428}));
  const auto round = t.encode("Hello, wörld! 123", true);
  EXPECT_EQ(t.decode(std::vector<std::int32_t>(round.begin() + 1, round.end())), "Hello, wörld! 123");  // leading space dropped after BOS
  // Reading without the model's vocabulary size reads to the end of the file.
  EXPECT_EQ(Llama2cTokenizer::load(tok512().string()).vocab_size(), 512);
}

TEST(Llama2cTokenizer, Llama2VocabularyLoads) {
  const auto path = assets_dir() / "llama2-tokenizer" / "tokenizer.bin";
  TINFER_REQUIRE_FILE(path);
  const auto t = Llama2cTokenizer::load(path.string(), 32000);
  EXPECT_EQ(t.vocab_size(), 32000);
  const auto ids = t.encode("Hello world", true);
  // sentencepiece gives [1, 15043, 3186] for "Hello world" with the Llama 2 model.
  EXPECT_EQ(ids, (std::vector<std::int32_t>{1, 15043, 3186}));
}

std::filesystem::path write_temp(const std::string& name, const std::string& bytes) {
  const auto p = tinfer::testing::temp_path(name);
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

TEST(Llama2cTokenizer, MalformedFilesThrowFormatError) {
  TINFER_REQUIRE_FILE(tok512());
  const std::string good = tinfer::testing::read_text_file(tok512());
  // Every truncation point of the first 600 bytes and a sample of the rest.
  for (std::size_t cut = 0; cut < good.size(); cut += (cut < 600 ? 1 : 97)) {
    const auto p = write_temp("tinfer_tok_trunc.bin", good.substr(0, cut));
    EXPECT_THROW(Llama2cTokenizer::load(p.string(), 512), tinfer::FormatError) << "cut at " << cut;
  }
  auto patched = [&](std::size_t off, std::int32_t v) {
    std::string b = good;
    std::memcpy(b.data() + off, &v, 4);
    return write_temp("tinfer_tok_bad.bin", b);
  };
  EXPECT_THROW(Llama2cTokenizer::load(patched(0, -1).string(), 512), tinfer::FormatError);          // max_token_length
  EXPECT_THROW(Llama2cTokenizer::load(patched(0, 0x7fffffff).string(), 512), tinfer::FormatError);  // absurd
  EXPECT_THROW(Llama2cTokenizer::load(patched(8, -7).string(), 512), tinfer::FormatError);          // token 0 length
  EXPECT_THROW(Llama2cTokenizer::load(patched(8, 1 << 30).string(), 512), tinfer::FormatError);
  try {
    Llama2cTokenizer::load(patched(8, 1 << 30).string(), 512);
  } catch (const tinfer::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("token 0 has length"), std::string::npos) << e.what();
    EXPECT_EQ(e.offset(), 8u);
  }
  EXPECT_THROW(Llama2cTokenizer::load(tok512().string(), 1 << 24), tinfer::FormatError);  // more tokens than the file
  EXPECT_THROW(Llama2cTokenizer::load("/nonexistent/tokenizer.bin", 512), tinfer::IoError);
}

}  // namespace

namespace {

// Found by fuzzing: a vocabulary with fewer than 259 tokens has no byte tokens for most bytes;
// byte fallback must not produce ids outside the vocabulary.
TEST(Llama2cTokenizer, TinyVocabularyByteFallbackStaysInRange) {
  const Llama2cTokenizer t({"<unk>", "\n<s>\n", "\n</s>\n", " a", "b", " "}, {0, 0, 0, -1, -2, -3});
  const auto ids = t.encode("a\xC3\xA9\xFFz", true);
  for (auto id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, t.vocab_size());
  }
  EXPECT_NO_THROW((void)t.decode(ids));
}

}  // namespace
