// GGUF models of both families and every stored type against the references of
// ../shared/reference/gguf (see ../shared/README.md): the exact float64 forward pass of the
// stored weights, and llama.cpp's logits.
//
// Measure: rms(ours - exact) / std(exact) over all positions. F32 must be within 1e-5; other
// types at least as close to exact as llama.cpp (1.5x allowed), since both approximate the
// same exact computation. The argmax must match exact's wherever its top two logits differ
// by more than 1% of their std, and greedy continuations must agree with llama.cpp's wherever
// llama.cpp's own error cannot flip the choice.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "exact_margin.hpp"
#include "test_assets.hpp"
#include "tinfer/io/gguf_writer.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/models/model.hpp"

namespace {

using tinfer::testing::assets_dir;
using tinfer::testing::reference_dir;

struct Ref {
  std::vector<std::int32_t> tokens;
  int n_prompt = 0;
  std::vector<std::vector<double>> llamacpp, exact;
};

Ref load_ref(const std::string& model) {
  const auto j = nlohmann::json::parse(
      tinfer::testing::read_text_file(reference_dir() / "gguf" / (model.substr(0, model.size() - 5) + ".json")));
  return {j.at("tokens").get<std::vector<std::int32_t>>(), j.at("n_prompt").get<int>(),
          j.at("llamacpp_logits").get<std::vector<std::vector<double>>>(), j.at("exact_logits").get<std::vector<std::vector<double>>>()};
}

double relative_rms(const std::vector<std::vector<double>>& got, const std::vector<std::vector<double>>& exact) {
  double se = 0, sum = 0, sum2 = 0;
  std::size_t n = 0;
  for (std::size_t p = 0; p < exact.size(); ++p)
    for (std::size_t i = 0; i < exact[p].size(); ++i) {
      const double d = got[p][i] - exact[p][i];
      se += d * d;
      sum += exact[p][i];
      sum2 += exact[p][i] * exact[p][i];
      ++n;
    }
  const double mean = sum / static_cast<double>(n);
  const double std = std::sqrt(sum2 / static_cast<double>(n) - mean * mean);
  return std::sqrt(se / static_cast<double>(n)) / std;
}

class GgufReference : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufReference, LogitsAsCloseToExactAsLlamaCpp) {
  const std::string name = GetParam();
  const auto path = assets_dir() / "gguf" / name;
  TINFER_REQUIRE_FILE(path);
  TINFER_REQUIRE_FILE(reference_dir() / "gguf" / (name.substr(0, name.size() - 5) + ".json"));
  const Ref ref = load_ref(name);
  const auto model = tinfer::load_model(path.string());
  auto session = model->new_session();
  tinfer::ThreadPool pool(2);
  std::vector<std::vector<double>> ours;
  for (std::size_t pos = 0; pos < ref.tokens.size(); ++pos) {
    const auto l = model->forward(*session, ref.tokens[pos], static_cast<int>(pos), &pool);
    ours.emplace_back(l.begin(), l.end());
  }
  const double ours_err = relative_rms(ours, ref.exact);
  const double cpp_err = relative_rms(ref.llamacpp, ref.exact);
  const bool is_f32 = name.find("f32") != std::string::npos;
  const double bound = is_f32 ? 1e-5 : 1.5 * cpp_err;
  EXPECT_LE(ours_err, bound) << name << ": tinfer " << ours_err << ", llama.cpp " << cpp_err;
  RecordProperty("tinfer_rel_rms", std::to_string(ours_err));
  RecordProperty("llamacpp_rel_rms", std::to_string(cpp_err));
  std::printf("[ measure  ] %s: rms/std to exact: tinfer %.3g, llama.cpp %.3g\n", name.c_str(), ours_err, cpp_err);

  // Argmax agreement wherever exact's top two are clearly apart (llama.cpp's own argmax differs
  // from exact's at margins up to 6.9% of std on these files). Then the greedy continuation.
  for (std::size_t pos = 0; pos < ref.exact.size(); ++pos) {
    const auto& e = ref.exact[pos];
    const double margin = tinfer::testing::top_two_margin_over_std(e);  // in units of std
    // With float activations (the default) the shared README's criterion holds as stated: 1% of
    // std. With TINFER_ACTIVATIONS=q8 the logits move like llama.cpp's, so only margins above
    // 4x our own error are decisive.
    const bool q8 = tinfer::kernels::default_activations() == tinfer::kernels::Activations::Q8;
    if (margin <= (q8 ? std::max(0.01, 4.0 * ours_err) : 0.01)) continue;
    const auto want = std::max_element(e.begin(), e.end()) - e.begin();
    const auto got = std::max_element(ours[pos].begin(), ours[pos].end()) - ours[pos].begin();
    EXPECT_EQ(got, want) << name << " position " << pos;
    // llama.cpp's greedy tokens come from its own (approximate) logits: where exact's top two
    // are closer than a few times llama.cpp's error, llama.cpp may pick the runner-up (seen at
    // margins of 1-4% of std for quantized files); compare only where its choice is decisive.
    const double decisive = std::max(0.01, 4.0 * cpp_err);
    if (static_cast<int>(pos) >= ref.n_prompt - 1 && pos + 1 < ref.tokens.size() && margin > decisive) {
      EXPECT_EQ(got, ref.tokens[pos + 1]) << name << ": greedy choice at position " << pos << " differs from llama.cpp's";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Files, GgufReference,
    ::testing::Values("stories260K-f32.gguf", "tiny-llama-f32.gguf", "tiny-llama-F16.gguf", "tiny-llama-BF16.gguf",
                      "tiny-llama-Q8_0.gguf", "tiny-llama-Q4_0.gguf", "tiny-llama-Q4_1.gguf", "tiny-llama-Q5_0.gguf",
                      "tiny-llama-Q5_1.gguf", "tiny-llama-Q2_K.gguf", "tiny-llama-Q3_K.gguf", "tiny-llama-Q4_K.gguf",
                      "tiny-llama-Q5_K.gguf", "tiny-llama-Q6_K.gguf", "tiny-gpt2-f32.gguf", "tiny-gpt2-F16.gguf",
                      "tiny-gpt2-Q8_0.gguf", "tiny-gpt2-Q4_0.gguf", "tiny-gpt2-Q4_K.gguf", "tiny-gpt2-Q6_K.gguf"),
    [](const auto& info) {
      std::string s = info.param.substr(0, info.param.size() - 5);
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

// The same stories260K weights from the llama2.c checkpoint and from llama.cpp's GGUF conversion
// give the same logits.
TEST(GgufReference, Stories260KGgufEqualsLlama2cCheckpoint) {
  const auto gguf = assets_dir() / "gguf" / "stories260K-f32.gguf";
  const auto bin = assets_dir() / "stories260K" / "stories260K.bin";
  TINFER_REQUIRE_FILE(gguf);
  TINFER_REQUIRE_FILE(bin);
  const auto a = tinfer::load_model(gguf.string());
  const auto b = tinfer::load_model(bin.string());
  EXPECT_EQ(a->format(), tinfer::ModelFormat::Gguf);
  EXPECT_EQ(b->format(), tinfer::ModelFormat::Llama2c);
  auto sa = a->new_session(), sb = b->new_session();
  const std::vector<std::int32_t> toks = {1, 403, 407, 261, 378, 432, 383, 286};
  for (std::size_t pos = 0; pos < toks.size(); ++pos) {
    const auto la = a->forward(*sa, toks[pos], static_cast<int>(pos));
    const auto lb = b->forward(*sb, toks[pos], static_cast<int>(pos));
    for (std::size_t i = 0; i < la.size(); ++i) ASSERT_NEAR(la[i], lb[i], 1e-5) << pos << " " << i;
  }
}

}  // namespace

namespace {

// A GGUF file whose tensor shapes contradict its hyperparameters, or that lacks a tensor, is a
// FormatError naming the tensor (built from the fuzz seed with tinfer's own writer).
TEST(GgufLoading, ShapesMustMatchHyperparameters) {
  const auto seed = std::filesystem::path(TINFER_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "gguf" / "tiny-llama.gguf";
  const tinfer::io::GgufFile src(seed.string());
  auto rebuild = [&](const std::string& skip, const std::string& reshape) {
    tinfer::io::GgufWriter w;
    for (const auto& [k, v] : src.metadata()) w.set(k, v);
    for (const auto& t : src.tensors()) {
      if (t.name == skip) continue;
      auto dims = t.dims;
      if (t.name == reshape) std::swap(dims[0], dims[1]);
      w.add_tensor(t.name, dims, t.type, src.tensor_data(t));
    }
    const auto path = tinfer::testing::temp_path("shape.gguf");
    w.write(path.string());
    return path;
  };
  try {
    tinfer::load_model(rebuild("", "blk.0.attn_k.weight").string());
    FAIL() << "a transposed attn_k was accepted";
  } catch (const tinfer::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.attn_k.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected"), std::string::npos) << e.what();
  }
  try {
    tinfer::load_model(rebuild("blk.0.ffn_up.weight", "").string());
    FAIL() << "a missing ffn_up was accepted";
  } catch (const tinfer::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.0.ffn_up.weight' is missing"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(tinfer::load_model(rebuild("", "").string()));
}

}  // namespace
