#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "test_assets.hpp"
#include "tinfer/core/mapped_file.hpp"

namespace {

TEST(MappedFile, MapsContentsAndMoves) {
  const auto path = tinfer::testing::temp_path("mapped.bin");
  {
    std::ofstream out(path, std::ios::binary);
    out << "hello, mapping";
  }
  tinfer::MappedFile f(path.string());
  ASSERT_EQ(f.size(), 14u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data()), f.size()), "hello, mapping");
  tinfer::MappedFile g = std::move(f);
  EXPECT_EQ(g.size(), 14u);
  EXPECT_EQ(f.data(), nullptr);
  std::filesystem::remove(path);
}

TEST(MappedFile, EmptyFileHasNoBytes) {
  const auto path = tinfer::testing::temp_path("empty.bin");
  { std::ofstream out(path, std::ios::binary); }
  tinfer::MappedFile f(path.string());
  EXPECT_EQ(f.size(), 0u);
  std::filesystem::remove(path);
}

TEST(MappedFile, MissingFileAndDirectoryAreIoErrors) {
  try {
    tinfer::MappedFile f("/nonexistent/dir/model.bin");
    FAIL();
  } catch (const tinfer::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/model.bin"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos);
  }
  EXPECT_THROW(tinfer::MappedFile(std::filesystem::temp_directory_path().string()), tinfer::IoError);
}

}  // namespace
