// Batched and speculative generation on the bundled demo model: both must give exactly the
// tokens of plain generate() with the same sampler (greedy and seeded), since they make the same
// sampler calls on the same logits.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "tinfer/generate/batch_generate.hpp"
#include "tinfer/generate/generate.hpp"
#include "tinfer/generate/sampler_chain.hpp"
#include "tinfer/generate/speculative.hpp"
#include "tinfer/models/gguf_loader.hpp"
#include "tinfer/models/gpt2.hpp"
#include "tinfer/models/model.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"

namespace {

using namespace tinfer;

std::filesystem::path demo_path() {
  return std::filesystem::path(TINFER_SOURCE_DIR) / "examples" / "demo-model" / "tinfer-demo-kjv.gguf";
}

struct Demo {
  std::shared_ptr<const Gpt2Model> model;
  std::unique_ptr<Gpt2Model> draft;  // the first layer only, sharing the weights
  std::unique_ptr<Tokenizer> tok;
};

Demo load_demo() {
  auto file = std::make_shared<const io::GgufFile>(demo_path().string());
  Demo d;
  d.model = std::make_shared<const Gpt2Model>(load_gpt2_gguf(file));
  d.tok = load_gguf_tokenizer(*file);
  Gpt2Config c = d.model->config();
  Gpt2Weights w = d.model->weights();
  c.n_layers = 1;
  w.layers.resize(1);
  d.draft = std::make_unique<Gpt2Model>(c, w, d.model);  // keeps the full model's storage alive
  return d;
}

SamplerChain seeded(std::uint64_t seed) {
  return make_sampler_chain({.temperature = 0.9f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = seed});
}

std::vector<std::int32_t> alone(const Gpt2Model& m, const std::vector<std::int32_t>& prompt, SamplerChain sampler, int n,
                                std::int32_t eos, int context = 128) {
  Gpt2Session s(m, context);
  const auto r = generate(m, s, std::span(prompt), sampler, {.max_new_tokens = n, .stop_token = eos},
                          [](std::int32_t, std::int32_t) { return true; });
  return r.tokens;
}

class DemoGeneration : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(demo_path())) GTEST_SKIP() << "demo model missing: " << demo_path();
    demo_ = load_demo();
  }
  Demo demo_;
};

TEST_F(DemoGeneration, BatchEqualsSequential) {
  const Gpt2Model& m = *demo_.model;
  const char* prompts[4] = {"And it came to pass", "In the beginning", "The LORD is my shepherd", "Blessed are"};
  std::vector<Gpt2Session> sessions;
  for (int i = 0; i < 4; ++i) sessions.emplace_back(m, 128);
  std::vector<SamplerChain> samplers;
  for (int i = 0; i < 4; ++i) samplers.push_back(i == 0 ? SamplerChain::greedy() : seeded(100 + static_cast<std::uint64_t>(i)));
  std::vector<BatchSequence<Gpt2Session, SamplerChain>> batch(4);
  for (std::size_t i = 0; i < 4; ++i) {
    batch[i].session = &sessions[i];
    batch[i].sampler = &samplers[i];
    batch[i].seq.tokens = demo_.tok->encode(prompts[i]);
    batch[i].opt = {.max_new_tokens = 20 + 5 * static_cast<int>(i), .stop_token = demo_.tok->eos_id()};
  }
  std::vector<std::vector<std::int32_t>> seen(4);
  ThreadPool pool(2);
  generate_batch(m, std::span(batch), [&](std::size_t i, std::int32_t, std::int32_t t) {
    seen[i].push_back(t);
    return true;
  }, &pool);
  for (std::size_t i = 0; i < 4; ++i) {
    const auto want = alone(m, demo_.tok->encode(prompts[i]), i == 0 ? SamplerChain::greedy() : seeded(100 + i),
                            20 + 5 * static_cast<int>(i), demo_.tok->eos_id());
    EXPECT_EQ(batch[i].result.tokens, want) << "sequence " << i;
    EXPECT_EQ(seen[i], want) << "sequence " << i;
  }
}

TEST_F(DemoGeneration, BatchSequencesEndIndependently) {
  const Gpt2Model& m = *demo_.model;
  std::vector<Gpt2Session> sessions;
  sessions.emplace_back(m, 128);
  sessions.emplace_back(m, 12);  // a small context ends this one early
  std::vector<SamplerChain> samplers;
  samplers.push_back(SamplerChain::greedy());
  samplers.push_back(SamplerChain::greedy());
  std::vector<BatchSequence<Gpt2Session, SamplerChain>> batch(2);
  for (std::size_t i = 0; i < 2; ++i) {
    batch[i].session = &sessions[i];
    batch[i].sampler = &samplers[i];
    batch[i].seq.tokens = demo_.tok->encode("And it came to pass");
    batch[i].opt = {.max_new_tokens = 30};
  }
  generate_batch(m, std::span(batch), [](std::size_t, std::int32_t, std::int32_t) { return true; });
  EXPECT_EQ(batch[0].result.tokens.size(), 30u);
  EXPECT_TRUE(batch[1].result.context_full);
  EXPECT_EQ(batch[1].result.tokens.size(), 12u - batch[1].result.n_prompt + 1);
  // The short one is the long one's beginning (same greedy choices).
  EXPECT_TRUE(std::equal(batch[1].result.tokens.begin(), batch[1].result.tokens.end(), batch[0].result.tokens.begin()));
}

TEST_F(DemoGeneration, SpeculativeGreedyEqualsTargetAlone) {
  const Gpt2Model& m = *demo_.model;
  const auto prompt = demo_.tok->encode("And it came to pass");
  const auto want = alone(m, prompt, SamplerChain::greedy(), 60, demo_.tok->eos_id());
  ASSERT_GT(want.size(), 10u);
  for (int n_draft : {1, 3, 5, 8}) {
    Gpt2Session ts(m, 128), ds(*demo_.draft, 128);
    auto greedy = SamplerChain::greedy();
    SpeculativeStats st;
    std::vector<std::int32_t> seen;
    const auto r = generate_speculative(m, ts, *demo_.draft, ds, std::span(prompt), greedy,
                                        {.max_new_tokens = 60, .stop_token = demo_.tok->eos_id()}, n_draft,
                                        [&](std::int32_t, std::int32_t t) {
                                          seen.push_back(t);
                                          return true;
                                        },
                                        nullptr, &st);
    EXPECT_EQ(r.tokens, want) << "n_draft " << n_draft;
    EXPECT_EQ(seen, want);
    EXPECT_GT(st.drafted, 0);
    EXPECT_LE(st.accepted, st.drafted);
    // Every pass yields the accepted proposals plus one token of the target's own.
    EXPECT_EQ(static_cast<long>(r.tokens.size()), st.accepted + st.target_passes) << "n_draft " << n_draft;
  }
}

TEST_F(DemoGeneration, SpeculativeWithItselfAcceptsEverythingAndSeededMatches) {
  const Gpt2Model& m = *demo_.model;
  const auto prompt = demo_.tok->encode("In the beginning");
  {  // the target as its own draft: every greedy proposal is right
    Gpt2Session ts(m, 128), ds(m, 128);
    auto greedy = SamplerChain::greedy();
    SpeculativeStats st;
    const auto r = generate_speculative(m, ts, m, ds, std::span(prompt), greedy, {.max_new_tokens = 40}, 4,
                                        [](std::int32_t, std::int32_t) { return true; }, nullptr, &st);
    EXPECT_EQ(r.tokens, alone(m, prompt, SamplerChain::greedy(), 40, -1));
    EXPECT_EQ(st.accepted, st.drafted);
    EXPECT_EQ(st.target_passes, 8);  // 40 tokens, 5 per pass
  }
  {  // a seeded sampler: the same draws as the target alone
    Gpt2Session ts(m, 128), ds(*demo_.draft, 128);
    auto s = seeded(77);
    const auto r = generate_speculative(m, ts, *demo_.draft, ds, std::span(prompt), s, {.max_new_tokens = 50}, 4,
                                        [](std::int32_t, std::int32_t) { return true; });
    EXPECT_EQ(r.tokens, alone(m, prompt, seeded(77), 50, -1));
  }
  {  // a small context ends generation exactly where the target alone would stop
    Gpt2Session ts(m, 16), ds(*demo_.draft, 16);
    auto greedy = SamplerChain::greedy();
    const auto r = generate_speculative(m, ts, *demo_.draft, ds, std::span(prompt), greedy, {.max_new_tokens = -1}, 5,
                                        [](std::int32_t, std::int32_t) { return true; });
    EXPECT_TRUE(r.context_full);
    EXPECT_EQ(r.tokens, alone(m, prompt, SamplerChain::greedy(), -1, -1, 16));
  }
}

TEST_F(DemoGeneration, ContextShiftGoesOnPastTheContext) {
  const Gpt2Model& m = *demo_.model;
  Gpt2Session s(m, 32);
  auto greedy = SamplerChain::greedy();
  SequenceState seq{demo_.tok->encode("And it came to pass"), 0};
  const auto r = generate(m, s, seq, greedy, {.max_new_tokens = 100, .context_shift = true, .n_keep = 2},
                          [](std::int32_t, std::int32_t) { return true; });
  EXPECT_EQ(r.tokens.size(), 100u);
  EXPECT_GE(r.context_shifts, 3);
  EXPECT_GT(r.recomputed_tokens, 0);  // GPT-2 cannot move its cache: the kept tokens are fed again
  EXPECT_FALSE(r.context_full);
  EXPECT_LE(seq.tokens.size(), 33u);
  // The first n_keep prompt tokens stay at the start.
  const auto prompt = demo_.tok->encode("And it came to pass");
  EXPECT_EQ(seq.tokens[0], prompt[0]);
  EXPECT_EQ(seq.tokens[1], prompt[1]);
  // Until the first shift the tokens are those of an unshifted run.
  const auto first = alone(m, prompt, SamplerChain::greedy(), 32 - static_cast<int>(prompt.size()) + 1, -1, 32);
  EXPECT_TRUE(std::equal(first.begin(), first.end(), r.tokens.begin()));
}

}  // namespace
