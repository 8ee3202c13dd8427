// tinfer/generate/sampler_chain.hpp: sampling as a chain of stages the caller composes.
//
// The logits become a list of candidates (token id, logit, probability); each stage edits the
// list (penalties and biases change logits, top-k / top-p / min-p / typical-p drop candidates,
// temperature scales logits) and a final pick chooses a token: the most likely one (greedy) or a
// draw from the softmax of what is left, with a seeded generator (same seed and inputs, same
// tokens). The stages follow llama.cpp's definitions:
//
//   LogitBias     logit += bias per token; a bias of -inf removes the token.
//   Penalties     over the last N accepted tokens, with c = count of the token in the window:
//                 repeat penalty r: logit / r if logit > 0 else logit * r (c > 0);
//                 then logit -= c * frequency + (c > 0 ? presence : 0).
//   TopK          keeps the k highest logits (k <= 0: off).
//   TopP          keeps the smallest most-likely prefix whose probability reaches p (p >= 1: off).
//   MinP          keeps tokens with probability >= p * (the highest probability) (p <= 0: off).
//   Typical       locally typical sampling: with H the entropy of the distribution, keeps the
//                 tokens whose surprise |-log p - H| is smallest until their mass reaches p.
//   Temperature   logit / t; t <= 0 keeps only the most likely token.
//
// Probabilities are recomputed by a stage that needs them (softmax over the candidates left),
// so a filter after another sees the renormalised distribution, as in llama.cpp. Ties are
// broken by the smaller token id, so results never depend on sort stability.
//
// make_sampler_chain(SamplingParams) builds llama.cpp's default order: bias, penalties, top-k,
// typical, top-p, min-p, temperature, then the draw.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/generate/sampler.hpp"

namespace tinfer {

struct TokenCandidate {
  std::int32_t id;
  float logit;
  float p;  // valid after TokenCandidates::softmax()
};

/// The tokens still in the running, with their logits.
class TokenCandidates {
 public:
  /// One candidate per logit (NaN logits are left out: they cannot be compared).
  void reset(std::span<const float> logits) {
    items.clear();
    items.reserve(logits.size());
    for (std::size_t i = 0; i < logits.size(); ++i)
      if (!std::isnan(logits[i])) items.push_back({static_cast<std::int32_t>(i), logits[i], 0.0f});
    sorted = false;
  }
  /// Highest logit first (ties: smaller id first).
  void sort() {
    if (!sorted) std::sort(items.begin(), items.end(), before);
    sorted = true;
  }
  /// Sorts and sets p to the softmax of the logits.
  void softmax() {
    sort();
    if (items.empty()) return;
    const float max = items.front().logit;
    double sum = 0;
    for (auto& c : items) {
      c.p = std::exp(c.logit - max);
      sum += c.p;
    }
    for (auto& c : items) c.p = static_cast<float>(c.p / sum);
  }
  void truncate(std::size_t n) { items.resize(std::min(n, items.size())); }

  static bool before(const TokenCandidate& a, const TokenCandidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  }

  std::vector<TokenCandidate> items;
  bool sorted = false;
};

/// One stage of a SamplerChain.
class SamplerStage {
 public:
  virtual ~SamplerStage() = default;
  /// Edits the candidates (never leaves an empty list when given a non-empty one).
  virtual void apply(TokenCandidates& c) = 0;
  /// Sees each token added to the sequence (prompt and generated).
  virtual void accept(std::int32_t) {}
  /// Forgets accepted tokens.
  virtual void reset() {}
};

class LogitBiasStage final : public SamplerStage {
 public:
  /// (token, bias) pairs; -inf bans the token. Tokens outside the vocabulary are ignored.
  explicit LogitBiasStage(std::vector<std::pair<std::int32_t, float>> biases) {
    for (const auto& [id, b] : biases) {
      if (std::isnan(b) || b == std::numeric_limits<float>::infinity())
        throw InvalidArgument(detail::str_cat("logit bias of token ", id, " must be finite or -inf"));
      bias_[id] += b;
    }
  }
  void apply(TokenCandidates& c) override {
    if (bias_.empty()) return;
    std::size_t out = 0;
    for (auto& t : c.items) {
      if (auto it = bias_.find(t.id); it != bias_.end()) t.logit += it->second;
      if (t.logit != -std::numeric_limits<float>::infinity()) c.items[out++] = t;
    }
    if (out == 0) throw InvalidArgument("every token is banned by the logit biases: nothing left to sample");
    c.items.resize(out);
    c.sorted = false;
  }

 private:
  std::unordered_map<std::int32_t, float> bias_;
};

struct PenaltyParams {
  int last_n = 64;              // window of accepted tokens; 0: off
  float repeat = 1.0f;          // 1: off
  float frequency = 0.0f;       // 0: off
  float presence = 0.0f;        // 0: off
};

class PenaltiesStage final : public SamplerStage {
 public:
  explicit PenaltiesStage(PenaltyParams p) : p_(p) {
    if (p.last_n < 0) throw InvalidArgument(detail::str_cat("penalty window ", p.last_n, " is negative"));
    if (!(p.repeat > 0.0f) || !std::isfinite(p.repeat))
      throw InvalidArgument(detail::str_cat("repeat penalty ", p.repeat, " must be a finite value > 0"));
    if (!std::isfinite(p.frequency) || !std::isfinite(p.presence)) throw InvalidArgument("frequency and presence penalties must be finite");
  }
  void accept(std::int32_t token) override {
    if (p_.last_n == 0) return;
    window_.push_back(token);
    ++count_[token];
    if (static_cast<int>(window_.size()) > p_.last_n) {
      const std::int32_t old = window_.front();
      window_.pop_front();
      if (--count_[old] == 0) count_.erase(old);
    }
  }
  void reset() override {
    window_.clear();
    count_.clear();
  }
  void apply(TokenCandidates& c) override {
    if (count_.empty() || (p_.repeat == 1.0f && p_.frequency == 0.0f && p_.presence == 0.0f)) return;
    for (auto& t : c.items) {
      const auto it = count_.find(t.id);
      if (it == count_.end()) continue;
      const int n = it->second;
      t.logit = t.logit > 0 ? t.logit / p_.repeat : t.logit * p_.repeat;
      t.logit -= static_cast<float>(n) * p_.frequency + p_.presence;
    }
    c.sorted = false;
  }
  /// How often `token` occurs in the window.
  int count(std::int32_t token) const {
    const auto it = count_.find(token);
    return it == count_.end() ? 0 : it->second;
  }

 private:
  PenaltyParams p_;
  std::deque<std::int32_t> window_;
  std::unordered_map<std::int32_t, int> count_;
};

class TopKStage final : public SamplerStage {
 public:
  explicit TopKStage(int k) : k_(k) {}
  void apply(TokenCandidates& c) override {
    if (k_ <= 0 || static_cast<std::size_t>(k_) >= c.items.size()) return;
    const auto k = static_cast<std::size_t>(k_);
    if (!c.sorted) std::partial_sort(c.items.begin(), c.items.begin() + static_cast<std::ptrdiff_t>(k), c.items.end(), TokenCandidates::before);
    c.items.resize(k);
    c.sorted = true;
  }

 private:
  int k_;
};

class TopPStage final : public SamplerStage {
 public:
  explicit TopPStage(float p, std::size_t min_keep = 1) : p_(p), min_keep_(std::max<std::size_t>(min_keep, 1)) {
    if (!std::isfinite(p)) throw InvalidArgument("top-p must be finite");
  }
  void apply(TokenCandidates& c) override {
    if (p_ >= 1.0f || c.items.empty()) return;
    c.softmax();
    double cum = 0;
    std::size_t keep = c.items.size();
    for (std::size_t i = 0; i < c.items.size(); ++i) {
      cum += c.items[i].p;
      if (cum >= p_ && i + 1 >= min_keep_) {
        keep = i + 1;
        break;
      }
    }
    c.truncate(keep);
  }

 private:
  float p_;
  std::size_t min_keep_;
};

class MinPStage final : public SamplerStage {
 public:
  explicit MinPStage(float p, std::size_t min_keep = 1) : p_(p), min_keep_(std::max<std::size_t>(min_keep, 1)) {
    if (!std::isfinite(p)) throw InvalidArgument("min-p must be finite");
  }
  void apply(TokenCandidates& c) override {
    if (p_ <= 0.0f || c.items.empty()) return;
    c.softmax();
    const float threshold = p_ * c.items.front().p;
    std::size_t keep = min_keep_;
    while (keep < c.items.size() && c.items[keep].p >= threshold) ++keep;
    c.truncate(keep);
  }

 private:
  float p_;
  std::size_t min_keep_;
};

class TypicalStage final : public SamplerStage {
 public:
  explicit TypicalStage(float p, std::size_t min_keep = 1) : p_(p), min_keep_(std::max<std::size_t>(min_keep, 1)) {
    if (!std::isfinite(p)) throw InvalidArgument("typical-p must be finite");
  }
  void apply(TokenCandidates& c) override {
    if (p_ >= 1.0f || c.items.empty()) return;
    c.softmax();
    double entropy = 0;
    for (const auto& t : c.items)
      if (t.p > 0) entropy -= static_cast<double>(t.p) * std::log(static_cast<double>(t.p));
    scored_.clear();
    for (const auto& t : c.items) {
      const double surprise = t.p > 0 ? -std::log(static_cast<double>(t.p)) : std::numeric_limits<double>::infinity();
      scored_.push_back({std::abs(surprise - entropy), t});
    }
    std::stable_sort(scored_.begin(), scored_.end(), [](const Scored& a, const Scored& b) { return a.shift < b.shift; });
    double cum = 0;
    std::size_t keep = scored_.size();
    for (std::size_t i = 0; i < scored_.size(); ++i) {
      cum += scored_[i].c.p;
      if (cum > p_ && i + 1 >= min_keep_) {
        keep = i + 1;
        break;
      }
    }
    c.items.clear();
    for (std::size_t i = 0; i < keep; ++i) c.items.push_back(scored_[i].c);
    c.sorted = false;
  }

 private:
  struct Scored {
    double shift;
    TokenCandidate c;
  };
  float p_;
  std::size_t min_keep_;
  std::vector<Scored> scored_;
};

class TemperatureStage final : public SamplerStage {
 public:
  explicit TemperatureStage(float t) : t_(t) {
    if (!std::isfinite(t)) throw InvalidArgument("temperature must be finite");
  }
  void apply(TokenCandidates& c) override {
    if (c.items.empty()) return;
    if (t_ <= 0.0f) {
      c.sort();
      c.truncate(1);
      return;
    }
    for (auto& t : c.items) t.logit /= t_;
  }

 private:
  float t_;
};

/// Stages applied in order, then a final pick. Move-only. sample() does not record the token:
/// call accept() for every token that joins the sequence (generate() does, prompt included).
class SamplerChain {
 public:
  /// A chain ending in a draw from the remaining distribution, seeded with `seed` (non-zero).
  explicit SamplerChain(std::uint64_t seed) : rng_(seed), greedy_(false) {}
  /// A chain ending in picking the most likely remaining token.
  static SamplerChain greedy() { return SamplerChain(); }

  /// Appends a stage (any SamplerStage subclass, by value).
  template <class Stage>
  SamplerChain& add(Stage stage) {
    stages_.push_back(std::make_unique<Stage>(std::move(stage)));
    return *this;
  }
  SamplerChain& add(std::unique_ptr<SamplerStage> stage) {
    stages_.push_back(std::move(stage));
    return *this;
  }

  /// Runs the stages over `logits` (not modified) and picks a token.
  std::int32_t sample(std::span<const float> logits) {
    if (logits.empty()) throw InvalidArgument("cannot sample from an empty logit vector");
    cands_.reset(logits);
    if (cands_.items.empty()) throw InvalidArgument("every logit is NaN: nothing to sample");
    for (auto& s : stages_) s->apply(cands_);
    if (cands_.items.empty()) throw InvalidArgument("no candidate token left after the sampling stages");
    if (greedy_) {
      return std::min_element(cands_.items.begin(), cands_.items.end(), TokenCandidates::before)->id;
    }
    cands_.softmax();
    const float coin = rng_.next_f32();
    float cdf = 0.0f;
    for (const auto& t : cands_.items) {
      cdf += t.p;
      if (coin < cdf) return t.id;
    }
    return cands_.items.back().id;  // rounding left the coin above the total
  }

  void accept(std::int32_t token) {
    for (auto& s : stages_) s->accept(token);
  }
  void reset() {
    for (auto& s : stages_) s->reset();
  }

  /// The candidates after the last sample()'s stages (sorted by probability when the final
  /// pick was a draw), for inspection and tests.
  const TokenCandidates& candidates() const noexcept { return cands_; }
  bool is_greedy() const noexcept { return greedy_; }

 private:
  SamplerChain() : rng_(1), greedy_(true) {}
  std::vector<std::unique_ptr<SamplerStage>> stages_;
  TokenCandidates cands_;
  XorShiftRng rng_;
  bool greedy_;
};

/// The usual knobs (llama.cpp's names and neutral values).
struct SamplingParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off
  float typical_p = 1.0f;    // >= 1: off
  PenaltyParams penalties{};
  std::vector<std::pair<std::int32_t, float>> logit_bias{};
  std::uint64_t seed = 1;    // non-zero
};

/// llama.cpp's default order: logit bias, penalties, top-k, typical, top-p, min-p, temperature,
/// then a seeded draw (temperature <= 0: the most likely token after bias and penalties).
inline SamplerChain make_sampler_chain(const SamplingParams& p) {
  SamplerChain chain = p.temperature <= 0.0f ? SamplerChain::greedy() : SamplerChain(p.seed);
  if (!p.logit_bias.empty()) chain.add(LogitBiasStage(p.logit_bias));
  chain.add(PenaltiesStage(p.penalties));
  if (p.temperature > 0.0f) {
    if (p.top_k > 0) chain.add(TopKStage(p.top_k));
    if (p.typical_p < 1.0f) chain.add(TypicalStage(p.typical_p));
    if (p.top_p < 1.0f) chain.add(TopPStage(p.top_p));
    if (p.min_p > 0.0f) chain.add(MinPStage(p.min_p));
    chain.add(TemperatureStage(p.temperature));
  }
  return chain;
}

}  // namespace tinfer
