// Replays the fuzzers' seed corpus and every saved finding (tests/fuzz/regressions/<target>/)
// through the same target code in the normal build, so a fixed crash stays fixed and the seeds
// stay valid inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../fuzz/fuzz_targets.hpp"

namespace {

const std::filesystem::path kFuzzDir = std::filesystem::path(TINFER_SOURCE_DIR) / "tests" / "fuzz";

void replay(const std::string& target, void (*fn)(const std::uint8_t*, std::size_t)) {
  int files = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const auto dir = kFuzzDir / kind / target;
    if (!std::filesystem::exists(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (!e.is_regular_file() || e.path().filename().string().front() == '.') continue;
      std::ifstream in(e.path(), std::ios::binary);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      SCOPED_TRACE(e.path().string());
      EXPECT_NO_THROW(fn(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
      ++files;
    }
  }
  EXPECT_GT(files, 0) << "no seed files for " << target;
}

TEST(FuzzCorpus, Gguf) { replay("gguf", tinfer_fuzz::fuzz_gguf); }
TEST(FuzzCorpus, Safetensors) { replay("safetensors", tinfer_fuzz::fuzz_safetensors); }
TEST(FuzzCorpus, ConfigJson) { replay("config_json", tinfer_fuzz::fuzz_config_json); }
TEST(FuzzCorpus, Llama2c) { replay("llama2c", tinfer_fuzz::fuzz_llama2c); }
TEST(FuzzCorpus, TokenizerJson) { replay("tokenizer_json", tinfer_fuzz::fuzz_tokenizer_json); }
TEST(FuzzCorpus, TokenizerModel) { replay("tokenizer_model", tinfer_fuzz::fuzz_tokenizer_model); }
TEST(FuzzCorpus, TokenizeBpe) { replay("tokenize_bpe", tinfer_fuzz::fuzz_tokenize_bpe); }
TEST(FuzzCorpus, TokenizeSpm) { replay("tokenize_spm", tinfer_fuzz::fuzz_tokenize_spm); }
TEST(FuzzCorpus, Args) { replay("args", tinfer_fuzz::fuzz_args); }

// The tokenizer seeds are valid files: they must load and round-trip text.
TEST(FuzzCorpus, TokenizerSeedsLoad) {
  for (const char* name : {"gpt2.json", "llama.json", "metaspace.json"}) {
    const auto tok = tinfer::load_hf_tokenizer_json(kFuzzDir / "corpus" / "tokenizer_json" / name);
    EXPECT_GE(tok->vocab_size(), 8) << name;
  }
  const auto gpt2 = tinfer::load_hf_tokenizer_json(kFuzzDir / "corpus" / "tokenizer_json" / "gpt2.json");
  EXPECT_EQ(gpt2->encode("abc ab"), (std::vector<std::int32_t>{6, 3, 4}));
  for (const char* name : {"bpe.model", "no_prefix.model"}) {
    const auto tok = tinfer::load_sentencepiece_model(kFuzzDir / "corpus" / "tokenizer_model" / name);
    EXPECT_GE(tok.vocab_size(), 9) << name;
  }
}

// The seeds are valid files: they must load, not just fail cleanly.
TEST(FuzzCorpus, SeedsAreValidModels) {
  for (const char* name : {"tiny-llama.gguf", "tiny-gpt2.gguf"}) {
    const auto m = tinfer::load_model((kFuzzDir / "corpus" / "gguf" / name).string());
    auto s = m->new_session();
    EXPECT_EQ(m->forward(*s, 1, 0).size(), 8u) << name;
  }
  const tinfer::io::SafetensorsFile st((kFuzzDir / "corpus" / "safetensors" / "two.safetensors").string());
  EXPECT_EQ(st.tensors().size(), 3u);
  const auto m = tinfer::LlamaModel::load_llama2c((kFuzzDir / "corpus" / "llama2c" / "tiny.bin").string());
  EXPECT_EQ(m.config().dim, 8);
}

}  // namespace
