// llama2.c checkpoints: header fields, and malformed files rejected with FormatError.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "test_assets.hpp"
#include "tinfer/io/llama2c_checkpoint.hpp"

namespace {

using tinfer::io::Llama2cCheckpoint;
using tinfer::testing::assets_dir;

std::filesystem::path stories() { return assets_dir() / "stories260K" / "stories260K.bin"; }

std::filesystem::path write_temp(const std::string& bytes) {
  const auto p = tinfer::testing::temp_path("ckpt.bin");
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

TEST(Llama2cCheckpoint, ReadsStories260KHeader) {
  TINFER_REQUIRE_FILE(stories());
  Llama2cCheckpoint c(stories().string());
  const auto& h = c.header();
  EXPECT_EQ(h.dim, 64);
  EXPECT_EQ(h.hidden_dim, 172);
  EXPECT_EQ(h.n_layers, 5);
  EXPECT_EQ(h.n_heads, 8);
  EXPECT_EQ(h.n_kv_heads, 4);
  EXPECT_EQ(h.vocab_size, 512);
  EXPECT_EQ(h.seq_len, 512);
  EXPECT_TRUE(h.shared_classifier);
  EXPECT_EQ(c.weights().wcls, c.weights().token_embedding);
  // The first weight follows the 28-byte header.
  float first;
  std::memcpy(&first, tinfer::testing::read_text_file(stories()).data() + 28, 4);
  EXPECT_EQ(c.weights().token_embedding[0], first);
}

TEST(Llama2cCheckpoint, TruncatedFilesAreFormatErrors) {
  TINFER_REQUIRE_FILE(stories());
  const std::string good = tinfer::testing::read_text_file(stories());
  for (std::size_t cut : {std::size_t{0}, std::size_t{3}, std::size_t{27}, std::size_t{28}, std::size_t{1000}, good.size() / 2,
                          good.size() - 4 * 64 * 32 - 1}) {
    try {
      Llama2cCheckpoint c(write_temp(good.substr(0, cut)).string());
      FAIL() << "accepted a file truncated to " << cut << " bytes";
    } catch (const tinfer::FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("ckpt.bin"), std::string::npos);
    }
  }
}

TEST(Llama2cCheckpoint, AbsurdHeaderValuesAreFormatErrors) {
  TINFER_REQUIRE_FILE(stories());
  const std::string good = tinfer::testing::read_text_file(stories());
  auto with = [&](int field, std::int32_t v) {
    std::string b = good;
    std::memcpy(b.data() + 4 * field, &v, 4);
    return write_temp(b).string();
  };
  // dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
  for (auto [field, value] : std::vector<std::pair<int, std::int32_t>>{
           {0, 0}, {0, -64}, {0, 0x7fffffff}, {1, 0}, {1, 0x7fffffff}, {2, 0}, {2, 1 << 30}, {3, 0}, {3, 7},  // 7 does not divide 64
           {3, 128}, {4, 0}, {4, 3}, {4, 16}, {5, 0}, {5, INT32_MIN}, {6, 0}, {6, -1},
           // sizes that are individually plausible but need far more bytes than the file has
           {1, 1 << 22}, {2, 4000}, {5, 1 << 24}, {6, 1 << 24}}) {
    EXPECT_THROW(Llama2cCheckpoint c(with(field, value)), tinfer::FormatError) << "field " << field << " = " << value;
  }
  try {
    Llama2cCheckpoint c(with(3, 7));
  } catch (const tinfer::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("does not divide"), std::string::npos) << e.what();
  }
  // head size 64/32 = 2 is fine for pairing, but an odd head size is not: dim 66 / 22 heads = 3.
  {
    std::string b = good;
    const std::int32_t dim = 66, heads = 22, kv = 22;
    std::memcpy(b.data(), &dim, 4);
    std::memcpy(b.data() + 12, &heads, 4);
    std::memcpy(b.data() + 16, &kv, 4);
    EXPECT_THROW(Llama2cCheckpoint c(write_temp(b).string()), tinfer::FormatError);
  }
  // A negative vocabulary size means an unshared classifier, which this file does not have room for.
  EXPECT_THROW(Llama2cCheckpoint c(with(5, -512)), tinfer::FormatError);
}

TEST(Llama2cCheckpoint, MissingFileIsIoError) { EXPECT_THROW(Llama2cCheckpoint c("/nonexistent/x.bin"), tinfer::IoError); }

}  // namespace
