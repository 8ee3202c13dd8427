// The bundled demo model (examples/demo-model) against PyTorch's float64 forward pass of the
// same stored weights (reference.json, written by the training recipe): logits within 1e-3
// absolute (the reference keeps 6 significant digits; float32 accumulation adds ~1e-5), and the
// greedy continuation token for token (the recipe checked that its top-two margin never falls
// below 0.13, far above float32 error).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "program_runner.hpp"
#include "test_assets.hpp"
#include "tinfer/generate/generate.hpp"
#include "tinfer/generate/sampler.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/models/model.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"

namespace {

const std::filesystem::path kDemo = std::filesystem::path(TINFER_SOURCE_DIR) / "examples" / "demo-model";

TEST(DemoModel, MatchesPyTorchReference) {
  const auto j = nlohmann::json::parse(tinfer::testing::read_text_file(kDemo / "reference.json"));
  const auto path = (kDemo / "tinfer-demo-kjv.gguf").string();
  EXPECT_LE(std::filesystem::file_size(path), 8u * 1024 * 1024);
  const auto model = tinfer::load_model(path);
  EXPECT_EQ(model->architecture(), "gpt2");
  const tinfer::io::GgufFile f(path);
  const auto tok = tinfer::load_gguf_tokenizer(f);
  const auto prompt = j.at("prompt_ids").get<std::vector<std::int32_t>>();
  EXPECT_EQ(tok->encode(j.at("prompt").get<std::string>()), prompt);
  const auto ref = j.at("logits").get<std::vector<std::vector<double>>>();
  auto s = model->new_session();
  for (std::size_t pos = 0; pos < prompt.size(); ++pos) {
    const auto l = model->forward(*s, prompt[pos], static_cast<int>(pos));
    ASSERT_EQ(l.size(), ref[pos].size());
    for (std::size_t i = 0; i < l.size(); ++i) ASSERT_NEAR(l[i], ref[pos][i], 1e-3) << "position " << pos << " logit " << i;
  }
  auto s2 = model->new_session();
  tinfer::TopPSampler greedy({.temperature = 0.0f});
  const auto res = tinfer::generate(*model, *s2, prompt, greedy, {.max_new_tokens = 32},
                                    [](std::int32_t, std::int32_t) { return true; });
  EXPECT_EQ(res.tokens, j.at("greedy_ids").get<std::vector<std::int32_t>>());
  EXPECT_EQ(tok->decode(res.tokens), j.at("greedy_text").get<std::string>());
}

TEST(DemoModel, GenerateUsesItWithoutModelFlag) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  const auto r = tinfer::testing::run_program("tinfer-generate", "-p 'In the beginning' -n 8 --temp 0");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("In the beginning of the LORD.", 0), 0u) << r.out;
}

}  // namespace
