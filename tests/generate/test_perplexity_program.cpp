// tinfer-perplexity against llama.cpp's llama-perplexity on the same GGUF model, text and
// settings (../shared/README.md: -c 128 -b 128 -t 1 -ctk f32 -ctv f32 gives 47 chunks and
// "Final estimate: PPL = 3.0117 +/- 0.08563"). Required: within 0.1%.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "program_runner.hpp"
#include "test_assets.hpp"

namespace {

using tinfer::testing::assets_dir;
using tinfer::testing::reference_dir;
using tinfer::testing::run_program;
using tinfer::testing::shell_quote;

TEST(PerplexityProgram, MatchesLlamaCppOnStories260K) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  const auto model = assets_dir() / "gguf" / "stories260K-f32.gguf";
  const auto text = reference_dir() / "text" / "stories260K-sampled.txt";
  TINFER_REQUIRE_FILE(model);
  TINFER_REQUIRE_FILE(text);
  const auto r = run_program("tinfer-perplexity", "-m " + shell_quote(model.string()) + " -f " + shell_quote(text.string()) + " -c 128 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("[47]"), std::string::npos) << "expected 47 chunks, as llama.cpp:\n" << r.out;
  const auto at = r.out.find("Final estimate: PPL = ");
  ASSERT_NE(at, std::string::npos) << r.out;
  double ppl = 0, err = 0;
  ASSERT_EQ(std::sscanf(r.out.c_str() + at, "Final estimate: PPL = %lf +/- %lf", &ppl, &err), 2);
  EXPECT_LT(std::fabs(ppl - 3.0117) / 3.0117, 1e-3) << "tinfer " << ppl << ", llama.cpp 3.0117";
  EXPECT_NEAR(err, 0.08563, 0.001);
}

TEST(PerplexityProgram, ClearErrors) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  auto r = run_program("tinfer-perplexity", "-m x", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("no text given"), std::string::npos) << r.out;
  const auto model = assets_dir() / "gguf" / "stories260K-f32.gguf";
  TINFER_REQUIRE_FILE(model);
  r = run_program("tinfer-perplexity", "-m " + shell_quote(model.string()) + " -f /nonexistent.txt", true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("/nonexistent.txt"), std::string::npos) << r.out;
  r = run_program("tinfer-perplexity", "-m " + shell_quote(model.string()) + " -f " + shell_quote(model.string()) + " -c 100000", true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("exceeds the model's maximum"), std::string::npos) << r.out;
}

}  // namespace
