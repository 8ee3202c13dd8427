// tinfer/generate/batch_generate.hpp: several independent sequences generated together.
//
// Each sequence has its own session, sampler and options; one model serves them all. Every
// step feeds the latest token of each running sequence; when the model offers forward_multi()
// (one token for each of several sessions in one pass, sharing each weight read between the
// rows) the step is one call, else one forward per sequence. Sequences end on their own (max
// tokens, stop token, full context, callback); the others go on.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/generate/generate.hpp"

namespace tinfer {

template <class Session, class Sampler>
struct BatchSequence {
  Session* session = nullptr;   // its own session (not shared with another sequence)
  Sampler* sampler = nullptr;   // its own sampler
  SequenceState seq{};          // prompt in seq.tokens (n_cached 0); generated tokens appended
  GenerateOptions opt{};        // max_new_tokens and stop_token (stop strings and context shift
                                // are not used here)
  GenerateResult result{};      // filled by generate_batch()
  bool done = false;
};

namespace batch_detail {

template <class Model, class Session>
constexpr bool has_forward_multi =
    requires(const Model& m, std::span<Session* const> s, std::span<const std::int32_t> t, std::span<const int> p, ThreadPool* pool) {
      m.forward_multi(s, t, p, pool);
    };

}  // namespace batch_detail

/// Generates every sequence of `batch` to its end. on_token(i, prev, token) sees each new token
/// of sequence i and returns false to end that sequence. Whether forward_multi() was used is
/// returned (false: a loop over sessions).
template <class Model, class Session, class Sampler, class OnToken>
bool generate_batch(const Model& model, std::span<BatchSequence<Session, Sampler>> batch, OnToken&& on_token,
                    ThreadPool* pool = nullptr) {
  using Clock = std::chrono::steady_clock;
  for (auto& b : batch) {
    if (b.session == nullptr || b.sampler == nullptr) throw InvalidArgument("generate_batch(): a sequence has no session or sampler");
    if (b.seq.tokens.empty()) throw InvalidArgument("the prompt must hold at least one token (e.g. BOS)");
    if (static_cast<int>(b.seq.tokens.size()) > b.session->context()) {
      throw InvalidArgument(detail::str_cat("the prompt is ", b.seq.tokens.size(), " tokens but the context holds ",
                                            b.session->context(), ": use a larger context (-c) or a shorter prompt"));
    }
    if (b.opt.max_new_tokens < -1) throw InvalidArgument(detail::str_cat("token count ", b.opt.max_new_tokens, " is negative"));
    for (std::size_t j = 0; j < batch.size(); ++j)
      if (&b != &batch[j] && b.session == batch[j].session) throw InvalidArgument("generate_batch(): two sequences share a session");
    b.seq.n_cached = 0;
    b.result = GenerateResult{};
    b.done = false;
  }
  // Samples sequence i's next token from `logits`; false when the sequence has ended.
  auto step = [&](std::size_t i, std::span<float> logits) {
    auto& b = batch[i];
    auto& r = b.result;
    if (b.opt.max_new_tokens >= 0 && static_cast<int>(r.tokens.size()) >= b.opt.max_new_tokens) return false;
    const std::int32_t next = b.sampler->sample(logits);
    if (next == b.opt.stop_token && b.opt.stop_token >= 0) {
      r.hit_stop_token = true;
      return false;
    }
    const std::int32_t prev = b.seq.tokens.back();
    b.seq.tokens.push_back(next);
    r.tokens.push_back(next);
    if (!on_token(i, prev, next)) {
      r.stopped_by_callback = true;
      return false;
    }
    if (b.opt.max_new_tokens >= 0 && static_cast<int>(r.tokens.size()) >= b.opt.max_new_tokens) return false;
    if (static_cast<int>(b.seq.tokens.size()) > b.session->context()) {
      r.context_full = true;
      return false;
    }
    return true;
  };

  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& b = batch[i];
    const auto t0 = Clock::now();
    b.result.n_prompt = static_cast<int>(b.seq.tokens.size());
    generate_detail::accept(*b.sampler, std::span<const std::int32_t>(b.seq.tokens));
    auto logits = model.forward_batch(*b.session, std::span<const std::int32_t>(b.seq.tokens), 0, pool);
    b.seq.n_cached = static_cast<int>(b.seq.tokens.size());
    b.result.prompt_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    b.done = !step(i, logits);
  }
  const auto t_gen = Clock::now();

  std::vector<std::size_t> live;
  std::vector<Session*> sessions;
  std::vector<std::int32_t> tokens;
  std::vector<int> positions;
  bool used_multi = false;
  for (;;) {
    live.clear();
    sessions.clear();
    tokens.clear();
    positions.clear();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) continue;
      auto& b = batch[i];
      live.push_back(i);
      sessions.push_back(b.session);
      tokens.push_back(b.seq.tokens.back());
      positions.push_back(b.seq.n_cached);
      generate_detail::accept(*b.sampler, std::span<const std::int32_t>(&b.seq.tokens.back(), 1));
    }
    if (live.empty()) break;
    if constexpr (batch_detail::has_forward_multi<Model, Session>) {
      if (live.size() > 1) {
        used_multi = true;
        const auto rows = model.forward_multi(std::span<Session* const>(sessions), std::span<const std::int32_t>(tokens),
                                              std::span<const int>(positions), pool);
        const std::size_t vocab = rows.size() / live.size();
        // Every row is sampled before any other call: the rows live in the first session.
        for (std::size_t r = 0; r < live.size(); ++r) {
          auto& b = batch[live[r]];
          ++b.seq.n_cached;
          b.done = !step(live[r], rows.subspan(r * vocab, vocab));
        }
        continue;
      }
    }
    for (std::size_t r = 0; r < live.size(); ++r) {
      auto& b = batch[live[r]];
      const auto logits = model.forward_batch(*b.session, std::span<const std::int32_t>(&tokens[r], 1), positions[r], pool);
      ++b.seq.n_cached;
      b.done = !step(live[r], logits);
    }
  }
  const double gen_s = std::chrono::duration<double>(Clock::now() - t_gen).count();
  for (auto& b : batch) b.result.generate_seconds = gen_s;
  return used_multi;
}

}  // namespace tinfer
