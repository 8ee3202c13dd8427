// The sampling stages against hand-computed distributions, and the seeded draw against the
// probabilities it should reproduce.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "tinfer/generate/sampler_chain.hpp"

namespace {

using namespace tinfer;

// Logits whose softmax is exactly `probs` (log of the probabilities).
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

std::set<std::int32_t> ids_after(SamplerStage&& stage, const std::vector<float>& logits) {
  TokenCandidates c;
  c.reset(logits);
  stage.apply(c);
  std::set<std::int32_t> ids;
  for (const auto& t : c.items) ids.insert(t.id);
  return ids;
}

TEST(SamplerChain, SoftmaxMatchesHandComputation) {
  TokenCandidates c;
  c.reset(std::vector<float>{0.0f, 1.0f, 2.0f});
  c.softmax();
  // e^0, e^1, e^2 over their sum 11.107337: 0.665241, 0.244728, 0.090031 (sorted).
  ASSERT_EQ(c.items.size(), 3u);
  EXPECT_EQ(c.items[0].id, 2);
  EXPECT_NEAR(c.items[0].p, 0.665241, 1e-6);
  EXPECT_NEAR(c.items[1].p, 0.244728, 1e-6);
  EXPECT_NEAR(c.items[2].p, 0.090031, 1e-6);
}

TEST(SamplerChain, TopKKeepsExactlyK) {
  const std::vector<float> l = {0.5f, 3.0f, -1.0f, 2.0f, 2.5f, 0.0f};
  EXPECT_EQ(ids_after(TopKStage(3), l), (std::set<std::int32_t>{1, 3, 4}));
  EXPECT_EQ(ids_after(TopKStage(1), l), (std::set<std::int32_t>{1}));
  EXPECT_EQ(ids_after(TopKStage(0), l).size(), 6u);   // off
  EXPECT_EQ(ids_after(TopKStage(99), l).size(), 6u);  // more than there are
  // Ties at the cut are broken by the smaller id: logits 1,1,1 with k = 2 keep ids 0 and 1.
  EXPECT_EQ(ids_after(TopKStage(2), {1.0f, 1.0f, 1.0f}), (std::set<std::int32_t>{0, 1}));
}

TEST(SamplerChain, TopPKeepsSmallestPrefixReachingP) {
  const auto l = logits_of({0.1, 0.4, 0.05, 0.3, 0.15});  // sorted: 0.4 0.3 0.15 0.1 0.05
  EXPECT_EQ(ids_after(TopPStage(0.5f), l), (std::set<std::int32_t>{1, 3}));        // 0.7 >= 0.5
  EXPECT_EQ(ids_after(TopPStage(0.7f), l), (std::set<std::int32_t>{1, 3}));        // 0.7 reaches 0.7
  EXPECT_EQ(ids_after(TopPStage(0.71f), l), (std::set<std::int32_t>{1, 3, 4}));    // needs 0.85
  EXPECT_EQ(ids_after(TopPStage(0.1f), l), (std::set<std::int32_t>{1}));
  EXPECT_EQ(ids_after(TopPStage(1.0f), l).size(), 5u);
  EXPECT_EQ(ids_after(TopPStage(0.1f, 3), l), (std::set<std::int32_t>{1, 3, 4}));  // min_keep
}

TEST(SamplerChain, MinPThresholdIsRelativeToTheTopProbability) {
  const auto l = logits_of({0.5, 0.2, 0.1, 0.09, 0.11});
  // Thresholds are min-p * 0.5; they are kept away from a probability present, since the
  // log/exp round trip need not reproduce it exactly. 0.19 -> 0.095 drops only 0.09;
  // 0.21 -> 0.105 also drops 0.1; 0.5 -> 0.25 keeps only the top.
  EXPECT_EQ(ids_after(MinPStage(0.19f), l), (std::set<std::int32_t>{0, 1, 2, 4}));
  EXPECT_EQ(ids_after(MinPStage(0.21f), l), (std::set<std::int32_t>{0, 1, 4}));
  EXPECT_EQ(ids_after(MinPStage(0.5f), l), (std::set<std::int32_t>{0}));
  EXPECT_EQ(ids_after(MinPStage(0.0f), l).size(), 5u);
}

TEST(SamplerChain, TypicalKeepsTokensClosestToTheEntropy) {
  // p = 0.5, 0.25, 0.125, 0.125: entropy H = 1.75 bits = 1.2130076 nats. Surprises -ln p:
  // 0.693147, 1.386294, 2.079442, 2.079442; |surprise - H|: 0.519860, 0.173287, 0.866434 x2.
  // Order by that: id 1 (0.25), id 0 (0.5), ids 2, 3 (0.125 each).
  const auto l = logits_of({0.5, 0.25, 0.125, 0.125});
  EXPECT_EQ(ids_after(TypicalStage(0.2f), l), (std::set<std::int32_t>{1}));      // 0.25 > 0.2
  EXPECT_EQ(ids_after(TypicalStage(0.3f), l), (std::set<std::int32_t>{0, 1}));   // 0.75 > 0.3
  EXPECT_EQ(ids_after(TypicalStage(0.8f), l), (std::set<std::int32_t>{0, 1, 2}));  // 0.875 > 0.8
  EXPECT_EQ(ids_after(TypicalStage(1.0f), l).size(), 4u);
  // The most likely token is not kept first: at p = 0.2 typical sampling drops it.
  EXPECT_EQ(ids_after(TypicalStage(0.2f), l).count(0), 0u);
}

TEST(SamplerChain, PenaltiesOnKnownCounts) {
  PenaltiesStage pen({.last_n = 4, .repeat = 2.0f, .frequency = 0.5f, .presence = 0.25f});
  // Window holds the last 4 of 9 0 1 1 1: ids 0 (once) and 1 (three times); 9 has left.
  for (std::int32_t t : {9, 0, 1, 1, 1}) pen.accept(t);
  EXPECT_EQ(pen.count(9), 0);
  EXPECT_EQ(pen.count(0), 1);
  EXPECT_EQ(pen.count(1), 3);
  TokenCandidates c;
  const std::vector<float> logits = {3.0f, -2.0f, 1.0f, 0.0f, 0, 0, 0, 0, 0, 4.0f};
  c.reset(logits);
  pen.apply(c);
  auto logit = [&](std::int32_t id) {
    for (const auto& t : c.items)
      if (t.id == id) return t.logit;
    return std::numeric_limits<float>::quiet_NaN();
  };
  EXPECT_FLOAT_EQ(logit(0), 3.0f / 2.0f - 1 * 0.5f - 0.25f);   // positive: divided
  EXPECT_FLOAT_EQ(logit(1), -2.0f * 2.0f - 3 * 0.5f - 0.25f);  // negative: multiplied
  EXPECT_FLOAT_EQ(logit(2), 1.0f);                             // not in the window
  EXPECT_FLOAT_EQ(logit(9), 4.0f);                             // slid out of the window
  pen.reset();
  EXPECT_EQ(pen.count(1), 0);
}

TEST(SamplerChain, LogitBiasAddsAndBans) {
  LogitBiasStage bias({{0, 1.5f}, {2, -std::numeric_limits<float>::infinity()}, {0, 0.5f}});
  TokenCandidates c;
  c.reset(std::vector<float>{1.0f, 1.0f, 5.0f});
  bias.apply(c);
  ASSERT_EQ(c.items.size(), 2u);  // token 2 banned
  EXPECT_FLOAT_EQ(c.items[0].logit, 3.0f);  // both biases of token 0 add up
  LogitBiasStage ban_all({{0, -INFINITY}});
  c.reset(std::vector<float>{1.0f});
  EXPECT_THROW(ban_all.apply(c), InvalidArgument);
}

TEST(SamplerChain, TemperatureScalesAndZeroIsGreedy) {
  TokenCandidates c;
  c.reset(std::vector<float>{1.0f, 2.0f});
  TemperatureStage(0.5f).apply(c);
  EXPECT_FLOAT_EQ(c.items[0].logit, 2.0f);
  EXPECT_FLOAT_EQ(c.items[1].logit, 4.0f);
  EXPECT_EQ(ids_after(TemperatureStage(0.0f), {1.0f, 3.0f, 2.0f}), (std::set<std::int32_t>{1}));
}

TEST(SamplerChain, GreedyPicksFirstMaximum) {
  auto chain = SamplerChain::greedy();
  EXPECT_EQ(chain.sample(std::vector<float>{0.0f, 2.0f, 1.0f, 2.0f}), 1);
  // Penalties change the greedy choice once the token is in the window.
  auto pen = SamplerChain::greedy();
  pen.add(PenaltiesStage({.last_n = 8, .repeat = 4.0f}));
  pen.accept(1);
  EXPECT_EQ(pen.sample(std::vector<float>{0.0f, 2.0f, 1.0f}), 2);  // 2 / 4 = 0.5 < 1
}

TEST(SamplerChain, SameSeedSameTokens) {
  const auto l = logits_of({0.3, 0.3, 0.2, 0.1, 0.1});
  auto draw = [&](std::uint64_t seed) {
    SamplerChain c(seed);
    c.add(TopKStage(4)).add(TemperatureStage(1.2f));
    std::vector<std::int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(c.sample(l));
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

// A seeded draw reproduces the target distribution: 200,000 draws from p = (0.5, 0.3, 0.15,
// 0.05) after top-k 3 renormalises to (0.5263, 0.3158, 0.1579, 0). The fixed seed makes the
// counts deterministic; the tolerance is 5 standard deviations (sqrt(p(1-p)/n) <= 0.0012).
TEST(SamplerChain, DrawFrequenciesMatchProbabilities) {
  SamplerChain c(12345);
  c.add(TopKStage(3));
  const auto l = logits_of({0.5, 0.3, 0.15, 0.05});
  std::vector<int> count(4, 0);
  const int n = 200000;
  for (int i = 0; i < n; ++i) ++count[static_cast<std::size_t>(c.sample(l))];
  const double expected[4] = {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0};
  for (int i = 0; i < 4; ++i) {
    const double sd = std::sqrt(expected[i] * (1 - expected[i]) / n);
    EXPECT_NEAR(static_cast<double>(count[static_cast<std::size_t>(i)]) / n, expected[i], 5 * sd + 1e-12) << "token " << i;
  }
  EXPECT_EQ(count[3], 0);
}

// Temperature 2 flattens (0.5, 0.3, 0.2) to p^(1/2) normalised: (0.4155, 0.3218, 0.2627).
TEST(SamplerChain, TemperatureDrawFrequencies) {
  SamplerChain c(7);
  c.add(TemperatureStage(2.0f));
  const auto l = logits_of({0.5, 0.3, 0.2});
  std::vector<int> count(3, 0);
  const int n = 200000;
  for (int i = 0; i < n; ++i) ++count[static_cast<std::size_t>(c.sample(l))];
  const double s = std::sqrt(0.5) + std::sqrt(0.3) + std::sqrt(0.2);
  const double expected[3] = {std::sqrt(0.5) / s, std::sqrt(0.3) / s, std::sqrt(0.2) / s};
  for (int i = 0; i < 3; ++i) {
    const double sd = std::sqrt(expected[i] * (1 - expected[i]) / n);
    EXPECT_NEAR(static_cast<double>(count[static_cast<std::size_t>(i)]) / n, expected[i], 5 * sd) << "token " << i;
  }
}

TEST(SamplerChain, DefaultChainOrderAndGreedy) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.logit_bias = {{2, 10.0f}};
  auto greedy = make_sampler_chain(p);
  EXPECT_TRUE(greedy.is_greedy());
  EXPECT_EQ(greedy.sample(std::vector<float>{5.0f, 1.0f, 0.0f}), 2);  // the bias wins
  // top-k 2 then min-p: of (0.6, 0.3, 0.1) top-k keeps 0.6/0.3 -> renormalised 0.667/0.333;
  // min-p 0.4 (threshold 0.267) keeps both, min-p 0.6 (threshold 0.4) only the first.
  for (const auto& [min_p, want] : {std::pair{0.4f, std::set<std::int32_t>{0, 1}}, std::pair{0.6f, std::set<std::int32_t>{0}}}) {
    p = SamplingParams{.temperature = 1.0f, .top_k = 2, .top_p = 1.0f, .min_p = min_p, .seed = 3};
    auto chain = make_sampler_chain(p);
    std::set<std::int32_t> seen;
    for (int i = 0; i < 200; ++i) seen.insert(chain.sample(logits_of({0.6, 0.3, 0.1})));
    EXPECT_EQ(seen, want) << "min-p " << min_p;
  }
}

TEST(SamplerChain, RejectsBadParameters) {
  EXPECT_THROW(PenaltiesStage({.last_n = -1}), InvalidArgument);
  EXPECT_THROW(PenaltiesStage({.repeat = 0.0f}), InvalidArgument);
  EXPECT_THROW(TemperatureStage(NAN), InvalidArgument);
  EXPECT_THROW(SamplerChain(0), InvalidArgument);
  auto c = SamplerChain::greedy();
  EXPECT_THROW(c.sample(std::vector<float>{}), InvalidArgument);
  EXPECT_THROW(c.sample(std::vector<float>{NAN, NAN}), InvalidArgument);
}

}  // namespace
