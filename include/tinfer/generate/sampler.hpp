// tinfer/generate/sampler.hpp: choosing the next token from logits.
//
// TopPSampler reproduces llama2.c's run.c sampler draw for draw: the same xorshift generator,
// the same temperature / softmax / nucleus (top-p) procedure, so a given seed gives run.c's
// tokens. Temperature 0 is greedy (the first maximal logit).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/kernels/softmax.hpp"

namespace tinfer {

/// xorshift* generator as in run.c: 64-bit state, 32-bit outputs. Seed must be non-zero.
class XorShiftRng {
 public:
  explicit XorShiftRng(std::uint64_t seed) : state_(seed) {
    if (seed == 0) throw InvalidArgument("random seed must be non-zero");
  }
  std::uint32_t next_u32() noexcept {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return static_cast<std::uint32_t>((state_ * 0x2545F4914F6CDD1Dull) >> 32);
  }
  /// Uniform in [0, 1) with 24 random bits.
  float next_f32() noexcept { return static_cast<float>(next_u32() >> 8) / 16777216.0f; }

 private:
  std::uint64_t state_;
};

/// The index of the first maximal value.
inline std::int32_t argmax(std::span<const float> v) noexcept {
  std::size_t best = 0;
  for (std::size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<std::int32_t>(best);
}

struct TopPSamplerOptions {
  float temperature = 1.0f;  // 0: greedy
  float top_p = 0.9f;        // <= 0 or >= 1: sample from the full distribution
  std::uint64_t seed = 1;    // non-zero
};

class TopPSampler {
 public:
  explicit TopPSampler(TopPSamplerOptions opt) : opt_(opt), rng_(opt.seed) {
    if (!(opt.temperature >= 0.0f) || !std::isfinite(opt.temperature)) {
      throw InvalidArgument(detail::str_cat("temperature ", opt.temperature, " must be a finite value >= 0"));
    }
    if (!std::isfinite(opt.top_p)) throw InvalidArgument("top-p must be finite");
  }

  /// Picks the next token. `logits` is overwritten (scaled and turned into probabilities).
  std::int32_t sample(std::span<float> logits) {
    if (logits.empty()) throw InvalidArgument("cannot sample from an empty logit vector");
    if (opt_.temperature == 0.0f) return argmax(logits);
    for (float& l : logits) l /= opt_.temperature;
    kernels::softmax_inplace(logits.data(), static_cast<std::int64_t>(logits.size()));
    const float coin = rng_.next_f32();
    if (opt_.top_p <= 0.0f || opt_.top_p >= 1.0f) return sample_multinomial(logits, coin);
    return sample_top_p(logits, coin);
  }

 private:
  static std::int32_t sample_multinomial(std::span<const float> probs, float coin) {
    float cdf = 0.0f;
    for (std::size_t i = 0; i < probs.size(); ++i) {
      cdf += probs[i];
      if (coin < cdf) return static_cast<std::int32_t>(i);
    }
    return static_cast<std::int32_t>(probs.size() - 1);  // rounding left coin above the total
  }

  // Nucleus sampling: the smallest set of most probable tokens whose mass exceeds top_p. Tokens
  // below (1 - top_p) / (n - 1) cannot be in the set and are dropped before sorting (run.c's
  // shortcut, which also fixes which tokens the sort sees).
  std::int32_t sample_top_p(std::span<const float> probs, float coin) {
    const std::size_t n = probs.size();
    const float cutoff = (1.0f - opt_.top_p) / static_cast<float>(n - 1);
    candidates_.clear();
    for (std::size_t i = 0; i < n; ++i)
      if (probs[i] >= cutoff) candidates_.push_back({probs[i], static_cast<std::int32_t>(i)});
    if (candidates_.empty()) return sample_multinomial(probs, coin);
    std::stable_sort(candidates_.begin(), candidates_.end(), [](const Candidate& a, const Candidate& b) { return a.prob > b.prob; });
    float cumulative = 0.0f;
    std::size_t last = candidates_.size() - 1;
    for (std::size_t i = 0; i < candidates_.size(); ++i) {
      cumulative += candidates_[i].prob;
      if (cumulative > opt_.top_p) {
        last = i;
        break;
      }
    }
    const float r = coin * cumulative;
    float cdf = 0.0f;
    for (std::size_t i = 0; i <= last; ++i) {
      cdf += candidates_[i].prob;
      if (r < cdf) return candidates_[i].index;
    }
    return candidates_[last].index;
  }

  struct Candidate {
    float prob;
    std::int32_t index;
  };
  TopPSamplerOptions opt_;
  XorShiftRng rng_;
  std::vector<Candidate> candidates_;
};

}  // namespace tinfer
