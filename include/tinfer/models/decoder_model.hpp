// tinfer/models/decoder_model.hpp: what every decoder family does the same way around its layers —
// turning forward / forward_batch / forward_multi calls into rows (session, token, position),
// checking them all before any work, splitting long batches into passes, grouping rows into
// attention jobs, reporting linear-layer inputs to observers, and committing each session's
// n_past once a pass is done.
//
// A family derives `class FooModel : public DecoderModel<FooModel, FooSession>` and provides
//   int vocab_size() const;
//   void run_rows(std::span<const Row> rows, int logits_from, float* logits, FooSession& scratch,
//                 ThreadPool* pool) const;   // the layers; rows [logits_from, n) get logits
// (the CRTP keeps the per-family layer code inlined; there is no virtual call per pass).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "tinfer/attention/flash_attention.hpp"
#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/models/decoder_session.hpp"
#include "tinfer/models/linear_observer.hpp"

namespace tinfer {

template <class Derived, class Session>
class DecoderModel {
 public:
  /// Rows one pass computes at most; longer batches run in passes of this many (scratch bound).
  static constexpr int kMaxRows = 512;

  /// Feeds `token` at position `pos` of `session`: writes that position's keys and values into
  /// the session's cache (positions before `pos` must already be there) and returns the logits
  /// of the next token (vocab_size floats, valid until the next call on this session).
  /// `pool` splits matrix rows and attention work across threads (nullptr: this thread only).
  std::span<float> forward(Session& s, std::int32_t token, int pos, ThreadPool* pool = nullptr) const {
    const Row row{&s, token, pos};
    validate_rows(std::span<const Row>(&row, 1), "forward()");
    self().run_rows(std::span<const Row>(&row, 1), 0, s.logits_.data(), s, pool);
    s.has_logits_ = true;
    return {s.logits_.data(), s.logits_.size()};
  }

  /// Feeds tokens[i] at position pos0 + i for every i in one batched pass per layer (every
  /// matrix multiplies all rows at once; attention is tiled over the session's cache) and returns
  /// the logits of the last token (vocab_size floats) or, with all_logits, of every token
  /// (tokens.size() rows of vocab_size floats), valid until the next call on this session.
  /// The logits equal forward()'s up to float summation order.
  /// Checks every token and position before any work, so a bad batch leaves the cache untouched.
  std::span<float> forward_batch(Session& s, std::span<const std::int32_t> tokens, int pos0, ThreadPool* pool = nullptr,
                                 bool all_logits = false) const {
    const auto n = static_cast<std::int64_t>(tokens.size());
    if (n == 0) throw InvalidArgument("forward_batch(): the batch holds no tokens");
    if (pos0 < 0 || pos0 + n > s.context()) {
      throw InvalidArgument(detail::str_cat("positions ", pos0, "..", pos0 + n - 1, " are outside the session's context of ",
                                            s.context(), " tokens; use a larger context or a shorter input"));
    }
    std::vector<Row> rows(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) rows[static_cast<std::size_t>(i)] = {&s, tokens[static_cast<std::size_t>(i)], pos0 + static_cast<int>(i)};
    validate_rows(rows, "forward_batch()");
    const auto vocab = static_cast<std::size_t>(self().vocab_size());
    if (all_logits && s.batch_logits_.size() < static_cast<std::size_t>(n) * vocab) {
      s.batch_logits_ = AlignedBuffer<float>(static_cast<std::size_t>(n) * vocab);
    }
    // A ring cache must still hold every row's window after the pass writes its keys.
    const std::int64_t step = s.cache_.ring() ? std::min<std::int64_t>(kMaxRows, s.cache_.capacity() - std::max(1, s.window_) + 1)
                                              : kMaxRows;
    for (std::int64_t r0 = 0; r0 < n; r0 += step) {
      const std::int64_t r1 = std::min(n, r0 + step);
      const std::span<const Row> part(rows.data() + r0, static_cast<std::size_t>(r1 - r0));
      if (all_logits) {
        self().run_rows(part, 0, s.batch_logits_.data() + static_cast<std::size_t>(r0) * vocab, s, pool);
      } else {
        self().run_rows(part, r1 == n ? static_cast<int>(r1 - r0 - 1) : static_cast<int>(r1 - r0), s.logits_.data(), s, pool);
      }
    }
    s.has_logits_ = true;
    if (!all_logits) return {s.logits_.data(), vocab};
    std::copy_n(s.batch_logits_.data() + static_cast<std::size_t>(n - 1) * vocab, vocab, s.logits_.data());
    return {s.batch_logits_.data(), static_cast<std::size_t>(n) * vocab};
  }

  /// One token for each of several sessions in one pass: tokens[i] at positions[i] of
  /// *sessions[i]. All rows share each weight read (batched decoding of independent sequences).
  /// Returns sessions.size() rows of vocab_size logits (row i for sessions[i]), valid until the
  /// next call on sessions[0]; each session's last_logits() is its row too. A session may appear
  /// more than once (its rows then attend causally to each other by position).
  /// Checks everything before any work.
  std::span<float> forward_multi(std::span<Session* const> sessions, std::span<const std::int32_t> tokens,
                                 std::span<const int> positions, ThreadPool* pool = nullptr) const {
    const std::size_t n = sessions.size();
    if (n == 0) throw InvalidArgument("forward_multi(): no sessions");
    if (tokens.size() != n || positions.size() != n) {
      throw InvalidArgument(detail::str_cat("forward_multi(): ", n, " sessions, ", tokens.size(), " tokens and ", positions.size(),
                                            " positions: give one token and one position per session"));
    }
    std::vector<Row> rows(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (sessions[i] == nullptr) throw InvalidArgument("forward_multi(): a session pointer is null");
      rows[i] = {sessions[i], tokens[i], positions[i]};
    }
    validate_rows(rows, "forward_multi()");
    Session& s0 = *sessions[0];
    const auto vocab = static_cast<std::size_t>(self().vocab_size());
    if (s0.batch_logits_.size() < n * vocab) s0.batch_logits_ = AlignedBuffer<float>(n * vocab);
    for (std::size_t r0 = 0; r0 < n; r0 += kMaxRows) {
      const std::size_t r1 = std::min(n, r0 + kMaxRows);
      self().run_rows(std::span<const Row>(rows.data() + r0, r1 - r0), 0, s0.batch_logits_.data() + r0 * vocab, s0, pool);
    }
    for (std::size_t i = 0; i < n; ++i) {
      std::copy_n(s0.batch_logits_.data() + i * vocab, vocab, sessions[i]->logits_.data());
      sessions[i]->has_logits_ = true;
    }
    return {s0.batch_logits_.data(), n * vocab};
  }

 protected:
  /// One row of a pass: `token` at position `pos` of session `s`.
  struct Row {
    Session* s = nullptr;
    std::int32_t token = 0;
    int pos = 0;
  };

  DecoderModel() = default;

  /// Marks the rows' sessions as being written (their n_past is committed by end_rows) and
  /// builds `w`'s attention jobs: one per run of consecutive rows of one session. Queries of row
  /// i start at q + i * ldq; its attention output goes to out + i * ldo.
  static void begin_rows(std::span<const Row> rows, Session& w, const float* q, std::int64_t ldq, float* out, std::int64_t ldo) {
    const auto n = static_cast<std::int64_t>(rows.size());
    w.pos_.resize(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      w.pos_[i] = rows[i].pos;
      rows[i].s->pending_n_past_ = -1;
    }
    w.jobs_.clear();
    for (std::int64_t i = 0; i < n;) {
      std::int64_t e = i + 1;
      while (e < n && rows[static_cast<std::size_t>(e)].s == rows[static_cast<std::size_t>(i)].s) ++e;
      AttentionJob j;
      j.cache = &rows[static_cast<std::size_t>(i)].s->cache_;
      j.q = q + i * ldq;
      j.ldq = ldq;
      j.pos = w.pos_.data() + i;
      j.n_rows = static_cast<int>(e - i);
      j.window = rows[static_cast<std::size_t>(i)].s->window_;
      j.out = out + i * ldo;
      j.ldo = ldo;
      w.jobs_.push_back(j);
      i = e;
    }
  }

  /// Commits every row's session n_past (one past its highest position in the pass).
  static void end_rows(std::span<const Row> rows) {
    for (const Row& r : rows) r.s->pending_n_past_ = std::max(r.s->pending_n_past_, r.pos + 1);
    for (const Row& r : rows) {
      if (r.s->pending_n_past_ >= 0) r.s->cache_.set_n_past(r.s->pending_n_past_);
      r.s->pending_n_past_ = -1;
    }
  }

  /// Observer call for rows [0, n) of x (n_cols floats each): one call when every row's
  /// session shares one observer, else one per row.
  static void observe(std::span<const Row> rows, int layer, LinearSlot slot, const float* x, std::int64_t n_cols) {
    LinearObserver* first = rows[0].s->observer_;
    bool same = true;
    for (const Row& r : rows) same = same && r.s->observer_ == first;
    if (same) {
      if (first != nullptr) first->on_input(layer, slot, x, static_cast<std::int64_t>(rows.size()), n_cols);
      return;
    }
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].s->observer_ != nullptr) rows[i].s->observer_->on_input(layer, slot, x + static_cast<std::int64_t>(i) * n_cols, 1, n_cols);
    }
  }

 private:
  const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }

  /// The first position this call writes for r's session (the smallest of its rows): a ring
  /// cache must still hold the window before it.
  static int first_new(std::span<const Row> rows, const Row& r) {
    int p = r.pos;
    if (!r.s->cache_.ring()) return p;
    for (const Row& o : rows) {
      if (o.s == r.s) p = std::min(p, o.pos);
    }
    return p;
  }

  void validate_rows(std::span<const Row> rows, const char* what) const {
    const int vocab = self().vocab_size();
    for (const Row& r : rows) {
      if (r.token < 0 || r.token >= vocab) {
        throw InvalidArgument(detail::str_cat(what, ": token id ", r.token, " is outside the vocabulary [0, ", vocab, ")"));
      }
      if (r.pos < 0 || r.pos >= r.s->context()) {
        throw InvalidArgument(detail::str_cat(what, ": position ", r.pos, " is outside the session's context of ", r.s->context(),
                                              " tokens; use a larger context or a shorter input"));
      }
      const KVCache& c = r.s->cache_;
      if (!c.holds_window_before(r.pos, first_new(rows, r), r.s->window_)) {
        throw InvalidArgument(detail::str_cat(what, ": position ", r.pos, " needs positions the sliding-window cache no longer holds (it holds ",
                                              c.oldest_position(), "..", c.n_past() - 1, ")"));
      }
    }
  }
};

}  // namespace tinfer
