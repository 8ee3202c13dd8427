// tinfer/generate/speculative.hpp: speculative decoding with a smaller draft model.
//
// Each round the draft model (same vocabulary, cheaper) proposes up to n_draft tokens greedily;
// the target model scores the last committed token and all proposals in one batched forward
// (forward_batch with all_logits), and the sampler picks the target's token at each position in
// turn. Proposals are kept while they equal the target's pick; the first pick that differs is
// kept instead and the round ends, so every round yields at least one token. Both caches are
// rolled back by position: the next forward writes over the rejected entries.
//
// The target's sampler makes exactly the calls (accept, sample) it would make generating alone,
// on the same logits, so the output is the target's own output for any sampler, greedy or
// seeded; only the number of target passes changes. (With a batched forward whose rounding
// differs from the one-token forward, a near tie could resolve differently.)
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/generate/generate.hpp"
#include "tinfer/generate/sampler.hpp"

namespace tinfer {

struct SpeculativeStats {
  long drafted = 0;        // tokens the draft model proposed
  long accepted = 0;       // proposals the target agreed with (and that were used)
  long target_passes = 0;  // batched target forwards after the prompt
  long draft_forwards = 0; // one-token draft forwards
  double acceptance_rate() const { return drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0.0; }
};

/// Generates from `prompt` (fed into fresh sessions of both models) like generate() with the
/// target alone, drafting n_draft >= 1 tokens per round with `draft`. on_token(prev, token) as
/// for generate(). Stop strings and context shift are not used; generation ends at a full
/// context (the smaller of the two sessions').
template <class TModel, class TSession, class DModel, class DSession, class Sampler, class OnToken>
GenerateResult generate_speculative(const TModel& target, TSession& tsession, const DModel& draft, DSession& dsession,
                                    std::span<const std::int32_t> prompt, Sampler& sampler, const GenerateOptions& opt,
                                    int n_draft, OnToken&& on_token, ThreadPool* pool = nullptr,
                                    SpeculativeStats* stats = nullptr) {
  using Clock = std::chrono::steady_clock;
  if (prompt.empty()) throw InvalidArgument("the prompt must hold at least one token (e.g. BOS)");
  if (n_draft < 1) throw InvalidArgument(detail::str_cat("draft length ", n_draft, " must be at least 1"));
  if (opt.max_new_tokens < -1) throw InvalidArgument(detail::str_cat("token count ", opt.max_new_tokens, " is negative"));
  const int context = std::min(tsession.context(), dsession.context());
  if (static_cast<int>(prompt.size()) > context) {
    throw InvalidArgument(detail::str_cat("the prompt is ", prompt.size(), " tokens but the context holds ", context,
                                          ": use a larger context (-c) or a shorter prompt"));
  }
  SpeculativeStats local;
  SpeculativeStats& st = stats != nullptr ? *stats : local;
  GenerateResult res;
  res.n_prompt = static_cast<int>(prompt.size());
  std::vector<std::int32_t> tokens(prompt.begin(), prompt.end());
  const auto t0 = Clock::now();
  // Both caches hold all but the last prompt token; each round feeds that last token first.
  int t_cached = 0, d_cached = 0;
  generate_detail::accept(sampler, prompt);
  if (prompt.size() > 1) {
    target.forward_batch(tsession, prompt.first(prompt.size() - 1), 0, pool);
    draft.forward_batch(dsession, prompt.first(prompt.size() - 1), 0, pool);
    t_cached = d_cached = static_cast<int>(prompt.size()) - 1;
  }
  const auto t1 = Clock::now();
  std::vector<std::int32_t> batch;
  bool stop = false;
  while (!stop) {
    const long produced = static_cast<long>(res.tokens.size());
    if (opt.max_new_tokens >= 0 && produced >= opt.max_new_tokens) break;
    if (t_cached >= context) {  // no position left for the last token
      res.context_full = true;
      break;
    }
    // Proposals beyond what is still wanted or what fits are wasted work.
    int n = std::min(n_draft, context - t_cached - 1);
    if (opt.max_new_tokens >= 0) n = std::min<long>(n, opt.max_new_tokens - produced - 1);
    n = std::max(n, 0);
    batch.assign(1, tokens.back());
    if (n > 0) {
      if (d_cached < t_cached) {  // catch up on tokens the draft has not seen
        draft.forward_batch(dsession, std::span<const std::int32_t>(tokens).subspan(static_cast<std::size_t>(d_cached),
                                                                                   static_cast<std::size_t>(t_cached - d_cached)),
                            d_cached, pool);
      }
      std::int32_t cur = tokens.back();
      for (int i = 0; i < n; ++i) {
        const auto logits = draft.forward(dsession, cur, t_cached + i, pool);
        cur = argmax(logits);
        batch.push_back(cur);
      }
      st.draft_forwards += n;
      st.drafted += n;
    }
    const auto rows = target.forward_batch(tsession, std::span<const std::int32_t>(batch), t_cached, pool, /*all_logits=*/true);
    ++st.target_passes;
    const std::size_t vocab = rows.size() / batch.size();
    int m = 0;  // tokens committed this round
    for (int i = 0; i <= n; ++i) {
      const std::int32_t t = sampler.sample(rows.subspan(static_cast<std::size_t>(i) * vocab, vocab));
      if (t == opt.stop_token && opt.stop_token >= 0) {
        res.hit_stop_token = true;
        stop = true;
        break;
      }
      const std::int32_t prev = tokens.back();
      tokens.push_back(t);
      res.tokens.push_back(t);
      ++m;
      generate_detail::accept(sampler, std::span<const std::int32_t>(&tokens.back(), 1));
      if (!on_token(prev, t)) {
        res.stopped_by_callback = true;
        stop = true;
        break;
      }
      if (opt.max_new_tokens >= 0 && static_cast<long>(res.tokens.size()) >= opt.max_new_tokens) {
        stop = true;
        break;
      }
      if (i < n && t == batch[static_cast<std::size_t>(i) + 1]) {
        ++st.accepted;
        continue;
      }
      break;
    }
    // The target's entries for the last token and the agreeing proposals stay; the draft's too,
    // up to the proposals it fed (it never fed its last one).
    if (n > 0) d_cached = t_cached + std::min(m, n);
    t_cached += m;
  }
  const auto t2 = Clock::now();
  res.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  res.generate_seconds = std::chrono::duration<double>(t2 - t1).count();
  return res;
}

}  // namespace tinfer
