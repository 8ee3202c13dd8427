// tinfer-tokenize: the ids of llama.cpp's tokenizer test vectors, from a GGUF vocabulary and
// from the other file forms, printed on one line.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "program_runner.hpp"
#include "test_assets.hpp"

namespace {

using tinfer::testing::assets_dir;
using tinfer::testing::run_program;
using tinfer::testing::shell_quote;

std::string nth_line(const std::string& text, int n) {
  std::istringstream in(text);
  std::string line;
  for (int i = 0; i <= n; ++i) std::getline(in, line);
  return line;
}

TEST(TokenizeProgram, PrintsLlamaCppIds) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  for (const char* vocab : {"gpt-2", "llama-spm"}) {
    const auto gguf = assets_dir() / "llamacpp-vocab" / (std::string("ggml-vocab-") + vocab + ".gguf");
    TINFER_REQUIRE_FILE(gguf);
    const std::string inputs = tinfer::testing::read_text_file(gguf.string() + ".inp");
    const std::string outputs = tinfer::testing::read_text_file(gguf.string() + ".out");
    // The inputs are separated by "\n__ggml_vocab_test__\n"; check a handful of them.
    std::size_t start = 0;
    for (int i = 0; i < 12; ++i) {
      const auto at = inputs.find("\n__ggml_vocab_test__\n", start);
      ASSERT_NE(at, std::string::npos);
      const std::string text = inputs.substr(start, at - start);
      start = at + 21;
      if (text.empty()) continue;
      const auto r = run_program("tinfer-tokenize", "-m " + shell_quote(gguf.string()) + " --no-bos -p " + shell_quote(text));
      ASSERT_EQ(r.exit_code, 0) << vocab << " input " << i;
      std::string want = nth_line(outputs, i);
      while (!want.empty() && want.back() == ' ') want.pop_back();
      while (!want.empty() && want.front() == ' ') want.erase(0, 1);
      std::string got = r.out;
      while (!got.empty() && (got.back() == '\n' || got.back() == ' ')) got.pop_back();
      EXPECT_EQ(got, want) << vocab << " input " << i << ": [" << text << "]";
    }
  }
}

TEST(TokenizeProgram, BadInputExitsNonZero) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  EXPECT_NE(run_program("tinfer-tokenize", "-p hi").exit_code, 0);
  EXPECT_NE(run_program("tinfer-tokenize", "-m /nonexistent/tokenizer.json -p hi").exit_code, 0);
}

}  // namespace
