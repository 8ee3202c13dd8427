// Loading repacks Q8_0 / Q4_0 / Q4_K / Q6_K matrices into the interleaved layout (kernels/interleave.hpp) only
// when that is safe: the model is the only user of the loaded GgufFile. A model built from a
// file someone else also holds keeps the file's bytes untouched (the quantizer reads them
// after loading). Both are equally close to the exact forward pass of the stored weights
// (../shared/reference/gguf): the interleaved kernels only sum in another order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "exact_margin.hpp"
#include "test_assets.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/models/gguf_loader.hpp"

namespace {

using tinfer::testing::assets_dir;

template <class Session, class Model>
std::vector<float> run(const Model& m, const std::vector<std::int32_t>& toks) {
  Session s(m);
  std::vector<float> all;
  for (std::size_t p = 0; p < toks.size(); ++p) {
    const auto l = m.forward(s, toks[p], static_cast<int>(p));
    all.insert(all.end(), l.begin(), l.end());
  }
  return all;
}

struct Exact {
  std::vector<std::int32_t> tokens;
  std::vector<std::vector<double>> logits;
};
Exact load_exact(const std::string& name) {
  const auto j = nlohmann::json::parse(tinfer::testing::read_text_file(tinfer::testing::reference_dir() / "gguf" / (name + ".json")));
  return {j.at("tokens").get<std::vector<std::int32_t>>(), j.at("exact_logits").get<std::vector<std::vector<double>>>()};
}

// rms(got - exact) / std(exact) over all positions.
double rel_rms(const std::vector<float>& got, const std::vector<std::vector<double>>& exact) {
  double se = 0, sum = 0, sum2 = 0;
  std::size_t n = 0;
  for (std::size_t p = 0; p < exact.size(); ++p)
    for (std::size_t i = 0; i < exact[p].size(); ++i) {
      const double d = got[p * exact[p].size() + i] - exact[p][i];
      se += d * d;
      sum += exact[p][i];
      sum2 += exact[p][i] * exact[p][i];
      ++n;
    }
  const double mean = sum / static_cast<double>(n);
  return std::sqrt(se / static_cast<double>(n)) / std::sqrt(sum2 / static_cast<double>(n) - mean * mean);
}

// Repacked and plain models compute the same quantized arithmetic in another summation order:
// both must be as close to the exact forward pass as the other (within 10%: the order changes
// the rounding, not the approximation), and pick the same argmax wherever exact's top two are
// apart by more than 1% of std (the reference test's criterion).
void expect_equally_accurate(const std::vector<float>& repacked, const std::vector<float>& plain, const Exact& ex) {
  const double e_r = rel_rms(repacked, ex.logits), e_p = rel_rms(plain, ex.logits);
  std::printf("[ measure  ] rms/std to exact: repacked %.3g, plain %.3g\n", e_r, e_p);
  EXPECT_LE(e_r, 1.1 * e_p + 1e-6);
  for (std::size_t p = 0; p < ex.logits.size(); ++p) {
    const auto& e = ex.logits[p];
    if (tinfer::testing::top_two_margin_over_std(e) <= 0.01) continue;
    const float* r = repacked.data() + p * e.size();
    const float* q = plain.data() + p * e.size();
    EXPECT_EQ(std::max_element(r, r + e.size()) - r, std::max_element(q, q + e.size()) - q) << "position " << p;
  }
}

class InterleavedLlama : public ::testing::TestWithParam<const char*> {};

TEST_P(InterleavedLlama, SoleOwnerRepacksSharedFileStaysIntact) {
  if (tinfer::kernels::default_activations() != tinfer::kernels::Activations::Q16 || tinfer::default_load_mode() != tinfer::LoadMode::Read) {
    GTEST_SKIP() << "repacking needs the default activation mode and load mode";
  }
  const std::string name = std::string("tiny-llama-") + GetParam();
  const auto path = assets_dir() / "gguf" / (name + ".gguf");
  TINFER_REQUIRE_FILE(path);
  TINFER_REQUIRE_FILE(tinfer::testing::reference_dir() / "gguf" / (name + ".json"));
  const Exact ex = load_exact(name);
  // Sole owner: repacked.
  const auto own = tinfer::load_llama_gguf(std::make_shared<const tinfer::io::GgufFile>(path.string()));
  for (const auto& L : own.weights().layers) {
    EXPECT_EQ(L.wq.interleaved_rows, L.wq.rows / 16 * 16);
    EXPECT_EQ(L.w_down.interleaved_rows, L.w_down.rows / 16 * 16);
  }
  // Shared: the file's bytes are left as they are.
  const auto file = std::make_shared<const tinfer::io::GgufFile>(path.string());
  const auto t = file->tensor("blk.0.attn_q.weight");
  const auto before = file->tensor_data(t);
  const std::vector<std::byte> copy(before.begin(), before.end());
  const auto shared = tinfer::load_llama_gguf(file);
  for (const auto& L : shared.weights().layers) EXPECT_EQ(L.wq.interleaved_rows, 0);
  const auto after = file->tensor_data(t);
  EXPECT_EQ(0, std::memcmp(after.data(), copy.data(), copy.size()));
  expect_equally_accurate(run<tinfer::LlamaSession>(own, ex.tokens), run<tinfer::LlamaSession>(shared, ex.tokens), ex);
}

// Every matrix of these --pure files is of the one type.
INSTANTIATE_TEST_SUITE_P(Types, InterleavedLlama, ::testing::Values("Q4_0", "Q4_K", "Q6_K", "Q8_0"),
                         [](const auto& info) { return std::string(info.param); });

TEST(InterleavedLoading, TiedGpt2ClassifierAndEmbeddingShareOneRepack) {
  if (tinfer::kernels::default_activations() != tinfer::kernels::Activations::Q16 || tinfer::default_load_mode() != tinfer::LoadMode::Read) {
    GTEST_SKIP() << "repacking needs the default activation mode and load mode";
  }
  const auto path = assets_dir() / "gguf" / "tiny-gpt2-Q8_0.gguf";
  TINFER_REQUIRE_FILE(path);
  const auto own = tinfer::load_gpt2_gguf(std::make_shared<const tinfer::io::GgufFile>(path.string()));
  const auto file = std::make_shared<const tinfer::io::GgufFile>(path.string());
  const auto shared = tinfer::load_gpt2_gguf(file);
  EXPECT_GT(own.weights().layers.at(0).qkv.interleaved_rows, 0);
  if (own.weights().classifier.data == own.weights().token_embedding.data) {
    EXPECT_EQ(own.weights().classifier.interleaved_rows, own.weights().token_embedding.interleaved_rows);
  }
  TINFER_REQUIRE_FILE(tinfer::testing::reference_dir() / "gguf" / "tiny-gpt2-Q8_0.json");
  const Exact ex = load_exact("tiny-gpt2-Q8_0");
  expect_equally_accurate(run<tinfer::Gpt2Session>(own, ex.tokens), run<tinfer::Gpt2Session>(shared, ex.tokens), ex);
}

}  // namespace
