// GPT-2 byte-level BPE against llama.cpp's test vectors and across the three file layouts.
#include <gtest/gtest.h>

#include <memory>

#include "llamacpp_vectors.hpp"
#include "test_assets.hpp"
#include "tinfer/tokenizer/byte_level_bpe.hpp"

namespace {

using tinfer::ByteLevelBpeTokenizer;
using tinfer::testing::assets_dir;

std::filesystem::path gpt2_dir() { return assets_dir() / "gpt2-bpe"; }

TEST(Gpt2Bpe, LlamaCppVectors) {
  TINFER_REQUIRE_FILE(gpt2_dir() / "encoder.json");
  TINFER_REQUIRE_FILE(assets_dir() / "llamacpp-vocab/ggml-vocab-gpt-2.gguf.inp");
  const auto tok = ByteLevelBpeTokenizer::from_vocab_and_merges(gpt2_dir() / "encoder.json", gpt2_dir() / "vocab.bpe");
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.eos_id(), 50256);
  const auto cases = tinfer::testing::read_llamacpp_vectors(assets_dir() / "llamacpp-vocab/ggml-vocab-gpt-2.gguf.inp");
  ASSERT_EQ(cases.size(), 46u);
  for (const auto& c : cases) {
    EXPECT_EQ(tok.encode(c.text), c.ids) << "input: \"" << tinfer::testing::printable(c.text) << "\"";
    // Byte-level BPE is lossless: every input round-trips.
    EXPECT_EQ(tok.decode(tok.encode(c.text)), c.text);
  }
}

}  // namespace
