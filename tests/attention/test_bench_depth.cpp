// tinfer-bench's KV-cache flags (llama-bench's -d/--n-depth, -ctk/-ctv, --no-warmup) on the
// bundled demo model: one test per (depth, pp/tg), the JSON names the depth and cache types, the
// markdown labels depth tests "tg2 @ d16" as llama-bench does, and bad values exit 2.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

#include "program_runner.hpp"

namespace {

using tinfer::testing::run_program;
using tinfer::testing::shell_quote;

std::string demo_model() { return std::string(TINFER_SOURCE_DIR) + "/examples/demo-model/tinfer-demo-kjv.gguf"; }

TEST(BenchDepth, JsonCarriesDepthAndCacheTypes) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples not built";
  const auto r = run_program("tinfer-bench", "-m " + shell_quote(demo_model()) +
                                                 " -t 1 -p 8 -n 2 -d 0,16,4 -r 2 -ctk q8_0 -ctv f32 --no-warmup -o json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 6u);  // (pp8, tg2) x depths 0, 16, 4, in that order
  const int depths[] = {0, 0, 16, 16, 4, 4};
  for (std::size_t i = 0; i < j.size(); ++i) {
    EXPECT_EQ(j[i]["n_depth"], depths[i]) << i;
    EXPECT_EQ(j[i]["n_prompt"], i % 2 == 0 ? 8 : 0) << i;
    EXPECT_EQ(j[i]["type_k"], "q8_0");
    EXPECT_EQ(j[i]["type_v"], "f32");
    EXPECT_EQ(j[i]["samples_ns"].size(), 2u);
    EXPECT_GT(j[i]["avg_ts"].get<double>(), 0.0);
  }
}

TEST(BenchDepth, MarkdownLabelsAndDefaults) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples not built";
  const auto r = run_program("tinfer-bench", "-m " + shell_quote(demo_model()) + " -t 1 -p 0 -n 2 -d 16 -r 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("tg2 @ d16"), std::string::npos) << r.out;
  const auto js = run_program("tinfer-bench", "-m " + shell_quote(demo_model()) + " -t 1 -p 0 -n 1 -r 1 -o json");
  ASSERT_EQ(js.exit_code, 0) << js.out;
  const auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j[0]["type_k"], "f16");  // llama-bench's default cache type
  EXPECT_EQ(j[0]["n_depth"], 0);
}

TEST(BenchDepth, BadValuesExit2) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples not built";
  EXPECT_EQ(run_program("tinfer-bench", "-m x -ctk q4_0").exit_code, 2);
  EXPECT_EQ(run_program("tinfer-bench", "-m x -d -5").exit_code, 2);
  EXPECT_EQ(run_program("tinfer-bench", "-m x -ctv").exit_code, 2);
  // Depth plus test length beyond the model's context (the demo model: 256 positions).
  EXPECT_EQ(run_program("tinfer-bench", "-m " + shell_quote(demo_model()) + " -p 8 -n 0 -d 250 -r 1").exit_code, 1);
}

}  // namespace
