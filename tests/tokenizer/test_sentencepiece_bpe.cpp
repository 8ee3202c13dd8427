// SentencePiece-style BPE against llama.cpp's llama-spm test vectors and sentencepiece itself.
#include <gtest/gtest.h>

#include <algorithm>

#include "llamacpp_vectors.hpp"
#include "test_assets.hpp"
#include "tinfer/tokenizer/llama2c_vocab.hpp"
#include "tinfer/tokenizer/sentencepiece_model.hpp"

namespace {

using tinfer::testing::assets_dir;

std::filesystem::path llama_model() { return assets_dir() / "llama2-tokenizer/tokenizer.model"; }

TEST(SentencePieceBpe, LlamaCppVectors) {
  TINFER_REQUIRE_FILE(llama_model());
  TINFER_REQUIRE_FILE(assets_dir() / "llamacpp-vocab/ggml-vocab-llama-spm.gguf.inp");
  const auto tok = tinfer::load_sentencepiece_model(llama_model());
  EXPECT_EQ(tok.vocab_size(), 32000);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_TRUE(tok.options().add_dummy_prefix);
  EXPECT_FALSE(tok.options().remove_extra_whitespaces);
  const auto cases = tinfer::testing::read_llamacpp_vectors(assets_dir() / "llamacpp-vocab/ggml-vocab-llama-spm.gguf.inp");
  ASSERT_EQ(cases.size(), 46u);
  for (const auto& c : cases) {
    const auto ids = tok.encode(c.text, {.add_bos = false});
    EXPECT_EQ(ids, c.ids) << "input: \"" << tinfer::testing::printable(c.text) << "\"";
    // Decoding drops the dummy-prefix space again, so every input round-trips (with or
    // without BOS, which decodes to nothing).
    EXPECT_EQ(tok.decode(ids), c.text) << "input: \"" << tinfer::testing::printable(c.text) << "\"";
    EXPECT_EQ(tok.decode(tok.encode(c.text)), c.text);
  }
}

// Expected ids produced by python3-sentencepiece 0.1.97 (Debian) with
// SentencePieceProcessor(model_file="tok512.model").encode(text); tok512.model sets
// remove_extra_whitespaces (a NormalizerSpec default), which the third and sixth cases exercise.
TEST(SentencePieceBpe, Tok512MatchesSentencepiece) {
  const auto path = assets_dir() / "stories260K/tok512.model";
  TINFER_REQUIRE_FILE(path);
  const auto tok = tinfer::load_sentencepiece_model(path);
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_TRUE(tok.options().remove_extra_whitespaces);
  const std::vector<std::pair<std::string, std::vector<std::int32_t>>> cases = {
      {"Once upon a time, there was a little girl named Lily.",
       {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426}},
      {"Hello world", {346, 306, 414, 263, 304, 341}},
      {" Hello  world ", {346, 306, 414, 263, 304, 341}},
      {"The cat sat on the mat.\nIt was happy!", {291, 280, 294, 262, 294, 353, 265, 284, 294, 426, 13, 442, 413, 286, 393, 443}},
      {"F\xC3\xBChrer \xF0\x9F\xA6\x99 \xE6\x97\xA5\xE6\x9C\xAC",
       {410, 453, 198, 191, 415, 276, 420, 410, 243, 162, 169, 156, 410, 233, 154, 168, 233, 159, 175}},
      {"  leading spaces", {278, 411, 380, 299, 262, 427, 412, 331, 419}},
      {"a\tb", {261, 12, 430}},
      {"", {}},
      {"x", {410, 444}},
  };
  for (const auto& [text, want] : cases) {
    EXPECT_EQ(tok.encode(text, {.add_bos = false}), want) << "input: \"" << text << "\"";
    auto with_bos = want;
    with_bos.insert(with_bos.begin(), 1);
    EXPECT_EQ(tok.encode(text), with_bos);
  }
  // sentencepiece's decode of these ids: the dummy prefix is dropped, collapsed spaces stay collapsed.
  EXPECT_EQ(tok.decode(tok.encode(" Hello  world ")), "Hello world");
  EXPECT_EQ(tok.decode(tok.encode("The cat sat on the mat.\nIt was happy!")), "The cat sat on the mat.\nIt was happy!");
}

// Decoded text produced by python3-sentencepiece 0.1.97's SentencePieceProcessor.decode(ids) on
// tok512.model, whose TrainerSpec.unk_surface is the literal text " \342\201\207 ". The dummy
// prefix is dropped from the first ordinary piece only, not from <unk>'s surface.
TEST(SentencePieceBpe, Tok512DecodeMatchesSentencepiece) {
  const auto path = assets_dir() / "stories260K/tok512.model";
  TINFER_REQUIRE_FILE(path);
  const auto tok = tinfer::load_sentencepiece_model(path);
  EXPECT_EQ(tok.decode(std::vector<std::int32_t>{1, 403, 407, 0, 261}), "Once upon \\342\\201\\207  a");
  EXPECT_EQ(tok.decode(std::vector<std::int32_t>{0, 346, 306}), " \\342\\201\\207  Hell");
  EXPECT_EQ(tok.decode(std::vector<std::int32_t>{410, 233, 154, 168, 233, 159, 175, 2}), "\xE6\x97\xA5\xE6\x9C\xAC");
}

// llama2.c's tokenizer.bin holds the same vocabulary as tokenizer.model; without
// remove_extra_whitespaces (Llama 2 does not set it) both must tokenize identically.
TEST(SentencePieceBpe, Llama2cBinMatchesModel) {
  TINFER_REQUIRE_FILE(llama_model());
  TINFER_REQUIRE_FILE(assets_dir() / "llama2-tokenizer/tokenizer.bin");
  const auto model = tinfer::load_sentencepiece_model(llama_model());
  const auto bin = tinfer::load_llama2c_tokenizer(assets_dir() / "llama2-tokenizer/tokenizer.bin");
  ASSERT_EQ(bin.vocab_size(), model.vocab_size());
  EXPECT_EQ(bin.bos_id(), 1);
  EXPECT_EQ(bin.eos_id(), 2);
  EXPECT_EQ(bin.unk_id(), 0);
  for (std::int32_t id = 0; id < model.vocab_size(); ++id) {
    ASSERT_EQ(bin.token_text(id), model.token_text(id)) << "id " << id;
    ASSERT_EQ(bin.token_type(id), model.token_type(id)) << "id " << id;
  }
  for (const auto& c : tinfer::testing::read_llamacpp_vectors(assets_dir() / "llamacpp-vocab/ggml-vocab-llama-spm.gguf.inp"))
    EXPECT_EQ(bin.encode(c.text), model.encode(c.text)) << tinfer::testing::printable(c.text);

  // The stories260K pair: tok512.bin is llama2.c's export of tok512.model.
  const auto s = assets_dir() / "stories260K";
  const auto m512 = tinfer::load_sentencepiece_model(s / "tok512.model");
  const auto b512 = tinfer::load_llama2c_tokenizer(s / "tok512.bin");
  ASSERT_EQ(b512.vocab_size(), 512);
  for (std::int32_t id = 0; id < 512; ++id) EXPECT_EQ(b512.token_text(id), m512.token_text(id)) << "id " << id;
  EXPECT_EQ(b512.encode("Once upon a time"), m512.encode("Once upon a time"));
}

TEST(SentencePieceBpe, SpecialTokensAndOptions) {
  TINFER_REQUIRE_FILE(llama_model());
  const auto tok = tinfer::load_sentencepiece_model(llama_model());
  // Control tokens written in the text are ordinary characters unless parse_special is set.
  const auto plain = tok.encode("<s>Hi</s>", {.add_bos = false});
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  const auto special = tok.encode("<s>Hi</s>", {.add_bos = false, .parse_special = true});
  ASSERT_GE(special.size(), 3u);
  EXPECT_EQ(special.front(), 1);
  EXPECT_EQ(special.back(), 2);
  // After a special token the dummy prefix is added again (as llama.cpp does).
  EXPECT_EQ(std::vector<std::int32_t>(special.begin() + 1, special.end() - 1), tok.encode("Hi", {.add_bos = false}));
  EXPECT_EQ(tok.encode("Hi", {.add_eos = true}).back(), 2);
  EXPECT_EQ(tok.decode(special), "Hi");
  EXPECT_EQ(tok.decode(special, {.render_special = true}), "<s>Hi</s>");
  EXPECT_EQ(tok.token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(tok.decode({1, 15043, 3186, 2}), "Hello world");
  EXPECT_THROW(tok.decode(std::vector<std::int32_t>{32000}), tinfer::InvalidArgument);
  EXPECT_THROW(tok.decode(std::vector<std::int32_t>{-1}), tinfer::InvalidArgument);
}

}  // namespace
