// The example programs' command-line parsing, for the args fuzz target: tinfer-generate's
// parse_generate_args() (examples/generate_args.hpp), the shared examples/args.hpp parser
// directly, and the parse() functions of tinfer-perplexity and tinfer-convert. Their sources are compiled here inside a namespace each, with main()
// renamed, so the fuzzer runs the programs' real parsing code without a copy of it.
#pragma once

#include <chrono>
#include <cmath>
#include <limits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include <tinfer/tinfer.hpp>

#include "../../examples/args.hpp"
#include "../../examples/hf_to_gguf.hpp"  // before convert.cpp below, outside its namespace
#include "../../examples/generate_args.hpp"

#define main tinfer_perplexity_main
namespace tinfer_fuzz_perplexity {
#include "../../examples/perplexity.cpp"
}  // namespace tinfer_fuzz_perplexity
#undef main
#define main tinfer_convert_main
namespace tinfer_fuzz_convert {
#include "../../examples/convert.cpp"
}  // namespace tinfer_fuzz_convert
#undef main

namespace tinfer_fuzz {

[[noreturn]] inline void args_finding(const char* what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what);
  std::abort();
}

// The input is the argument list, arguments separated by NUL bytes (argv[0] is the program).
// "-h"/"--help" print the usage and exit, so they are left out.
inline std::vector<std::string> split_args(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"prog"};
  std::string cur;
  for (std::size_t i = 0; i <= size; ++i) {
    if (i == size || data[i] == 0) {
      if (cur != "-h" && cur != "--help") args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(data[i]));
    }
  }
  return args;
}

// A decimal integer as std::from_chars accepts it: an optional '-' then digits only.
inline bool plain_integer(std::string_view s, bool allow_minus) {
  if (allow_minus && !s.empty() && s[0] == '-') s.remove_prefix(1);
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

inline void fuzz_args(const std::uint8_t* data, std::size_t size) {
  const auto args = split_args(data, size);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int argc = static_cast<int>(args.size());
  using tinfer_examples::UsageError;

  // 1. Args on its own: the flag's first letter chooses how its value is read; every accepted
  // number must lie in its range and be written the way from_chars reads it.
  try {
    tinfer_examples::Args a(argc, argv.data());
    while (!a.done()) {
      const std::string_view f = a.next_flag();
      const char k = f.empty() ? 'v' : f[0];
      if (k == 'i') {
        const int v = a.number<int>(f, 1, 1024);
        if (v < 1 || v > 1024) args_finding("number<int> outside its range");
      } else if (k == 'n') {
        const long long v = a.number<long long>(f, -5, 1LL << 40);
        if (v < -5 || v > (1LL << 40)) args_finding("number<long long> outside its range");
      } else if (k == 'u') {
        const auto v = a.number<std::uint64_t>(f, 1, UINT64_MAX);
        if (v < 1) args_finding("number<uint64_t> outside its range");
      } else if (k == 'f') {
        const float v = a.number<float>(f, 0.0f, 1.0f);
        if (!(v >= 0.0f && v <= 1.0f)) args_finding("number<float> outside its range (or NaN)");
      } else {
        (void)a.value(f);
      }
    }
  } catch (const UsageError&) {
  }
  // Integers: acceptance must mean a plain decimal spelling.
  for (int i = 1; i + 1 < argc; ++i) {
    char* one[] = {argv[0], argv[i], argv[i + 1], nullptr};
    tinfer_examples::Args a(3, one);
    (void)a.next_flag();
    try {
      (void)a.number<int>("-x", -1000000, 1000000);
      if (!plain_integer(args[static_cast<std::size_t>(i + 1)], true)) args_finding("number<int> accepted a non-integer");
    } catch (const UsageError&) {
    }
  }

  // 2. tinfer-generate: a UsageError or arguments within their documented ranges.
  {
    std::vector<std::string> gen(args.begin() + 1, args.end());
    try {
      const auto o = tinfer_examples::parse_generate_args(gen);
      using tinfer_examples::kMaxGenerateTokens;
      if (!o.help) {
        if (o.n_predict < -1 || o.n_predict > kMaxGenerateTokens || o.ctx_size < 0 || o.ctx_size > kMaxGenerateTokens ||
            o.threads < 0 || o.threads > tinfer::ThreadPool::kMaxThreads || o.keep < -1 ||
            (o.ctx_size != 0 && o.keep > o.ctx_size) || o.parallel < 1 || o.parallel > tinfer_examples::kMaxParallel ||
            o.draft < 1 || o.draft > tinfer_examples::kMaxDraft || o.top_k < 0 || o.repeat_last_n < -1)
          args_finding("tinfer-generate: an integer option outside its range");
        for (float v : {o.temp, o.top_p, o.min_p, o.typical_p, o.repeat_penalty, o.presence_penalty, o.frequency_penalty})
          if (!std::isfinite(v)) args_finding("tinfer-generate: a non-finite float option");
        if (!(o.top_p >= 0 && o.top_p <= 1 && o.min_p >= 0 && o.min_p <= 1 && o.typical_p >= 0 && o.typical_p <= 1 &&
              o.temp >= 0 && o.repeat_penalty > 0))
          args_finding("tinfer-generate: a float option outside its range");
        for (const auto& [id, bias] : o.logit_bias)
          if (id < 0 || std::isnan(bias) || bias == std::numeric_limits<float>::infinity())
            args_finding("tinfer-generate: a bad logit bias");
      }
    } catch (const UsageError&) {
    }
  }

  // 3. The programs' own parse(): a UsageError or a valid Options, nothing else.
  try {
    const auto o = tinfer_fuzz_perplexity::parse(argc, argv.data());
    if (o.model.empty() || o.file.empty()) args_finding("tinfer-perplexity accepted a command line without -m or -f");
    if (o.ctx < 2 || o.threads < 0 || o.threads > tinfer::ThreadPool::kMaxThreads) args_finding("tinfer-perplexity option out of range");
  } catch (const UsageError&) {
  }
  try {
    (void)tinfer_fuzz_convert::parse(argc, argv.data());
  } catch (const UsageError&) {
  }
}

}  // namespace tinfer_fuzz
