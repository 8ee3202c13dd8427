// Locating ../shared for tests: one setting, the environment variable TINFER_ASSETS, else the
// CMake cache variable of the same name. Tests that need an asset skip with a clear message
// when it is absent, so a fresh clone without ../shared still passes.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

namespace tinfer::testing {

inline std::filesystem::path assets_dir() {
  if (const char* env = std::getenv("TINFER_ASSETS"); env != nullptr && *env != '\0') return env;
  return TINFER_DEFAULT_ASSETS;
}

/// Reference outputs live beside the assets: <assets>/../reference.
inline std::filesystem::path reference_dir() { return assets_dir().parent_path() / "reference"; }

inline std::string read_text_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A path in the temporary folder unique to this process and test, so tests that ctest runs in
/// parallel never share a scratch file.
inline std::filesystem::path temp_path(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string tag = info ? std::string(info->test_suite_name()) + "." + info->name() : "none";
  for (char& c : tag)
    if (c == '/') c = '_';
  return std::filesystem::temp_directory_path() / ("tinfer_" + std::to_string(::getpid()) + "_" + tag + "_" + name);
}

}  // namespace tinfer::testing

/// Skips the current test unless `path` exists.
#define TINFER_REQUIRE_FILE(path)                                                                      \
  do {                                                                                                 \
    if (!std::filesystem::exists(path))                                                                \
      GTEST_SKIP() << "reference file " << (path)                                                      \
                   << " not found; set TINFER_ASSETS to the shared assets folder to run this test";    \
  } while (0)
