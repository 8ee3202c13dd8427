// tinfer-convert: Hugging Face folders written out as GGUF give the same model as the
// references: run.c's stories260K logits, the exact GPT-2 forward, and tensors bit-identical to
// llama.cpp's own F16 conversion of the same weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "program_runner.hpp"
#include "test_assets.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/models/model.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"

namespace {

using tinfer::testing::assets_dir;
using tinfer::testing::reference_dir;
using tinfer::testing::run_program;
using tinfer::testing::shell_quote;

class ConvertProgram : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  }
};

TEST_F(ConvertProgram, Stories260KLlamaRoundTripsToRunCLogits) {
  const auto folder = assets_dir() / "hf" / "stories260K-f32";
  const auto ref_path = reference_dir() / "stories260K" / "once_upon_a_time.json";
  TINFER_REQUIRE_FILE(folder);
  TINFER_REQUIRE_FILE(ref_path);
  const auto out = tinfer::testing::temp_path("stories.gguf");
  const auto r = run_program("tinfer-convert", "--outtype f32 -z " + shell_quote((assets_dir() / "stories260K" / "tok512.model").string()) + " " +
                                                   shell_quote(folder.string()) + " " + shell_quote(out.string()), true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(tinfer::testing::read_text_file(ref_path));
  const auto fed = j.at("fed_tokens").get<std::vector<std::int32_t>>();
  const auto logits = j.at("logits_first_positions").get<std::vector<std::vector<float>>>();
  const auto model = tinfer::load_model(out.string());
  auto s = model->new_session();
  for (std::size_t pos = 0; pos < logits.size(); ++pos) {
    const auto l = model->forward(*s, fed[pos], static_cast<int>(pos));
    for (std::size_t i = 0; i < l.size(); ++i) ASSERT_NEAR(l[i], logits[pos][i], 1e-4) << pos << " " << i;
  }
  const tinfer::io::GgufFile f(out.string());
  const auto tok = tinfer::load_gguf_tokenizer(f);
  EXPECT_EQ(tok->encode("Once upon a time"), (std::vector<std::int32_t>{1, 403, 407, 261, 378}));
  std::filesystem::remove(out);
}

TEST_F(ConvertProgram, TinyGpt2MatchesLlamaCppF16FileBitForBit) {
  const auto folder = assets_dir() / "hf" / "tiny-gpt2-f32";
  const auto cpp_f16 = assets_dir() / "gguf" / "tiny-gpt2-F16.gguf";
  const auto ref_path = reference_dir() / "gguf" / "tiny-gpt2-f32.json";
  TINFER_REQUIRE_FILE(folder);
  TINFER_REQUIRE_FILE(cpp_f16);
  TINFER_REQUIRE_FILE(ref_path);
  const auto out16 = tinfer::testing::temp_path("gpt2-f16.gguf"), out32 = tinfer::testing::temp_path("gpt2-f32.gguf");
  ASSERT_EQ(run_program("tinfer-convert", "--outtype f16 " + shell_quote(folder.string()) + " " + shell_quote(out16.string())).exit_code, 0);
  ASSERT_EQ(run_program("tinfer-convert", "--outtype f32 " + shell_quote(folder.string()) + " " + shell_quote(out32.string())).exit_code, 0);
  // Same tensor names; every tensor stored in the same type has the same bytes.
  const tinfer::io::GgufFile ours(out16.string()), theirs(cpp_f16.string());
  int compared = 0;
  for (const auto& t : theirs.tensors()) {
    const auto* o = ours.find_tensor(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    EXPECT_EQ(o->dims, t.dims) << t.name;
    if (o->type != t.type) continue;
    const auto a = ours.tensor_data(*o), b = theirs.tensor_data(t);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0) << t.name;
    ++compared;
  }
  EXPECT_GE(compared, 20);
  // Same tokenizer behaviour.
  const auto t1 = tinfer::load_gguf_tokenizer(ours), t2 = tinfer::load_gguf_tokenizer(theirs);
  for (const char* text : {"Hello world, it's me!", " spaces  and\ttabs\n", "<|endoftext|>"}) EXPECT_EQ(t1->encode(text), t2->encode(text)) << text;
  // The F32 conversion reproduces the exact logits.
  const auto j = nlohmann::json::parse(tinfer::testing::read_text_file(ref_path));
  const auto tokens = j.at("tokens").get<std::vector<std::int32_t>>();
  const auto exact = j.at("exact_logits").get<std::vector<std::vector<double>>>();
  const auto model = tinfer::load_model(out32.string());
  auto s = model->new_session();
  double worst = 0;
  for (std::size_t pos = 0; pos < tokens.size(); ++pos) {
    const auto l = model->forward(*s, tokens[pos], static_cast<int>(pos));
    for (std::size_t i = 0; i < l.size(); ++i) worst = std::max(worst, std::fabs(l[i] - exact[pos][i]));
  }
  EXPECT_LT(worst, 1e-4);
  std::filesystem::remove(out16);
  std::filesystem::remove(out32);
}

TEST_F(ConvertProgram, BadInput) {
  auto r = run_program("tinfer-convert", "/nonexistent /tmp/x.gguf", true);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("/nonexistent"), std::string::npos) << r.out;
  r = run_program("tinfer-convert", "--outtype q4 a b", true);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = run_program("tinfer-convert", "onlyone", true);
  EXPECT_EQ(r.exit_code, 2) << r.out;
}

}  // namespace
