// The Llama decoder on llama2.c's stories260K against run.c's own outputs (see
// ../shared/README.md, reference/stories260K/*.json): run.c's prompt tokens, its logits at the
// first 16 positions within 1e-4 absolute, and its greedy continuation token for token.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_assets.hpp"
#include "tinfer/generate/generate.hpp"
#include "tinfer/generate/sampler.hpp"
#include "tinfer/models/llama.hpp"
#include "tinfer/tokenizer/llama2c_tokenizer.hpp"

namespace {

using tinfer::testing::assets_dir;
using tinfer::testing::reference_dir;

struct Reference {
  std::string prompt;
  std::vector<std::int32_t> fed_tokens;
  std::vector<std::vector<float>> logits;
  std::string stdout_text;
};

Reference load_reference(const std::string& name) {
  const auto j = nlohmann::json::parse(tinfer::testing::read_text_file(reference_dir() / "stories260K" / (name + ".json")));
  Reference r;
  r.prompt = j.at("prompt").get<std::string>();
  r.fed_tokens = j.at("fed_tokens").get<std::vector<std::int32_t>>();
  r.logits = j.at("logits_first_positions").get<std::vector<std::vector<float>>>();
  r.stdout_text = j.at("stdout").get<std::string>();
  return r;
}

class Stories260K : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    TINFER_REQUIRE_FILE(assets_dir() / "stories260K" / "stories260K.bin");
    TINFER_REQUIRE_FILE(reference_dir() / "stories260K" / (GetParam() + ".json"));
  }
  static tinfer::LlamaModel model() { return tinfer::LlamaModel::load_llama2c((assets_dir() / "stories260K" / "stories260K.bin").string()); }
  static tinfer::Llama2cTokenizer tokenizer(int vocab) {
    return tinfer::Llama2cTokenizer::load((assets_dir() / "stories260K" / "tok512.bin").string(), vocab);
  }
};

TEST_P(Stories260K, PromptTokensMatchRunC) {
  const auto ref = load_reference(GetParam());
  const auto m = model();
  const auto tok = tokenizer(m.config().vocab_size);
  const auto prompt = tok.encode(ref.prompt, true);
  ASSERT_LE(prompt.size(), ref.fed_tokens.size());
  EXPECT_EQ(prompt, std::vector<std::int32_t>(ref.fed_tokens.begin(), ref.fed_tokens.begin() + static_cast<std::ptrdiff_t>(prompt.size())));
}

TEST_P(Stories260K, LogitsMatchRunCWithin1e4) {
  const auto ref = load_reference(GetParam());
  const auto m = model();
  tinfer::LlamaSession s(m);
  ASSERT_EQ(ref.logits.size(), 16u);
  float worst = 0;
  for (std::size_t pos = 0; pos < ref.logits.size(); ++pos) {
    const auto logits = m.forward(s, ref.fed_tokens[pos], static_cast<int>(pos));
    ASSERT_EQ(logits.size(), ref.logits[pos].size());
    for (std::size_t i = 0; i < logits.size(); ++i) {
      const float d = std::fabs(logits[i] - ref.logits[pos][i]);
      worst = std::max(worst, d);
      ASSERT_LE(d, 1e-4f) << "position " << pos << " logit " << i << ": got " << logits[i] << ", run.c " << ref.logits[pos][i];
    }
  }
  RecordProperty("max_abs_logit_difference", std::to_string(worst));
}

TEST_P(Stories260K, GreedyGenerationReproducesFedTokens) {
  const auto ref = load_reference(GetParam());
  const auto m = model();
  const auto tok = tokenizer(m.config().vocab_size);
  const auto prompt = tok.encode(ref.prompt, true);
  tinfer::LlamaSession s(m);
  tinfer::TopPSampler greedy({.temperature = 0.0f});
  tinfer::ThreadPool pool(2);
  // run.c ran 256 positions; generating 257 - |prompt| tokens feeds exactly as many.
  const int n_new = 257 - static_cast<int>(prompt.size());
  const auto res = tinfer::generate(m, s, prompt, greedy, {.max_new_tokens = n_new, .stop_token = tok.bos_id()},
                                    [](std::int32_t, std::int32_t) { return true; }, &pool);
  std::vector<std::int32_t> fed = prompt;
  fed.insert(fed.end(), res.tokens.begin(), res.tokens.end());
  if (res.hit_stop_token) {
    EXPECT_LT(ref.fed_tokens.size(), 256u) << "we stopped at BOS, run.c did not";
    EXPECT_EQ(fed, ref.fed_tokens);
  } else {
    // The last sampled token was printed by run.c but never fed.
    ASSERT_EQ(fed.size(), ref.fed_tokens.size() + 1);
    fed.pop_back();
    EXPECT_EQ(fed, ref.fed_tokens);
  }
  // What run.c printed is the decoded prompt and continuation (plus its final newline).
  std::string text;
  for (std::size_t i = 1; i < prompt.size() + res.tokens.size(); ++i) {
    const auto prev = i - 1 < prompt.size() ? prompt[i - 1] : res.tokens[i - 1 - prompt.size()];
    const auto cur = i < prompt.size() ? prompt[i] : res.tokens[i - prompt.size()];
    text += tok.decode_piece(prev, cur);
  }
  EXPECT_EQ(text + "\n", ref.stdout_text);
}

// The logits must not depend on the thread count. (stories260K's matrices are small enough that
// most stay on one thread; tests/kernels checks splitting of large matrices directly.)
TEST_P(Stories260K, LogitsIdenticalForAnyThreadCount) {
  const auto ref = load_reference(GetParam());
  const auto m = model();
  auto run = [&](int threads) {
    tinfer::ThreadPool pool(threads);
    tinfer::LlamaSession s(m);
    std::vector<float> all;
    for (std::size_t pos = 0; pos < 40 && pos < ref.fed_tokens.size(); ++pos) {
      auto l = m.forward(s, ref.fed_tokens[pos], static_cast<int>(pos), &pool);
      all.insert(all.end(), l.begin(), l.end());
    }
    return all;
  };
  const auto one = run(1);
  EXPECT_EQ(run(2), one);
  EXPECT_EQ(run(3), one);
}

INSTANTIATE_TEST_SUITE_P(RunC, Stories260K,
                         ::testing::Values("empty", "once_upon_a_time", "little_dog", "park_they", "tom_red_ball"));

// run.c with -t 1.0 -p 0.9 -s 1..24 -n 256 wrote reference/text/stories260K-sampled.txt. The
// sampler reproduces run.c's random draws, so the same seeds give the same stories.
TEST(Stories260KSampling, SeededTopPSamplingReproducesRunC) {
  const auto model_path = assets_dir() / "stories260K" / "stories260K.bin";
  const auto text_path = reference_dir() / "text" / "stories260K-sampled.txt";
  TINFER_REQUIRE_FILE(model_path);
  TINFER_REQUIRE_FILE(text_path);
  const std::string corpus = tinfer::testing::read_text_file(text_path);
  const auto m = tinfer::LlamaModel::load_llama2c(model_path.string());
  const auto tok = tinfer::Llama2cTokenizer::load((assets_dir() / "stories260K" / "tok512.bin").string(), m.config().vocab_size);
  int found = 0;
  for (std::uint64_t seed = 1; seed <= 24; ++seed) {
    tinfer::LlamaSession s(m);
    tinfer::TopPSampler sampler({.temperature = 1.0f, .top_p = 0.9f, .seed = seed});
    std::string text;
    const std::vector<std::int32_t> prompt = {tok.bos_id()};
    tinfer::generate(m, s, prompt, sampler, {.max_new_tokens = 256, .stop_token = tok.bos_id()},
                     [&](std::int32_t prev, std::int32_t t) {
                       text += tok.decode_piece(prev, t);
                       return true;
                     });
    ASSERT_GT(text.size(), 100u);
    if (corpus.find(text) != std::string::npos) ++found;
    else ADD_FAILURE() << "seed " << seed << " gave a story not in run.c's output:\n" << text;
  }
  EXPECT_EQ(found, 24);
}

}  // namespace
