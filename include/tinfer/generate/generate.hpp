// tinfer/generate/generate.hpp: the autoregressive generation loop.
//
// generate() feeds a prompt, then samples one token at a time until the maximum count, the
// stop token (EOS), a full context or the callback says stop. generate_text() adds text: it
// streams complete UTF-8 to a callback and stops at stop strings (text from a stop string on is
// never passed on). Both work with any model whose forward_batch(session, tokens, pos0, pool)
// returns the last token's logits (LlamaModel, Gpt2Model, Model) and any sampler with
// sample(logits) (TopPSampler, SamplerChain); a sampler with accept(token) sees every token
// that enters the sequence, prompt included, before the next token is sampled.
//
// A SequenceState carries a sequence across calls, so a conversation keeps its session: append
// the next turn's tokens and call generate() again; only tokens not yet in the cache are fed.
//
// Context shift (opt.context_shift): when the sequence reaches the session's context, the first
// n_keep tokens stay, the oldest half of the rest is dropped and generation goes on. Models with
// rotary positions (Llama) move their cache entries and re-rotate the keys (context_shift(), as
// llama.cpp does: no recomputation; the kept entries keep what they saw of the dropped tokens).
// Models with learned absolute positions (GPT-2) cannot, so the kept tokens after n_keep are fed
// again at their new positions (one batched forward); GenerateResult::recomputed_tokens counts them.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/generate/text_stream.hpp"

namespace tinfer {

struct GenerateOptions {
  int max_new_tokens = 256;        // sampled tokens at most; -1: no limit
  std::int32_t stop_token = -1;    // generation ends (without emitting it) when sampled; -1: none
  std::vector<std::string> stop_strings{};  // generate_text(): ends when the text contains one
  bool context_shift = false;      // on a full context, drop the oldest half after n_keep tokens
  int n_keep = 0;                  // tokens at the start kept by a context shift (-1: the prompt)
};

struct GenerateResult {
  std::vector<std::int32_t> tokens{};  // the new tokens, in order
  int n_prompt = 0;             // tokens fed before the first sample
  double prompt_seconds = 0;    // feeding the prompt (to the first logits)
  double generate_seconds = 0;  // the rest
  bool hit_stop_token = false;
  bool context_full = false;    // stopped because the session's context was full
  bool stopped_by_callback = false;
  std::string stop_string{};    // generate_text(): the stop string that ended generation
  int context_shifts = 0;       // how often the context was shifted
  int recomputed_tokens = 0;    // tokens fed again after shifts (models that cannot move their cache)
};

/// One sequence: all its tokens in order, of which the first n_cached are in the session's
/// cache at positions 0..n_cached-1. The tokens after them are fed on the next call.
struct SequenceState {
  std::vector<std::int32_t> tokens;
  int n_cached = 0;
};

namespace generate_detail {

template <class Sampler>
void accept(Sampler& s, std::span<const std::int32_t> tokens) {
  if constexpr (requires(Sampler& x, std::int32_t t) { x.accept(t); }) {
    for (std::int32_t t : tokens) s.accept(t);
  }
}

/// Moves the session's cache by the model's context_shift() when it has one that works for this
/// model (Llama: yes; GPT-2: no); false otherwise.
template <class Model, class Session>
bool shift_cache(const Model& model, Session& session, int n_keep, int n_discard) {
  if constexpr (requires { model.can_context_shift(); }) {
    if (!model.can_context_shift()) return false;
    model.context_shift(session, n_keep, n_discard);
    return true;
  } else if constexpr (requires { model.context_shift(session, n_keep, n_discard); }) {
    try {
      model.context_shift(session, n_keep, n_discard);
      return true;
    } catch (const UnsupportedError&) {
      return false;
    }
  } else {
    return false;
  }
}

/// Drops tokens [n_keep, n_keep + n_discard) where n_discard is half of the cached tokens after
/// n_keep, from the sequence and from the cache (moved when the model can, else the tokens after
/// n_keep must be fed again: n_cached becomes n_keep). Returns the number dropped (0: nothing
/// can be dropped).
template <class Model, class Session>
int shift_context(const Model& model, Session& session, SequenceState& seq, int n_keep) {
  n_keep = std::clamp(n_keep, 0, seq.n_cached);
  const int n_discard = (seq.n_cached - n_keep) / 2;
  if (n_discard <= 0) return 0;
  seq.tokens.erase(seq.tokens.begin() + n_keep, seq.tokens.begin() + n_keep + n_discard);
  if (shift_cache(model, session, n_keep, n_discard)) {
    seq.n_cached -= n_discard;
  } else {
    seq.n_cached = n_keep;
  }
  return n_discard;
}

}  // namespace generate_detail

/// Continues `seq` in `session`: feeds seq.tokens[seq.n_cached..] (at least one token), then
/// samples up to max_new_tokens tokens, appending each to seq.tokens and calling
/// on_token(prev, token), which returns false to stop. The stop token is not appended. On
/// return the last sampled token is in seq.tokens but not yet in the cache.
/// Throws InvalidArgument when nothing is to be fed or the tokens to feed do not fit the context
/// (even after a context shift, when enabled).
template <class Model, class Session, class Sampler, class OnToken>
GenerateResult generate(const Model& model, Session& session, SequenceState& seq, Sampler& sampler,
                        const GenerateOptions& opt, OnToken&& on_token, ThreadPool* pool = nullptr) {
  using Clock = std::chrono::steady_clock;
  if (opt.max_new_tokens < -1) throw InvalidArgument(detail::str_cat("token count ", opt.max_new_tokens, " is negative"));
  if (seq.n_cached < 0 || seq.n_cached > static_cast<int>(seq.tokens.size())) {
    throw InvalidArgument(detail::str_cat("sequence state: ", seq.n_cached, " cached of ", seq.tokens.size(), " tokens"));
  }
  if (seq.tokens.size() == static_cast<std::size_t>(seq.n_cached)) {
    throw InvalidArgument("the prompt must hold at least one token (e.g. BOS)");
  }
  const int context = session.context();
  const int n_keep = opt.n_keep < 0 ? static_cast<int>(seq.tokens.size()) : opt.n_keep;
  GenerateResult res;
  res.n_prompt = static_cast<int>(seq.tokens.size()) - seq.n_cached;
  // Tokens at index >= fresh have not been shown to the sampler yet.
  std::size_t fresh = static_cast<std::size_t>(seq.n_cached);

  // Makes room when enabled; false when the uncached tokens cannot fit.
  auto make_room = [&]() {
    while (static_cast<int>(seq.tokens.size()) > context) {
      if (!opt.context_shift) return false;
      const int before = seq.n_cached;
      const int dropped = generate_detail::shift_context(model, session, seq, n_keep);
      if (dropped == 0) return false;
      res.recomputed_tokens += before - dropped - seq.n_cached;
      fresh -= static_cast<std::size_t>(dropped);
      ++res.context_shifts;
    }
    return true;
  };
  auto feed = [&]() {
    const std::span<const std::int32_t> all(seq.tokens);
    if (fresh < seq.tokens.size()) generate_detail::accept(sampler, all.subspan(fresh));
    fresh = seq.tokens.size();
    const auto todo = all.subspan(static_cast<std::size_t>(seq.n_cached));
    auto logits = model.forward_batch(session, todo, seq.n_cached, pool);
    seq.n_cached = static_cast<int>(seq.tokens.size());
    return logits;
  };

  const auto t0 = Clock::now();
  if (!make_room()) {
    throw InvalidArgument(detail::str_cat("the prompt is ", seq.tokens.size(), " tokens but the context holds ", context,
                                          ": use a larger context (-c) or a shorter prompt"));
  }
  auto logits = feed();
  const auto t1 = Clock::now();
  auto room_left = [&] { return opt.max_new_tokens < 0 || static_cast<int>(res.tokens.size()) < opt.max_new_tokens; };
  while (room_left()) {
    const std::int32_t next = sampler.sample(logits);
    if (next == opt.stop_token && opt.stop_token >= 0) {
      res.hit_stop_token = true;
      break;
    }
    const std::int32_t prev = seq.tokens.back();
    seq.tokens.push_back(next);
    res.tokens.push_back(next);
    if (!on_token(prev, next)) {
      res.stopped_by_callback = true;
      break;
    }
    if (!room_left()) break;
    if (!make_room()) {
      res.context_full = true;
      break;
    }
    logits = feed();
  }
  const auto t2 = Clock::now();
  res.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  res.generate_seconds = std::chrono::duration<double>(t2 - t1).count();
  return res;
}

/// Feeds `prompt` (at least one token, e.g. BOS) into a fresh `session` from position 0 and
/// generates as above.
template <class Model, class Session, class Sampler, class OnToken>
GenerateResult generate(const Model& model, Session& session, std::span<const std::int32_t> prompt, Sampler& sampler,
                        const GenerateOptions& opt, OnToken&& on_token, ThreadPool* pool = nullptr) {
  SequenceState seq{std::vector<std::int32_t>(prompt.begin(), prompt.end()), 0};
  return generate(model, session, seq, sampler, opt, std::forward<OnToken>(on_token), pool);
}

/// As generate(), with text: `decoder.push(prev, token)` gives a token's bytes (possibly an
/// incomplete UTF-8 character) and `decoder.finish()` whatever it held back at the end;
/// on_text(std::string_view) receives the text as soon as it is complete UTF-8 and cannot be the
/// start of a stop string, and returns false to stop. Generation ends when the text contains one
/// of opt.stop_strings (res.stop_string says which); neither it nor anything after it is passed
/// to on_text (the tokens stay in seq, as the model saw them).
template <class Model, class Session, class Sampler, class Decoder, class OnText>
GenerateResult generate_text(const Model& model, Session& session, SequenceState& seq, Sampler& sampler,
                             const GenerateOptions& opt, Decoder& decoder, OnText&& on_text, ThreadPool* pool = nullptr) {
  TextStream text(opt.stop_strings);
  bool user_stop = false;
  auto deliver = [&](const std::string& s) {
    if (!s.empty() && !user_stop && !on_text(std::string_view(s))) user_stop = true;
  };
  GenerateResult res = generate(
      model, session, seq, sampler, opt,
      [&](std::int32_t prev, std::int32_t token) {
        deliver(text.push(decoder.push(prev, token)));
        return !user_stop && !text.stopped();
      },
      pool);
  if (!text.stopped() && !user_stop) {
    deliver(text.push(decoder.finish()));
    deliver(text.finish());
  }
  if (text.stopped()) {
    res.stopped_by_callback = false;
    res.stop_string = text.matched_stop();
  }
  return res;
}

}  // namespace tinfer
