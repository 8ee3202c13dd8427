// Robustness and scaling of both tokenizer families (Llama 2 SentencePiece BPE, GPT-2
// byte-level BPE): empty input, embedded NUL bytes, invalid UTF-8, a 10 MB text and a 1 MB run
// of one letter. Each must not crash, must round-trip (decode(encode(x)) == x: both families
// keep every byte, through byte tokens), and must finish in time: merging is O(n log n), so a
// quadratic blow-up would show as minutes here. (Where a reference implementation exists, the
// ids are compared in tokenizer/oracle/test_sentencepiece_oracle.cpp.)
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "test_assets.hpp"
#include "tokenizer/text_corpus.hpp"
#include "tinfer/tokenizer/byte_level_bpe.hpp"
#include "tinfer/tokenizer/sentencepiece_model.hpp"

namespace {

using tinfer::testing::assets_dir;

// Generous bounds for a Release build on a shared 2-core machine; unoptimized builds get 10x.
#ifdef NDEBUG
constexpr double kSlack = 1.0;
#else
constexpr double kSlack = 10.0;
#endif

std::unique_ptr<tinfer::Tokenizer> load(const std::string& family) {
  if (family == "llama") {
    const auto p = assets_dir() / "llama2-tokenizer/tokenizer.model";
    if (!std::filesystem::exists(p)) return nullptr;
    return std::make_unique<tinfer::SentencePieceBpeTokenizer>(tinfer::load_sentencepiece_model(p));
  }
  const auto d = assets_dir() / "gpt2-bpe";
  if (!std::filesystem::exists(d / "encoder.json")) return nullptr;
  return std::make_unique<tinfer::ByteLevelBpeTokenizer>(
      tinfer::ByteLevelBpeTokenizer::from_vocab_and_merges(d / "encoder.json", d / "vocab.bpe"));
}

class TokenizerScale : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    tok_ = load(GetParam());
    if (!tok_) GTEST_SKIP() << "tokenizer files for " << GetParam() << " not found; set TINFER_ASSETS";
  }

  // Encodes (no BOS), checks the round trip, returns the ids; `seconds` gets the encode time.
  std::vector<std::int32_t> round_trip(const std::string& text, double* seconds = nullptr) {
    const auto t0 = std::chrono::steady_clock::now();
    auto ids = tok_->encode(text, {.add_bos = false});
    const auto t1 = std::chrono::steady_clock::now();
    if (seconds) *seconds = std::chrono::duration<double>(t1 - t0).count();
    const std::string back = tok_->decode(ids);
    EXPECT_TRUE(back == text) << GetParam() << ": round trip changed a " << text.size() << "-byte text";
    return ids;
  }

  std::unique_ptr<tinfer::Tokenizer> tok_;
};

TEST_P(TokenizerScale, EmptyInput) {
  EXPECT_TRUE(tok_->encode("", {.add_bos = false}).empty());
  const auto with_bos = tok_->encode("", {.add_bos = true});
  EXPECT_EQ(with_bos.size(), tok_->bos_id() >= 0 ? 1u : 0u);
  EXPECT_EQ(tok_->decode(std::vector<std::int32_t>{}), "");
}

TEST_P(TokenizerScale, EmbeddedNulBytes) {
  for (const std::string& s : {std::string("\0", 1), std::string("a\0b", 3), std::string("\0\0\0 x \0", 7),
                              std::string("hello\0world", 11)}) {
    const auto ids = round_trip(s);
    EXPECT_FALSE(ids.empty());
  }
}

TEST_P(TokenizerScale, InvalidUtf8) {
  std::mt19937 rng(3);
  for (const std::string& s : {std::string("\xFF"), std::string("\xC3"), std::string("a\xE2\x82"), std::string("\xED\xA0\x80"),
                              std::string("\xC0\xAF"), std::string("\xF4\x90\x80\x80"), std::string("\x80\x80\x80 abc")})
    round_trip(s);
  for (int t = 0; t < 300; ++t) {  // random bytes
    std::string s(1 + rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    round_trip(s);
  }
}

TEST_P(TokenizerScale, TenMegabytes) {
  tinfer::testing::TextGenerator gen(99);
  const std::string text = gen.text(10u << 20);
  double seconds = 0;
  const auto ids = round_trip(text, &seconds);
  std::printf("[scale] %s: 10 MB (%zu bytes) -> %zu ids in %.2f s\n", GetParam().c_str(), text.size(), ids.size(), seconds);
  EXPECT_LT(seconds, 20.0 * kSlack);
}

TEST_P(TokenizerScale, OneMegabyteOfOneLetter) {
  for (const std::string letter : {"a", " ", "\xE6\x97\xA5"}) {
    std::string text;
    while (text.size() < (1u << 20)) text += letter;
    double seconds = 0;
    const auto ids = round_trip(text, &seconds);
    std::printf("[scale] %s: 1 MB run of \"%s\" -> %zu ids in %.2f s\n", GetParam().c_str(), letter.c_str(), ids.size(),
                seconds);
    EXPECT_LT(seconds, 5.0 * kSlack);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TokenizerScale, ::testing::Values("llama", "gpt2"));

}  // namespace
