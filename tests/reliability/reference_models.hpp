// The reference models the reliability tests run: the bundled demo model (always present) and,
// when the assets folder exists, stories260K (llama2.c and GGUF) and tiny GGUF models in
// several weight types. Each comes with a short fixed prompt of valid token ids.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "test_assets.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/generate/generate.hpp"
#include "tinfer/generate/sampler.hpp"
#include "tinfer/models/model.hpp"

namespace tinfer::testing {

struct ReferenceModel {
  std::string name;
  std::filesystem::path path;
};

/// The models that exist on this machine; `small_only` leaves out the larger f32 files (for
/// the sanitizer builds, where every multiply is slow).
inline std::vector<ReferenceModel> reference_models(bool small_only = false) {
  const auto a = assets_dir();
  std::vector<ReferenceModel> all = {
      {"demo-kjv", std::filesystem::path(TINFER_SOURCE_DIR) / "examples" / "demo-model" / "tinfer-demo-kjv.gguf"},
      {"stories260K.bin", a / "stories260K" / "stories260K.bin"},
      {"stories260K-f32.gguf", a / "gguf" / "stories260K-f32.gguf"},
      {"tiny-llama-Q4_K", a / "gguf" / "tiny-llama-Q4_K.gguf"},
      {"tiny-llama-Q8_0", a / "gguf" / "tiny-llama-Q8_0.gguf"},
      {"tiny-gpt2-Q6_K", a / "gguf" / "tiny-gpt2-Q6_K.gguf"},
  };
  if (!small_only) {
    all.push_back({"tiny-llama-f32", a / "gguf" / "tiny-llama-f32.gguf"});
    all.push_back({"tiny-gpt2-F16", a / "gguf" / "tiny-gpt2-F16.gguf"});
  }
  std::vector<ReferenceModel> out;
  for (auto& m : all)
    if (std::filesystem::exists(m.path)) out.push_back(std::move(m));
  return out;
}

/// A fixed prompt: BOS (or token 1) followed by a few ids spread over the vocabulary.
inline std::vector<std::int32_t> reference_prompt(const Model& m) {
  const std::int32_t v = m.vocab_size();
  std::vector<std::int32_t> p = {m.bos_id() >= 0 ? m.bos_id() : 1};
  for (std::int32_t k : {7, 101, 33, 250, 64}) p.push_back(k % v);
  return p;
}

/// Generates `n` tokens after reference_prompt() with a top-p sampler (temperature 0.8,
/// top-p 0.9, `seed`) in a fresh session; `pool` may be null (single thread).
inline std::vector<std::int32_t> sample_tokens(const Model& m, std::uint64_t seed, int n, ThreadPool* pool) {
  const auto prompt = reference_prompt(m);
  auto session = m.new_session(std::min(m.max_context(), static_cast<int>(prompt.size()) + n));
  TopPSampler sampler({.temperature = 0.8f, .top_p = 0.9f, .seed = seed});
  const auto r = generate(m, *session, prompt, sampler, {.max_new_tokens = n}, [](std::int32_t, std::int32_t) { return true; }, pool);
  return r.tokens;
}

}  // namespace tinfer::testing
