// tinfer-generate end to end: its stdout equals run.c's for the reference prompts, and bad
// command lines or files give a clear message and a non-zero exit.
#include <gtest/gtest.h>

#include <algorithm>
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
                           "--temp", "--top-k", "--top-p", "--min-p", "--typical", "--repeat-penalty", "--repeat-last-n",
                           "--presence-penalty", "--frequency-penalty", "--logit-bias", "--reverse-prompt", "--ignore-eos",
                           "--cache-type-k", "--cache-type-v", "--keep", "--no-context-shift", "--conversation", "--interactive",
                           "--parallel", "--model-draft", "--draft", "--help", "-ctk", "-ctv", "-cnv", "-np", "-md"}) {
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
  expect_error("-m x --temp nan", 2, "not a finite number");
  expect_error("-m x --logit-bias 12", 2, "--logit-bias");
  expect_error("-m x -ctk q4_0", 2, "unknown KV cache type");
  expect_error("--logit-bias 99999+1 -n 1", 2, "outside the vocabulary");
  expect_error("-n 4 -md /nonexistent/draft.gguf", 1, "/nonexistent/draft.gguf");
  expect_error("-m /nonexistent/model.bin -z x", 1, "/nonexistent/model.bin");
  // A file that is not a checkpoint: the tokenizer file passed as the model.
  if (std::filesystem::exists(tok)) expect_error("-m " + quote(tok.string()) + " -z " + quote(tok.string()), 1, "error:");
  if (std::filesystem::exists(model)) {
    expect_error("-m " + quote(model.string()) + " -z " + quote(tok.string()) + " -c 100000", 1, "exceeds the model's maximum");
    expect_error("-m " + quote(model.string()) + " -z " + quote(tok.string()) + " -c 3 -p 'Once upon a time'", 1,
                 "context holds 3");
  }
}

// The bundled demo model (no -m) from here on.
std::string stdout_of(const std::string& args) {
  const auto r = run(args);
  EXPECT_EQ(r.exit_code, 0) << args;
  return r.out;
}

TEST_F(GenerateProgram, StopStringEndsTheTextBeforeIt) {
  const std::string full = stdout_of("-p 'And it came to pass' -n 40 --temp 0");
  const std::string prompt = "And it came to pass";
  ASSERT_EQ(full.rfind(prompt, 0), 0u);
  const auto at = full.find("said", prompt.size());
  ASSERT_NE(at, std::string::npos) << full;
  const std::string cut = stdout_of("-p 'And it came to pass' -n 40 --temp 0 -r said -r 'never in this text'");
  EXPECT_EQ(cut, full.substr(0, at) + "\n");
}

TEST_F(GenerateProgram, SamplingFlagsAreSeededAndChangeTheText) {
  const std::string a = stdout_of("-p 'In the beginning' -n 30 -s 9 --temp 0.9 --top-k 20 --min-p 0.02 --repeat-penalty 1.3");
  EXPECT_EQ(a, stdout_of("-p 'In the beginning' -n 30 -s 9 --temp 0.9 --top-k 20 --min-p 0.02 --repeat-penalty 1.3"));
  EXPECT_NE(a, stdout_of("-p 'In the beginning' -n 30 -s 10 --temp 0.9 --top-k 20 --min-p 0.02 --repeat-penalty 1.3"));
  // Greedy with a strong repeat penalty differs from plain greedy (the demo model loops on
  // "I will" when greedy).
  EXPECT_NE(stdout_of("-p 'And it came to pass' -n 40 --temp 0"),
            stdout_of("-p 'And it came to pass' -n 40 --temp 0 --repeat-penalty 2 --repeat-last-n 16"));
}

TEST_F(GenerateProgram, ParallelAndSpeculativeGiveTheSingleSequenceText) {
  const std::string one = stdout_of("-p 'And it came to pass' -n 30 --temp 0");
  // -np 3, greedy: three copies of the same text, each on its own paragraph.
  const std::string three = stdout_of("-p 'And it came to pass' -n 30 --temp 0 -np 3");
  EXPECT_EQ(three, one + "\n" + one + "\n" + one);
  // Speculative decoding with the model as its own draft: same text, every proposal accepted.
  const std::string demo = std::string(TINFER_SOURCE_DIR) + "/examples/demo-model/tinfer-demo-kjv.gguf";
  const std::string args = "-p 'And it came to pass' -n 30 --temp 0 -md " + quote(demo) + " --draft 4";
  EXPECT_EQ(stdout_of(args), one);
  const auto r = run(args, true);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("(100.0%)"), std::string::npos) << r.out;
}

// -ctk/-ctv reach the session: quantized caches run, and an F16 cache changes greedy text at
// most slightly (the first tokens agree with the F32 cache on this prompt).
TEST_F(GenerateProgram, CacheTypes) {
  const std::string f32 = stdout_of("-p 'And it came to pass' -n 8 --temp 0");
  const std::string q8 = stdout_of("-p 'And it came to pass' -n 8 --temp 0 -ctk f16 -ctv q8_0");
  EXPECT_EQ(q8.substr(0, std::string("And it came to pass").size()), "And it came to pass");
  EXPECT_EQ(stdout_of("-p 'And it came to pass' -n 8 --temp 0 -ctk f16 -ctv f16").substr(0, 24), f32.substr(0, 24));
}

TEST_F(GenerateProgram, ContextShiftOrStop) {
  const auto shifted = run("-p 'And it came to pass' -n 100 --temp 0 -c 32 --keep 1", true);
  EXPECT_EQ(shifted.exit_code, 0);
  EXPECT_NE(shifted.out.find("generation: 100 tokens"), std::string::npos) << shifted.out;
  EXPECT_NE(shifted.out.find("context was shifted"), std::string::npos) << shifted.out;
  const auto stopped = run("-p 'And it came to pass' -n 100 --temp 0 -c 32 --no-context-shift", true);
  EXPECT_EQ(stopped.exit_code, 0);
  EXPECT_NE(stopped.out.find("context of 32 tokens is full"), std::string::npos) << stopped.out;
}

// The conversation mode reads turns from stdin; its first reply is the greedy continuation of
// the turn as a plain prompt, and every turn gets a reply line.
TEST_F(GenerateProgram, ConversationFromStdin) {
  const auto input = tinfer::testing::temp_path("turns.txt");
  {
    std::ofstream f(input);
    f << "Who was Moses?\nAnd Aaron?\n";
  }
  const std::string chat = stdout_of("-cnv -n 12 --temp 0 < " + quote(input.string()));
  std::filesystem::remove(input);
  const std::string plain = stdout_of("-p \"$(printf 'User: Who was Moses?\\nAssistant:')\" -n 12 --temp 0");
  const std::string prefix = "User: Who was Moses?\nAssistant:";
  ASSERT_EQ(plain.rfind(prefix, 0), 0u) << plain;
  std::string first_reply = plain.substr(prefix.size());
  first_reply = first_reply.substr(0, first_reply.find("\nUser:"));
  if (!first_reply.empty() && first_reply.back() == '\n') first_reply.pop_back();
  ASSERT_FALSE(chat.empty());
  EXPECT_EQ(chat.substr(0, first_reply.size()), first_reply) << chat;
  EXPECT_GE(std::count(chat.begin(), chat.end(), '\n'), 2) << chat;
}

}  // namespace
