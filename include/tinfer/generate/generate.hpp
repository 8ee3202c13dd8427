// tinfer/generate/generate.hpp: the autoregressive generation loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"

namespace tinfer {

struct GenerateOptions {
  int max_new_tokens = 256;       // sampled tokens at most
  std::int32_t stop_token = -1;   // generation ends (without emitting it) when sampled; -1: none
};

struct GenerateResult {
  std::vector<std::int32_t> tokens;  // the new tokens, in order
  int n_prompt = 0;
  double prompt_seconds = 0;    // feeding the prompt (to the first logits)
  double generate_seconds = 0;  // the rest
  bool hit_stop_token = false;
  bool context_full = false;    // stopped because the session's context was full
  bool stopped_by_callback = false;
};

/// Feeds `prompt` (at least one token, e.g. BOS) into a fresh `session` from position 0, then
/// samples up to max_new_tokens tokens, calling on_token(prev, token) for each new one; the
/// callback returns false to stop. Works with any model whose forward(session, token, pos, pool)
/// returns a span of logits and any sampler with sample(std::span<float>).
/// Throws InvalidArgument when the prompt is empty or longer than the session's context.
template <class Model, class Session, class Sampler, class OnToken>
GenerateResult generate(const Model& model, Session& session, std::span<const std::int32_t> prompt, Sampler& sampler,
                        const GenerateOptions& opt, OnToken&& on_token, ThreadPool* pool = nullptr) {
  using Clock = std::chrono::steady_clock;
  if (prompt.empty()) throw InvalidArgument("the prompt must hold at least one token (e.g. BOS)");
  if (opt.max_new_tokens < 0) throw InvalidArgument(detail::str_cat("token count ", opt.max_new_tokens, " is negative"));
  const int context = session.context();
  if (prompt.size() > static_cast<std::size_t>(context)) {
    throw InvalidArgument(detail::str_cat("the prompt is ", prompt.size(), " tokens but the context holds ", context,
                                          ": use a larger context (-c) or a shorter prompt"));
  }
  GenerateResult res;
  res.n_prompt = static_cast<int>(prompt.size());
  const auto t0 = Clock::now();
  std::span<float> logits;
  int pos = 0;
  for (; pos < static_cast<int>(prompt.size()); ++pos) logits = model.forward(session, prompt[static_cast<std::size_t>(pos)], pos, pool);
  const auto t1 = Clock::now();
  std::int32_t prev = prompt.back();
  while (static_cast<int>(res.tokens.size()) < opt.max_new_tokens) {
    const std::int32_t next = sampler.sample(logits);
    if (next == opt.stop_token) {
      res.hit_stop_token = true;
      break;
    }
    res.tokens.push_back(next);
    if (!on_token(prev, next)) {
      res.stopped_by_callback = true;
      break;
    }
    prev = next;
    if (static_cast<int>(res.tokens.size()) == opt.max_new_tokens) break;
    if (pos >= context) {
      res.context_full = true;
      break;
    }
    logits = model.forward(session, next, pos, pool);
    ++pos;
  }
  const auto t2 = Clock::now();
  res.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  res.generate_seconds = std::chrono::duration<double>(t2 - t1).count();
  return res;
}

}  // namespace tinfer
