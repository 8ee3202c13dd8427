// tinfer-bench on the bundled demo model: the JSON carries llama-bench's keys with consistent
// values (one object per test, t/s = tokens / time), the markdown table has one row per test,
// and bad command lines exit 2.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

#include "program_runner.hpp"

namespace {

using tinfer::testing::run_program;
using tinfer::testing::shell_quote;

std::string demo_model() { return std::string(TINFER_SOURCE_DIR) + "/examples/demo-model/tinfer-demo-kjv.gguf"; }

TEST(BenchProgram, JsonHasLlamaBenchKeys) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples not built";
  const auto r = run_program("tinfer-bench", "-m " + shell_quote(demo_model()) + " -t 1,2 -p 8 -n 4 -r 2 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 4u);  // (pp8, tg4) x (1, 2 threads)
  int pp = 0, tg = 0;
  for (const auto& t : j) {
    for (const char* key : {"model_filename", "model_type", "model_size", "model_n_params", "n_threads", "n_prompt", "n_gen",
                            "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts"}) {
      EXPECT_TRUE(t.contains(key)) << key;
    }
    EXPECT_EQ(t["model_filename"], demo_model());
    EXPECT_GT(t["model_size"].get<double>(), 1e6);   // 3.75M parameters in F16: ~7.5 MB of tensors
    EXPECT_GT(t["model_n_params"].get<double>(), 3e6);
    EXPECT_EQ(t["samples_ts"].size(), 2u);
    const int n = t["n_prompt"].get<int>() + t["n_gen"].get<int>();
    double mean = 0;
    for (std::size_t i = 0; i < 2; ++i) {
      const double ns = t["samples_ns"][i].get<double>(), ts = t["samples_ts"][i].get<double>();
      EXPECT_GT(ns, 0);
      EXPECT_NEAR(ts, 1e9 * n / ns, 1e-6 * ts);
      mean += ts / 2;
    }
    EXPECT_NEAR(t["avg_ts"].get<double>(), mean, 1e-6 * mean);
    if (t["n_prompt"] == 8 && t["n_gen"] == 0) ++pp;
    if (t["n_prompt"] == 0 && t["n_gen"] == 4) ++tg;
  }
  EXPECT_EQ(pp, 2);
  EXPECT_EQ(tg, 2);
  EXPECT_EQ(j[0]["n_threads"], 1);
  EXPECT_EQ(j[2]["n_threads"], 2);
}

TEST(BenchProgram, MarkdownTable) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples not built";
  const auto r = run_program("tinfer-bench", "-m " + shell_quote(demo_model()) + " -t 1 -p 4 -n 2 -r 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("| model"), std::string::npos);
  EXPECT_NE(r.out.find("t/s |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pp4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tg2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gpt2"), std::string::npos) << r.out;
}

TEST(BenchProgram, BadArguments) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples not built";
  EXPECT_EQ(run_program("tinfer-bench", "").exit_code, 2);                                     // no model
  EXPECT_EQ(run_program("tinfer-bench", "-m x -o csv").exit_code, 2);                          // bad format
  EXPECT_EQ(run_program("tinfer-bench", "-m x -t 1,zero").exit_code, 2);                       // bad list
  EXPECT_EQ(run_program("tinfer-bench", "-m /nonexistent/model.gguf -r 1").exit_code, 1);      // cannot open
}

}  // namespace
