// Reads llama.cpp's tokenizer test vectors (ggml-vocab-*.gguf.inp / .out).
#pragma once

#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "test_assets.hpp"

namespace tinfer::testing {

struct VocabCase {
  std::string text;
  std::vector<std::int32_t> ids;  // expected, without BOS
};

/// Inputs are each followed by "\n__ggml_vocab_test__\n"; the .out file has one line of ids per input.
inline std::vector<VocabCase> read_llamacpp_vectors(const std::filesystem::path& inp) {
  const std::string in = read_text_file(inp);
  const std::string out = read_text_file(std::filesystem::path(inp.string().substr(0, inp.string().size() - 4) + ".out"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<VocabCase> cases;
  for (std::size_t pos = 0; pos < in.size();) {
    std::size_t end = in.find(sep, pos);
    if (end == std::string::npos) break;
    cases.push_back({in.substr(pos, end - pos), {}});
    pos = end + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  for (auto& c : cases) {
    if (!std::getline(lines, line)) break;
    std::istringstream nums(line);
    std::int32_t v;
    while (nums >> v) c.ids.push_back(v);
  }
  return cases;
}

inline std::string printable(const std::string& s) {
  std::string r;
  for (unsigned char c : s) {
    if (c == '\n') r += "\\n";
    else if (c == '\t') r += "\\t";
    else r += static_cast<char>(c);
  }
  return r;
}

}  // namespace tinfer::testing
