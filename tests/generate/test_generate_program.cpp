// tinfer-generate end to end: its stdout equals run.c's for the reference prompts, and bad
// command lines or files give a clear message and a non-zero exit.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>

#include "program_runner.hpp"
#include "test_assets.hpp"
#include "tinfer/tokenizer/llama2c_tokenizer.hpp"

namespace {

using tinfer::testing::assets_dir;
using tinfer::testing::reference_dir;

using tinfer::testing::RunResult;

std::string quote(const std::string& s) { return tinfer::testing::shell_quote(s); }
RunResult run(const std::string& args, bool merge_stderr = false) {
  return tinfer::testing::run_program("tinfer-generate", args, merge_stderr);
}

class GenerateProgram : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(TINFER_EXAMPLES_DIR).empty()) GTEST_SKIP() << "examples are not built (TINFER_BUILD_EXAMPLES=OFF)";
  }
};

TEST_F(GenerateProgram, StdoutMatchesRunC) {
  const auto model = assets_dir() / "stories260K" / "stories260K.bin";
  TINFER_REQUIRE_FILE(model);
  for (const char* name : {"empty", "once_upon_a_time", "little_dog"}) {
    const auto ref_path = reference_dir() / "stories260K" / (std::string(name) + ".json");
    TINFER_REQUIRE_FILE(ref_path);
    const auto j = nlohmann::json::parse(tinfer::testing::read_text_file(ref_path));
    const std::string prompt = j.at("prompt");
    // run.c ran 256 positions: 257 - |prompt incl. BOS| new tokens (the tokenizer's agreement
    // with run.c is tested on its own).
    const auto tokenizer = tinfer::Llama2cTokenizer::load((assets_dir() / "stories260K" / "tok512.bin").string(), 512);
    const int n_prompt = static_cast<int>(tokenizer.encode(prompt, true).size());
    const auto r = run("-m " + quote(model.string()) + " -z " + quote((assets_dir() / "stories260K" / "tok512.bin").string()) +
                       " -p " + quote(prompt) + " -n " + std::to_string(257 - n_prompt) + " --temp 0 -t 2");
    EXPECT_EQ(r.exit_code, 0) << name;
    EXPECT_EQ(r.out, j.at("stdout").get<std::string>()) << name;
  }
}

TEST_F(GenerateProgram, HelpDocumentsEveryFlag) {
  const auto r = run("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--model", "--tokenizer", "--prompt", "--file", "--n-predict", "--ctx-size", "--threads", "--seed",
                           "--temp", "--top-p", "--help"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
}

TEST_F(GenerateProgram, BadInputGivesClearErrorAndNonZeroExit) {
  const auto model = assets_dir() / "stories260K" / "stories260K.bin";
  const auto tok = assets_dir() / "stories260K" / "tok512.bin";
  auto expect_error = [&](const std::string& args, int code, const std::string& needle) {
    const auto r = run(args, true);
    EXPECT_EQ(r.exit_code, code) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(needle), std::string::npos) << args << "\n" << r.out;
  };
  expect_error("-p", 2, "needs a value");
  expect_error("-m", 2, "needs a value");
  expect_error("-m x --bogus", 2, "unknown option '--bogus'");
  expect_error("-m x -n abc", 2, "not a valid number");
  expect_error("-m x -n -5", 2, "outside");
  expect_error("-m x -t 0", 2, "outside");
  expect_error("-m /nonexistent/model.bin -z x", 1, "/nonexistent/model.bin");
  // A file that is not a checkpoint: the tokenizer file passed as the model.
  if (std::filesystem::exists(tok)) expect_error("-m " + quote(tok.string()) + " -z " + quote(tok.string()), 1, "error:");
  if (std::filesystem::exists(model)) {
    expect_error("-m " + quote(model.string()) + " -z " + quote(tok.string()) + " -c 100000", 1, "exceeds the model's maximum");
    expect_error("-m " + quote(model.string()) + " -z " + quote(tok.string()) + " -c 3 -p 'Once upon a time'", 1,
                 "context holds 3");
  }
}

}  // namespace
