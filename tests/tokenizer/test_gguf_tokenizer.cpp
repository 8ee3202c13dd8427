// Tokenizers read from GGUF metadata against llama.cpp's own tokenizer test vectors (inputs
// separated by __ggml_vocab_test__ lines; expected ids one line per input, without BOS).
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "test_assets.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"

namespace {

using tinfer::testing::assets_dir;

std::vector<std::string> split_inputs(const std::string& text) {
  std::vector<std::string> out;
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::size_t start = 0;
  for (;;) {
    const auto at = text.find(sep, start);
    if (at == std::string::npos) break;
    out.push_back(text.substr(start, at - start));
    start = at + sep.size();
  }
  return out;
}

std::vector<std::vector<std::int32_t>> read_ids(const std::string& text) {
  std::vector<std::vector<std::int32_t>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<std::int32_t> ids;
    std::int32_t v;
    while (ls >> v) ids.push_back(v);
    out.push_back(ids);
  }
  return out;
}

class LlamaCppVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCppVectors, GgufVocabularyMatchesEveryVector) {
  const auto base = assets_dir() / "llamacpp-vocab" / ("ggml-vocab-" + GetParam() + ".gguf");
  TINFER_REQUIRE_FILE(base);
  const tinfer::io::GgufFile f(base.string());
  ASSERT_TRUE(tinfer::gguf_has_tokenizer(f));
  const auto tok = tinfer::load_gguf_tokenizer(f);
  const auto inputs = split_inputs(tinfer::testing::read_text_file(base.string() + ".inp"));
  const auto expected = read_ids(tinfer::testing::read_text_file(base.string() + ".out"));
  ASSERT_GE(expected.size(), inputs.size());
  ASSERT_GT(inputs.size(), 10u);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(tok->encode(inputs[i], {.add_bos = false}), expected[i]) << "input " << i << ": [" << inputs[i] << "]";
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, LlamaCppVectors, ::testing::Values("gpt-2", "llama-spm"),
                         [](const auto& info) { return info.param == "gpt-2" ? std::string("gpt2") : std::string("llama_spm"); });

TEST(GgufTokenizer, Stories260KMatchesRunCPromptTokens) {
  const auto path = assets_dir() / "gguf" / "stories260K-f32.gguf";
  TINFER_REQUIRE_FILE(path);
  const tinfer::io::GgufFile f(path.string());
  const auto tok = tinfer::load_gguf_tokenizer(f);
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_TRUE(tok->add_bos_by_default());
  // run.c's ids (reference/stories260K/*.json fed_tokens).
  EXPECT_EQ(tok->encode("Once upon a time"), (std::vector<std::int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok->encode("The little dog"), (std::vector<std::int32_t>{1, 291, 376, 400, 428}));
}

TEST(GgufTokenizer, TinyGpt2Vocabulary) {
  const auto path = assets_dir() / "gguf" / "tiny-gpt2-f32.gguf";
  TINFER_REQUIRE_FILE(path);
  const tinfer::io::GgufFile f(path.string());
  const auto tok = tinfer::load_gguf_tokenizer(f);
  EXPECT_EQ(tok->vocab_size(), 1281);
  const auto ids = tok->encode("Hello world, it's me!");
  EXPECT_EQ(tok->decode(ids), "Hello world, it's me!");
  EXPECT_EQ(tok->encode("<|endoftext|>", {.parse_special = true}), (std::vector<std::int32_t>{1280}));
}

}  // namespace
