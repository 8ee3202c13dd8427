// UTF-8 helpers, the generated Unicode classes, and GPT-2's pre-tokenizer.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "test_assets.hpp"
#include "tinfer/tokenizer/gpt2_pretokenizer.hpp"
#include "tinfer/tokenizer/unicode.hpp"

namespace {

using namespace tinfer::unicode;

TEST(Unicode, DecodeUtf8) {
  EXPECT_EQ(decode_utf8("A", 0).cp, 0x41u);
  const auto e = decode_utf8("\xC3\xA9", 0);
  EXPECT_TRUE(e.valid);
  EXPECT_EQ(e.cp, 0xE9u);
  EXPECT_EQ(e.len, 2u);
  EXPECT_EQ(decode_utf8("\xF0\x9F\xA6\x99", 0).cp, 0x1F999u);
  for (const char* bad : {"\x80", "\xC3", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF", "\xC3("}) {
    const auto u = decode_utf8(bad, 0);
    EXPECT_FALSE(u.valid) << bad;
    EXPECT_EQ(u.len, 1u);
  }
  std::string s;
  for (std::uint32_t cp : {0x41u, 0xE9u, 0x20ACu, 0x1F999u}) append_utf8(s, cp);
  EXPECT_EQ(s, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\xA6\x99");
  EXPECT_TRUE(is_valid_utf8(s));
  EXPECT_EQ(sanitize_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
}

TEST(Unicode, IncompleteTail) {
  EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("a\xF0\x9F"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("a\xF0\x9F\xA6"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("a\xF0\x9F\xA6\x99"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\xE6"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("\xE0\x80"), 0u);  // overlong: can never complete
  EXPECT_EQ(incomplete_utf8_tail("\xED\xA0"), 0u);  // surrogate
  EXPECT_EQ(incomplete_utf8_tail("\xFF"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\x80\x80"), 0u);
}

TEST(Unicode, Classes) {
  for (std::uint32_t cp : {0x41u, 0x7Au, 0xE9u, 0x3B1u, 0x5D0u, 0x65E5u, 0xAC00u, 0x1780u, 0x20000u}) EXPECT_TRUE(is_letter(cp)) << cp;
  for (std::uint32_t cp : {0x30u, 0xBDu, 0xB2u, 0x663u, 0x216Bu, 0x1D7CEu}) EXPECT_TRUE(is_number(cp)) << cp;
  for (std::uint32_t cp : {0x20u, 0x09u, 0x0Au, 0x0Bu, 0x0Cu, 0x0Du, 0x85u, 0xA0u, 0x1680u, 0x2003u, 0x2028u, 0x2029u, 0x202Fu, 0x3000u})
    EXPECT_TRUE(is_whitespace(cp)) << cp;
  // Not whitespace in tiktoken/HF (White_Space), though some engines differ: ZWSP, BOM, U+001C.
  for (std::uint32_t cp : {0x200Bu, 0xFEFFu, 0x1Cu, 0x180Eu}) EXPECT_FALSE(is_whitespace(cp)) << cp;
  for (std::uint32_t cp : {0x21u, 0x301u, 0x1F999u, 0xFFFDu, 0x110000u}) {
    EXPECT_FALSE(is_letter(cp)) << cp;
    EXPECT_FALSE(is_number(cp)) << cp;
  }
}

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  for (auto w : tinfer::gpt2_pretokenize(s)) out.emplace_back(w);
  return out;
}

TEST(Gpt2Pretokenizer, Pattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(split("I'll don't 'S"), (V{"I", "'ll", " don", "'t", " '", "S"}));
  EXPECT_EQ(split("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(split("a \n b  "), (V{"a", " \n", " b", "  "}));
  EXPECT_EQ(split("x\t\ty"), (V{"x", "\t", "\t", "y"}));
  EXPECT_EQ(split("3.14 ½ abc123"), (V{"3", ".", "14", " ½", " abc", "123"}));
  EXPECT_EQ(split(" !!! ?"), (V{" !!!", " ?"}));
  EXPECT_EQ(split(""), V{});
  EXPECT_EQ(split(" "), (V{" "}));
  EXPECT_EQ(split("\xFF\xFE a"), (V{"\xFF\xFE", " a"}));
  // The pieces always cover the input exactly.
  std::string joined;
  for (const auto& w : split("w048 7tuijk dsdfhu \xF0\x9F\xA6\x99 \n\n  x")) joined += w;
  EXPECT_EQ(joined, "w048 7tuijk dsdfhu \xF0\x9F\xA6\x99 \n\n  x");
}

// The committed table equals what the generator makes from this machine's Unicode data (when
// the data and a Python interpreter are there).
TEST(Unicode, GeneratedTableIsCurrent) {
  const std::filesystem::path data = "/usr/share/unicode/UnicodeData.txt";
  TINFER_REQUIRE_FILE(data);
  if (std::system("python3 --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not found";
  const std::filesystem::path src = TINFER_SOURCE_DIR;
  const auto out = std::filesystem::temp_directory_path() / "tinfer_unicode_tables.hpp";
  const std::string cmd = "python3 \"" + (src / "cmake/gen_unicode_tables.py").string() + "\" /usr/share/unicode > \"" +
                          out.string() + "\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string made = tinfer::testing::read_text_file(out);
  std::filesystem::remove(out);
  const std::string committed = tinfer::testing::read_text_file(src / "include/tinfer/tokenizer/unicode_tables.hpp");
  // The header's first lines name the Unicode version.
  if (made.substr(0, 200) != committed.substr(0, 200))
    GTEST_SKIP() << "this machine's unicode-data is a different version than the committed table";
  EXPECT_EQ(made, committed);
}

}  // namespace
