// tinfer-tokenize: the ids of llama.cpp's tokenizer test vectors, from a GGUF vocabulary and
// from the other file forms, printed on one line.
#include <gtest/gtest.h>

#include <filesystem>
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

std::string trim_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// --pieces prints the pieces instead of the ids: one line, nothing else.
TEST(TokenizeProgram, PiecesReplaceIds) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  const auto gguf = assets_dir() / "llamacpp-vocab" / "ggml-vocab-llama-spm.gguf";
  TINFER_REQUIRE_FILE(gguf);
  const auto ids = run_program("tinfer-tokenize", "-m " + shell_quote(gguf.string()) + " --no-bos -p " + shell_quote("Hello world"));
  ASSERT_EQ(ids.exit_code, 0);
  EXPECT_EQ(ids.out, "15043 3186\n");
  const auto pieces =
      run_program("tinfer-tokenize", "-m " + shell_quote(gguf.string()) + " --no-bos --pieces -p " + shell_quote("Hello world"));
  ASSERT_EQ(pieces.exit_code, 0);
  EXPECT_EQ(pieces.out, "[ Hello] [ world]\n");
}

// -m accepts a folder holding only encoder.json + vocab.bpe (OpenAI's GPT-2 files), the
// encoder.json itself, tokenizer.json, and a GGUF model; all give the same GPT-2 ids.
TEST(TokenizeProgram, AcceptsEncoderJsonFolderAndGguf) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  const auto src = assets_dir() / "gpt2-bpe";
  const auto gguf = assets_dir() / "llamacpp-vocab" / "ggml-vocab-gpt-2.gguf";
  TINFER_REQUIRE_FILE(src / "encoder.json");
  TINFER_REQUIRE_FILE(gguf);
  // The shared folder also holds tokenizer.json (tried first); make one with only the two files.
  const auto dir = tinfer::testing::temp_path("gpt2_openai");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(src / "encoder.json", dir / "encoder.json", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(src / "vocab.bpe", dir / "vocab.bpe", std::filesystem::copy_options::overwrite_existing);
  const std::string text = "Hello world, it's 2024! \xF0\x9F\xA6\x99";
  const std::string want = "15496 995 11 340 338 48609 0 12520 99 247";
  for (const auto& m : {dir, dir / "encoder.json", src / "tokenizer.json", gguf}) {
    const auto r = run_program("tinfer-tokenize", "-m " + shell_quote(m.string()) + " -p " + shell_quote(text));
    ASSERT_EQ(r.exit_code, 0) << m;
    EXPECT_EQ(trim_newlines(r.out), want) << m;
  }
  std::filesystem::remove_all(dir);
}

TEST(TokenizeProgram, BadInputExitsNonZero) {
  if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  EXPECT_NE(run_program("tinfer-tokenize", "-p hi").exit_code, 0);
  EXPECT_NE(run_program("tinfer-tokenize", "-m /nonexistent/tokenizer.json -p hi").exit_code, 0);
}

}  // namespace
