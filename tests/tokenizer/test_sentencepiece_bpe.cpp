// SentencePiece-style BPE against llama.cpp's llama-spm test vectors and sentencepiece itself.
#include <gtest/gtest.h>

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

}  // namespace
