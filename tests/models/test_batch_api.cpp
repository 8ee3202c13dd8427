// forward_batch() against token-by-token forward(), and the linear-layer observer, on the
// bundled demo model (GPT-2 family) and stories260K (Llama family).
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "test_assets.hpp"
#include "tinfer/models/model.hpp"

namespace {

const std::string kDemo = std::string(TINFER_SOURCE_DIR) + "/examples/demo-model/tinfer-demo-kjv.gguf";

// Batched logits equal sequential ones (same kernels, same order of operations per row: the
// tolerance only allows for a different summation order in a batched kernel).
void check_batch_equals_sequential(const tinfer::Model& model) {
  const std::vector<std::int32_t> toks = {1, 5, 9, 2, 7, 3, 11, 4, 8, 6};
  const auto vocab = static_cast<std::size_t>(model.vocab_size());
  auto seq = model.new_session(32);
  std::vector<float> expect;
  for (std::size_t i = 0; i < toks.size(); ++i) {
    const auto l = model.forward(*seq, toks[i], static_cast<int>(i));
    expect.insert(expect.end(), l.begin(), l.end());
  }
  auto bat = model.new_session(32);
  // Two batches: the prompt's first part, then the rest on top of the cache it left.
  const auto a = model.forward_batch(*bat, std::span(toks).first(4), 0, nullptr, true);
  ASSERT_EQ(a.size(), 4 * vocab);
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], expect[i], 1e-4f) << i;
  const auto b = model.forward_batch(*bat, std::span(toks).subspan(4), 4, nullptr, false);
  ASSERT_EQ(b.size(), vocab);
  for (std::size_t i = 0; i < vocab; ++i) ASSERT_NEAR(b[i], expect[(toks.size() - 1) * vocab + i], 1e-4f) << i;
  // A batch past the context is refused before any work.
  EXPECT_THROW(model.forward_batch(*bat, toks, 30, nullptr), tinfer::InvalidArgument);
  EXPECT_THROW(model.forward_batch(*bat, std::vector<std::int32_t>{1, -1}, 0, nullptr), tinfer::InvalidArgument);
}

// forward_multi(): one token for each of several independent sessions in one pass equals each
// session's own forward() (tolerance: summation order only, as above).
void check_multi_equals_forward(const tinfer::Model& model, tinfer::ThreadPool* pool) {
  const auto vocab = static_cast<std::size_t>(model.vocab_size());
  const std::vector<std::vector<std::int32_t>> prompts = {{1, 5, 9}, {3}, {7, 2, 8, 4, 6, 10, 12}};
  std::vector<std::unique_ptr<tinfer::Session>> ref, bat;
  for (const auto& p : prompts) {
    ref.push_back(model.new_session(32));
    bat.push_back(model.new_session(32));
    model.forward_batch(*ref.back(), p, 0, pool);
    model.forward_batch(*bat.back(), p, 0, pool);
  }
  for (int step = 0; step < 3; ++step) {
    std::vector<tinfer::Session*> sessions;
    std::vector<std::int32_t> toks;
    std::vector<int> pos;
    std::vector<float> expect;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      const auto t = static_cast<std::int32_t>(11 + step + static_cast<int>(i));
      const int p = static_cast<int>(prompts[i].size()) + step;
      const auto l = model.forward(*ref[i], t, p, pool);
      expect.insert(expect.end(), l.begin(), l.end());
      sessions.push_back(bat[i].get());
      toks.push_back(t);
      pos.push_back(p);
    }
    const auto got = model.forward_multi(sessions, toks, pos, pool);
    ASSERT_EQ(got.size(), prompts.size() * vocab);
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], expect[i], 1e-4f) << "step " << step << " at " << i;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(bat[i]->n_past(), pos[i] + 1);
      ASSERT_EQ(bat[i]->last_logits().size(), vocab);
      EXPECT_EQ(bat[i]->last_logits()[0], got[i * vocab]);
    }
  }
  // Mismatched spans and bad positions are refused before any work.
  std::vector<tinfer::Session*> one = {bat[0].get()};
  EXPECT_THROW(model.forward_multi(one, std::vector<std::int32_t>{1, 2}, std::vector<int>{0, 1}, pool), tinfer::InvalidArgument);
  EXPECT_THROW(model.forward_multi(one, std::vector<std::int32_t>{1}, std::vector<int>{32}, pool), tinfer::InvalidArgument);
  EXPECT_EQ(bat[0]->n_past(), static_cast<int>(prompts[0].size()) + 3);
}

// A long batched prompt (several attention tiles and passes) equals token-by-token forward().
void check_long_batch(const tinfer::Model& model, int n, tinfer::ThreadPool* pool) {
  std::vector<std::int32_t> toks(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) toks[static_cast<std::size_t>(i)] = (i * 37 + 11) % std::min(model.vocab_size(), 200) + 1;
  auto seq = model.new_session(n);
  std::vector<float> expect;
  for (int i = 0; i < n; ++i) {
    const auto l = model.forward(*seq, toks[static_cast<std::size_t>(i)], i, pool);
    if (i % 50 == 0 || i == n - 1) expect.insert(expect.end(), l.begin(), l.end());
  }
  auto bat = model.new_session(n);
  const auto all = model.forward_batch(*bat, toks, 0, pool, true);
  const auto vocab = static_cast<std::size_t>(model.vocab_size());
  std::size_t k = 0;
  for (int i = 0; i < n; ++i) {
    if (!(i % 50 == 0 || i == n - 1)) continue;
    for (std::size_t j = 0; j < vocab; ++j, ++k) ASSERT_NEAR(all[static_cast<std::size_t>(i) * vocab + j], expect[k], 2e-4f) << "token " << i;
  }
  EXPECT_EQ(bat->n_past(), n);
}

struct CountingObserver : tinfer::LinearObserver {
  std::map<std::pair<int, tinfer::LinearSlot>, std::int64_t> rows;
  std::map<tinfer::LinearSlot, std::int64_t> cols;
  void on_input(int layer, tinfer::LinearSlot slot, const float* x, std::int64_t n_rows, std::int64_t n_cols) override {
    ASSERT_NE(x, nullptr);
    rows[{layer, slot}] += n_rows;
    cols[slot] = n_cols;
  }
};

void check_observer(const tinfer::Model& model, std::int64_t dim, std::int64_t hidden, int n_layers) {
  auto s = model.new_session(16);
  CountingObserver obs;
  s->set_linear_observer(&obs);
  model.forward_batch(*s, std::vector<std::int32_t>{1, 2, 3}, 0, nullptr);
  for (int l = 0; l < n_layers; ++l) {
    for (auto slot : {tinfer::LinearSlot::AttnQKV, tinfer::LinearSlot::AttnOut, tinfer::LinearSlot::FfnUp,
                      tinfer::LinearSlot::FfnDown}) {
      EXPECT_EQ((obs.rows[{l, slot}]), 3) << "layer " << l;
    }
  }
  EXPECT_EQ(obs.cols[tinfer::LinearSlot::AttnQKV], dim);
  EXPECT_EQ(obs.cols[tinfer::LinearSlot::FfnDown], hidden);
  s->set_linear_observer(nullptr);
  model.forward(*s, 4, 3);
  EXPECT_EQ((obs.rows[{0, tinfer::LinearSlot::AttnQKV}]), 3);
}

TEST(BatchApi, DemoModelBatchEqualsSequential) {
  const auto model = tinfer::load_model(kDemo);
  check_batch_equals_sequential(*model);
  check_observer(*model, 256, 1024, 4);
  tinfer::ThreadPool pool(2);
  check_multi_equals_forward(*model, &pool);
  check_long_batch(*model, 256, &pool);  // the demo model's full context
}

TEST(BatchApi, Stories260KBatchEqualsSequential) {
  const auto path = tinfer::testing::assets_dir() / "stories260K" / "stories260K.bin";
  TINFER_REQUIRE_FILE(path);
  const auto model = tinfer::load_model(path.string());
  check_batch_equals_sequential(*model);
  check_observer(*model, 64, 172, 5);
  check_multi_equals_forward(*model, nullptr);
  check_long_batch(*model, 256, nullptr);
}

}  // namespace
