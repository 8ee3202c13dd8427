// The README is part of the product: its test command is what CI runs, and its client example
// and umbrella header stay true.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>
#include <string>

#include "test_assets.hpp"

namespace {

const std::filesystem::path kSource = TINFER_SOURCE_DIR;

std::string line_with(const std::string& text, const std::string& needle) {
  const auto at = text.find(needle);
  if (at == std::string::npos) return "";
  const auto begin = text.rfind('\n', at) + 1;
  return text.substr(begin, text.find('\n', at) - begin);
}

TEST(Readme, CiRunsExactlyTheReadmeTestCommand) {
  const std::string readme = tinfer::testing::read_text_file(kSource / "README.md");
  const std::string ci = tinfer::testing::read_text_file(kSource / ".ci" / "run");
  const std::string ci_cmd = line_with(ci, "ctest --test-dir build");
  ASSERT_FALSE(ci_cmd.empty()) << ".ci/run has no ctest command";
  EXPECT_NE(readme.find("\n" + ci_cmd + "\n"), std::string::npos) << "README lacks .ci/run's command:\n" << ci_cmd;
}

// The README's C++ example is compiled by tests/build/readme_example.cpp, which CMake generates
// from this block; here we check the generated file equals the block, so they cannot drift.
TEST(Readme, ExampleBlockIsTheCompiledExample) {
  const std::string readme = tinfer::testing::read_text_file(kSource / "README.md");
  const auto marker = readme.find("<!-- readme-example");
  ASSERT_NE(marker, std::string::npos);
  const auto begin = readme.find("```cpp\n", marker) + 7;
  const auto end = readme.find("```\n", begin);
  const std::string block = readme.substr(begin, end - begin);
  EXPECT_NE(block.find("int main"), std::string::npos);
  EXPECT_EQ(block, tinfer::testing::read_text_file(TINFER_README_EXAMPLE)) << "re-run cmake to regenerate";
}

TEST(Umbrella, IncludesEveryPublicHeader) {
  const std::string umbrella = tinfer::testing::read_text_file(kSource / "include" / "tinfer" / "tinfer.hpp");
  for (const auto& e : std::filesystem::recursive_directory_iterator(kSource / "include" / "tinfer")) {
    if (e.path().extension() != ".hpp" || e.path().filename() == "tinfer.hpp") continue;
    const std::string rel = std::filesystem::relative(e.path(), kSource / "include").generic_string();
    EXPECT_NE(umbrella.find("#include \"" + rel + "\""), std::string::npos) << rel << " is missing from tinfer.hpp";
  }
}

}  // namespace
