// Session and cache operations on real models: truncate + regenerate, fork (copy_prefix_from),
// save/restore, context shift (Llama re-rotation; GPT-2 refuses), sliding-window sessions, the
// cache types' perplexity on stories260K.
//
// Exact equality (EXPECT_EQ on logits) where the same kernels read the same cache bytes in the
// same order: any lost or misplaced position changes the logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <memory>
#include <vector>

#include "test_assets.hpp"
#include "tinfer/models/model.hpp"

namespace {

using tinfer::KVCacheType;
using tinfer::SessionOptions;

const std::string kDemo = std::string(TINFER_SOURCE_DIR) + "/examples/demo-model/tinfer-demo-kjv.gguf";

std::unique_ptr<tinfer::Model> stories() {
  const auto path = tinfer::testing::assets_dir() / "stories260K" / "stories260K.bin";
  if (!std::filesystem::exists(path)) return nullptr;
  return tinfer::load_model(path.string());
}

#define REQUIRE_STORIES(m)                                   \
  const auto m = stories();                                  \
  if (!m) GTEST_SKIP() << "stories260K.bin not in the assets"

std::int32_t argmax(std::span<const float> l) {
  return static_cast<std::int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
}

// Greedy continuation of `n` tokens after the session's last logits, from position `pos`.
std::vector<std::int32_t> greedy(const tinfer::Model& m, tinfer::Session& s, int pos, int n) {
  std::vector<std::int32_t> out;
  std::int32_t t = argmax(s.last_logits());
  for (int i = 0; i < n; ++i) {
    out.push_back(t);
    t = argmax(m.forward(s, t, pos + i));
  }
  return out;
}

const std::vector<std::int32_t> kPrompt = {1, 403, 407, 261, 378, 285, 415, 263, 262, 266, 407, 412};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("tinfer_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

TEST(SessionOps, TruncateAndRegenerateEqualsFreshRun) {
  REQUIRE_STORIES(m);
  for (KVCacheType t : {KVCacheType::F32, KVCacheType::Q8_0}) {
    const SessionOptions opt{.context = 128, .type_k = t, .type_v = t};
    auto fresh = m->new_session(opt);
    m->forward_batch(*fresh, std::span(kPrompt).first(kPrompt.size() - 1), 0);
    m->forward(*fresh, kPrompt.back(), static_cast<int>(kPrompt.size()) - 1);
    const auto want = greedy(*m, *fresh, static_cast<int>(kPrompt.size()), 30);

    auto s = m->new_session(opt);
    m->forward_batch(*s, kPrompt, 0);
    EXPECT_EQ(s->n_past(), static_cast<int>(kPrompt.size()));
    // Feed a rejected draft of other tokens, then undo it.
    m->forward_batch(*s, std::vector<std::int32_t>{5, 6, 7, 8, 9}, static_cast<int>(kPrompt.size()));
    EXPECT_EQ(s->n_past(), static_cast<int>(kPrompt.size()) + 5);
    s->truncate(static_cast<int>(kPrompt.size()) - 1);
    EXPECT_EQ(s->n_past(), static_cast<int>(kPrompt.size()) - 1);
    // Re-feed the prompt's last token to get its logits back, then regenerate.
    m->forward(*s, kPrompt.back(), static_cast<int>(kPrompt.size()) - 1);
    EXPECT_EQ(greedy(*m, *s, static_cast<int>(kPrompt.size()), 30), want) << kv_cache_type_name(t);
    EXPECT_THROW(s->truncate(-1), tinfer::InvalidArgument);
  }
}

TEST(SessionOps, ForkSharesPromptExactly) {
  REQUIRE_STORIES(m);
  auto a = m->new_session(128);
  m->forward_batch(*a, kPrompt, 0);
  auto b = m->new_session(128);
  b->copy_prefix_from(*a, a->n_past());
  ASSERT_EQ(b->n_past(), a->n_past());
  const auto p = static_cast<int>(kPrompt.size());
  // Both continue identically...
  EXPECT_EQ(greedy(*m, *a, p, 20), greedy(*m, *b, p, 20));
  // ...and a fork of a shorter prefix continues like a fresh session of that prefix.
  auto c = m->new_session(128);
  c->copy_prefix_from(*a, 6);
  const auto lcs = m->forward(*c, 77, 6);
  const std::vector<float> lc(lcs.begin(), lcs.end());
  auto d = m->new_session(128);
  m->forward_batch(*d, std::span(kPrompt).first(6), 0);
  const auto ld = m->forward(*d, 77, 6);
  EXPECT_TRUE(std::equal(lc.begin(), lc.end(), ld.begin()));
  // Different cache types or models refuse.
  auto q8 = m->new_session(SessionOptions{.context = 128, .type_k = KVCacheType::Q8_0});
  EXPECT_THROW(q8->copy_prefix_from(*a, 3), tinfer::InvalidArgument);
  EXPECT_THROW(b->copy_prefix_from(*a, a->n_past() + 1), tinfer::InvalidArgument);
  const auto demo = tinfer::load_model(kDemo);
  auto g = demo->new_session(64);
  EXPECT_THROW(g->copy_prefix_from(*a, 3), tinfer::InvalidArgument);
}

TEST(SessionOps, SaveRestoreRoundTripsExactly) {
  REQUIRE_STORIES(m);
  const auto p = static_cast<int>(kPrompt.size());
  for (KVCacheType t : {KVCacheType::F32, KVCacheType::F16, KVCacheType::Q8_0}) {
    const SessionOptions opt{.context = 128, .type_k = t, .type_v = KVCacheType::F16};
    auto a = m->new_session(opt);
    m->forward_batch(*a, kPrompt, 0);
    const std::string path = temp_path("state.bin");
    a->save(path);
    auto b = m->new_session(opt);
    b->load(path);
    EXPECT_EQ(b->n_past(), p);
    ASSERT_EQ(b->last_logits().size(), a->last_logits().size());
    EXPECT_TRUE(std::equal(a->last_logits().begin(), a->last_logits().end(), b->last_logits().begin()));
    EXPECT_EQ(greedy(*m, *a, p, 20), greedy(*m, *b, p, 20));
    const int b_past = b->n_past();

    // A session of other cache types: FormatError naming the field.
    auto other = m->new_session(SessionOptions{.context = 128, .type_k = t == KVCacheType::F32 ? KVCacheType::F16 : KVCacheType::F32,
                                               .type_v = KVCacheType::F16});
    try {
      other->load(path);
      ADD_FAILURE() << "mismatched type_k accepted";
    } catch (const tinfer::FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("type_k"), std::string::npos) << e.what();
    }
    EXPECT_EQ(other->n_past(), 0);
    // A context too small for the stored positions.
    auto small = m->new_session(SessionOptions{.context = 8, .type_k = t, .type_v = KVCacheType::F16});
    EXPECT_THROW(small->load(path), tinfer::FormatError);
    // Truncated and corrupted files.
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    for (std::size_t cut : {std::size_t{5}, std::size_t{30}, bytes.size() / 2, bytes.size() - 1}) {
      std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(cut));
      try {
        b->load(path);
        ADD_FAILURE() << "truncated file accepted, " << cut << " bytes";
      } catch (const tinfer::FormatError& e) {
        const std::string w = e.what();
        EXPECT_TRUE(w.find("field") != std::string::npos) << w;
      }
    }
    auto flipped = bytes;
    flipped[flipped.size() / 2] ^= 0x10;
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(flipped.data(), static_cast<std::streamsize>(flipped.size()));
    EXPECT_THROW(b->load(path), tinfer::FormatError);
    EXPECT_EQ(b->n_past(), b_past);  // failed loads leave the session as it was
    std::filesystem::remove(path);
  }
  // Another architecture's file.
  const auto demo = tinfer::load_model(kDemo);
  auto g = demo->new_session(64);
  demo->forward_batch(*g, std::vector<std::int32_t>{1, 2, 3}, 0);
  const std::string path = temp_path("gpt2.bin");
  g->save(path);
  auto s = m->new_session(128);
  try {
    s->load(path);
    ADD_FAILURE() << "gpt2 state loaded into a llama session";
  } catch (const tinfer::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("architecture"), std::string::npos) << e.what();
  }
  auto g2 = demo->new_session(64);
  g2->load(path);
  EXPECT_EQ(g2->n_past(), 3);
  std::filesystem::remove(path);
  EXPECT_THROW(s->load(temp_path("missing.bin")), tinfer::IoError);
}

// Layer 0's keys depend only on the token and the position, so after a context shift the moved
// layer-0 keys must equal those a fresh session computes at the new positions: rotating a key of
// position p by -delta equals computing it at p - delta. Tolerance 1e-5 relative to the key
// scale (float rounding of the two rotations; stories260K keys are ~1).
TEST(SessionOps, ContextShiftMatchesReferenceRotation) {
  REQUIRE_STORIES(m);
  std::vector<std::int32_t> toks;
  for (int i = 0; i < 40; ++i) toks.push_back((i * 53 + 7) % 500 + 3);
  const int keep = 4, discard = 10;
  for (KVCacheType t : {KVCacheType::F32, KVCacheType::F16, KVCacheType::Q8_0}) {
    const SessionOptions opt{.context = 48, .type_k = t, .type_v = t};
    auto s = m->new_session(opt);
    m->forward_batch(*s, toks, 0);
    ASSERT_TRUE(m->can_context_shift());
    m->context_shift(*s, keep, discard);
    EXPECT_EQ(s->n_past(), 40 - discard);
    std::vector<std::int32_t> kept(toks.begin(), toks.begin() + keep);
    kept.insert(kept.end(), toks.begin() + keep + discard, toks.end());
    auto ref = m->new_session(opt);
    m->forward_batch(*ref, kept, 0);
    const auto kvd = static_cast<std::size_t>(s->cache().kv_dim());
    std::vector<float> a(kvd), b(kvd);
    // F32: only rotation rounding, 1e-5 absolute. F16/Q8_0: the stored keys were rounded to the
    // cache type, and the shifted one is rotated (mixing each pair, so an element's error scales
    // with its head's magnitude, not its own) and rounded again: allow 2^-9 of the head's largest
    // element for F16 (two half-ulp roundings plus the mixing), and 1.6 steps (block max / 127)
    // for Q8_0 (half a step on each side plus the re-rounding).
    const int hd = s->cache().head_dim();
    double worst = 0;
    for (int p = 0; p < s->n_past(); ++p) {
      s->cache().load_key(0, p, a.data());
      ref->cache().load_key(0, p, b.data());
      for (std::size_t i = 0; i < kvd; ++i) {
        double tol = 1e-5;
        if (t == KVCacheType::F16) {
          float hmax = 0;
          for (std::size_t j = i / static_cast<std::size_t>(hd) * static_cast<std::size_t>(hd); j < (i / static_cast<std::size_t>(hd) + 1) * static_cast<std::size_t>(hd); ++j) {
            hmax = std::max(hmax, std::fabs(b[j]));
          }
          tol = hmax / 512.0 + 1e-6;
        }
        if (t == KVCacheType::Q8_0) {
          float amax = 0;
          for (std::size_t j = i / 32 * 32; j < i / 32 * 32 + 32; ++j) amax = std::max(amax, std::fabs(b[j]));
          tol = 1.6 * amax / 127;
        }
        worst = std::max(worst, std::fabs(a[i] - b[i]) / tol);
      }
      s->cache().load_value(0, p, a.data());
      ref->cache().load_value(0, p, b.data());
      for (std::size_t i = 0; i < kvd; ++i) EXPECT_EQ(a[i], b[i]) << "value moved wrongly at " << p;
    }
    EXPECT_LT(worst, 1.0) << kv_cache_type_name(t) << ": worst error in units of the tolerance";
    // Generation continues after the shift: the positions after n_past are free again.
    const auto l = m->forward(*s, 42, s->n_past());
    for (float v : l) ASSERT_TRUE(std::isfinite(v));
    const auto cont = greedy(*m, *s, s->n_past(), 15);
    EXPECT_EQ(cont.size(), 15u);
    EXPECT_THROW(m->context_shift(*s, 0, 100), tinfer::InvalidArgument);
  }
}

TEST(SessionOps, Gpt2RefusesContextShift) {
  const auto demo = tinfer::load_model(kDemo);
  EXPECT_FALSE(demo->can_context_shift());
  auto g = demo->new_session(32);
  demo->forward_batch(*g, std::vector<std::int32_t>{1, 2, 3, 4}, 0);
  try {
    demo->context_shift(*g, 1, 2);
    ADD_FAILURE() << "GPT-2 shift accepted";
  } catch (const tinfer::UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("absolute positions"), std::string::npos) << e.what();
  }
  EXPECT_EQ(g->n_past(), 4);
}

// A sliding-window session keeps a ring of window + slack rows; token-by-token decoding and a
// batched prompt (several ring passes) agree, and a rewind past what the ring holds is refused.
TEST(SessionOps, SlidingWindowSessionBatchEqualsSequential) {
  REQUIRE_STORIES(m);
  const SessionOptions opt{.context = 400, .window = 32};
  auto a = m->new_session(opt);
  auto b = m->new_session(opt);
  EXPECT_TRUE(a->cache().ring());
  EXPECT_EQ(a->cache().capacity(), 32 + SessionOptions::kRingSlack);
  std::vector<std::int32_t> toks;
  for (int i = 0; i < 300; ++i) toks.push_back((i * 31 + 5) % 500 + 3);
  std::vector<float> seq;
  for (int i = 0; i < 300; ++i) {
    const auto l = m->forward(*a, toks[static_cast<std::size_t>(i)], i);
    seq.insert(seq.end(), l.begin(), l.end());
  }
  const auto all = m->forward_batch(*b, toks, 0, nullptr, true);
  ASSERT_EQ(all.size(), seq.size());
  for (std::size_t i = 0; i < seq.size(); ++i) ASSERT_NEAR(all[i], seq[i], 1e-4f) << i;
  EXPECT_THROW(m->forward(*b, 3, 100), tinfer::InvalidArgument);
  EXPECT_THROW(b->truncate(100), tinfer::InvalidArgument);
  b->truncate(290);  // the window before 290 is still in the ring
  EXPECT_EQ(b->n_past(), 290);
  // Rewinding to the start needs nothing the ring lost: truncate(0), then the same tokens again
  // give the first run's logits (the ring rows are overwritten in order).
  b->truncate(0);
  EXPECT_EQ(b->n_past(), 0);
  const auto again = m->forward_batch(*b, toks, 0, nullptr, true);
  ASSERT_EQ(again.size(), seq.size());
  for (std::size_t i = 0; i < seq.size(); ++i) ASSERT_NEAR(again[i], seq[i], 1e-4f) << i;
  // Feeding position 0 into a wrapped ring restarts the sequence without an explicit truncate.
  const auto first = m->forward(*a, toks[0], 0);
  EXPECT_EQ(a->n_past(), 1);
  for (std::size_t i = 0; i < first.size(); ++i) ASSERT_NEAR(first[i], seq[i], 1e-4f) << i;
}

// Perplexity of stories260K over story text with each cache type: F16 and Q8_0 within 0.5% of
// F32 (the quality bar). Chunks of 128 tokens, second half scored, as tinfer-perplexity.
TEST(SessionOps, QuantizedCachePerplexityOnStories260K) {
  const auto gguf = tinfer::testing::assets_dir() / "gguf" / "stories260K-f32.gguf";
  const auto text_path = tinfer::testing::assets_dir().parent_path() / "reference" / "text" / "stories260K-sampled.txt";
  TINFER_REQUIRE_FILE(gguf);
  TINFER_REQUIRE_FILE(text_path);
  const auto m = tinfer::load_model(gguf.string());
  const auto tok = tinfer::load_model_tokenizer(gguf.string(), *m);
  std::ifstream in(text_path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto tokens = tok->encode(text);
  const int n_ctx = 128, n_chunks = std::min<int>(16, static_cast<int>(tokens.size()) / n_ctx);
  ASSERT_GE(n_chunks, 4);
  const auto vocab = static_cast<std::size_t>(m->vocab_size());
  auto ppl = [&](KVCacheType t) {
    auto s = m->new_session(SessionOptions{.context = n_ctx, .type_k = t, .type_v = t});
    double nll = 0;
    int count = 0;
    for (int c = 0; c < n_chunks; ++c) {
      std::vector<std::int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
      chunk[0] = tok->bos_id();
      const auto l = m->forward_batch(*s, std::span(chunk).first(n_ctx - 1), 0, nullptr, true);
      for (int j = n_ctx / 2; j < n_ctx - 1; ++j) {
        const auto row = l.subspan(static_cast<std::size_t>(j) * vocab, vocab);
        double mx = row[0], sum = 0;
        for (float v : row) mx = std::max(mx, static_cast<double>(v));
        for (float v : row) sum += std::exp(v - mx);
        nll -= row[static_cast<std::size_t>(chunk[static_cast<std::size_t>(j) + 1])] - mx - std::log(sum);
        ++count;
      }
    }
    return std::exp(nll / count);
  };
  const double f32 = ppl(KVCacheType::F32), f16 = ppl(KVCacheType::F16), q8 = ppl(KVCacheType::Q8_0);
  EXPECT_LT(std::fabs(f16 - f32) / f32, 0.005) << "f32 " << f32 << " f16 " << f16;
  EXPECT_LT(std::fabs(q8 - f32) / f32, 0.005) << "f32 " << f32 << " q8_0 " << q8;
  EXPECT_NE(q8, f32);  // the Q8_0 cache really is a different (rounded) cache
  RecordProperty("ppl_f32", std::to_string(f32));
  RecordProperty("ppl_q8_0", std::to_string(q8));
}

}  // namespace
