// One model shared by 8 threads, each with its own session and sampler (different seeds),
// generating at once: every thread's tokens must equal the same run done alone. The tests
// also run in the ThreadSanitizer build (TINFER_SANITIZE=thread), which must report nothing;
// under TSan they use fewer tokens and models, so the check stays minutes, not hours.
#include <gtest/gtest.h>

#include <atomic>
#include <exception>
#include <thread>
#include <vector>

#include "reference_models.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/models/model.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"
#include "tinfer/tokenizer/load_tokenizer.hpp"
#include "tinfer/tokenizer/stream_decoder.hpp"

namespace {

// Sanitized builds run every multiply 5-20x slower: fewer tokens and models there.
#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif
#else
constexpr bool kTsan = false;
#endif
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

constexpr int kThreads = 8;
constexpr int kTokens = kTsan ? 12 : kAsan ? 16 : 40;

// Runs body(i) on kThreads threads started together; rethrows the first exception.
template <class Body>
void run_together(Body body) {
  std::atomic<int> ready{0};
  std::vector<std::exception_ptr> errors(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();  // maximise overlap
      try {
        body(i);
      } catch (...) {
        errors[static_cast<std::size_t>(i)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::vector<tinfer::testing::ReferenceModel> models_for_this_build() {
  auto all = tinfer::testing::reference_models(/*small_only=*/true);
  if ((kTsan || kAsan) && all.size() > 3) all.resize(3);  // demo, stories260K (bin and GGUF)
  return all;
}

// Eight threads, one shared model, no thread pools (each thread computes alone).
TEST(Concurrency, SharedModelEightSessionsMatchSoloRuns) {
  for (const auto& ref : models_for_this_build()) {
    SCOPED_TRACE(ref.name);
    const auto model = tinfer::load_model(ref.path.string());
    std::vector<std::vector<std::int32_t>> alone(kThreads), together(kThreads);
    for (int i = 0; i < kThreads; ++i)
      alone[static_cast<std::size_t>(i)] = tinfer::testing::sample_tokens(*model, 1000 + static_cast<std::uint64_t>(i), kTokens, nullptr);
    run_together([&](int i) {
      together[static_cast<std::size_t>(i)] = tinfer::testing::sample_tokens(*model, 1000 + static_cast<std::uint64_t>(i), kTokens, nullptr);
    });
    for (int i = 0; i < kThreads; ++i) {
      EXPECT_EQ(together[static_cast<std::size_t>(i)], alone[static_cast<std::size_t>(i)]) << "thread " << i;
      EXPECT_EQ(alone[static_cast<std::size_t>(i)].size(), static_cast<std::size_t>(kTokens));
    }
    // Different seeds really sample differently (else the comparison above proves little).
    EXPECT_NE(alone[0], alone[1]);
  }
}

// Eight threads, each with its own 2-thread pool, and eight threads sharing one 3-thread pool
// (parallel_for calls from several threads are serialized by the pool).
TEST(Concurrency, OwnPoolsAndSharedPoolMatchSoloRuns) {
  const auto models = models_for_this_build();
  ASSERT_FALSE(models.empty());
  for (const auto& ref : models) {
    SCOPED_TRACE(ref.name);
    const auto model = tinfer::load_model(ref.path.string());
    std::vector<std::vector<std::int32_t>> alone(kThreads), own(kThreads), shared(kThreads);
    for (int i = 0; i < kThreads; ++i)
      alone[static_cast<std::size_t>(i)] = tinfer::testing::sample_tokens(*model, 7 + static_cast<std::uint64_t>(i), kTokens, nullptr);
    run_together([&](int i) {
      tinfer::ThreadPool pool(2);
      own[static_cast<std::size_t>(i)] = tinfer::testing::sample_tokens(*model, 7 + static_cast<std::uint64_t>(i), kTokens, &pool);
    });
    tinfer::ThreadPool common(3);
    run_together([&](int i) {
      shared[static_cast<std::size_t>(i)] = tinfer::testing::sample_tokens(*model, 7 + static_cast<std::uint64_t>(i), kTokens, &common);
    });
    for (int i = 0; i < kThreads; ++i) {
      EXPECT_EQ(own[static_cast<std::size_t>(i)], alone[static_cast<std::size_t>(i)]) << "own pool, thread " << i;
      EXPECT_EQ(shared[static_cast<std::size_t>(i)], alone[static_cast<std::size_t>(i)]) << "shared pool, thread " << i;
    }
  }
}

// A tokenizer is immutable after loading: encode/decode are const and may be called from many
// threads at once (each thread needs its own StreamDecoder).
TEST(Concurrency, SharedTokenizerEncodeDecode) {
  std::vector<std::unique_ptr<tinfer::Tokenizer>> toks;
  const auto demo = std::filesystem::path(TINFER_SOURCE_DIR) / "examples" / "demo-model" / "tinfer-demo-kjv.gguf";
  toks.push_back(tinfer::load_tokenizer(demo));
  const auto a = tinfer::testing::assets_dir();
  for (const auto& p : {a / "llama2-tokenizer" / "tokenizer.model", a / "gpt2-bpe" / "tokenizer.json", a / "stories260K" / "tok512.bin"})
    if (std::filesystem::exists(p)) toks.push_back(tinfer::load_tokenizer(p));
  const std::string text = kTsan ? "In the beginning God created the heaven and the earth. caf\xC3\xA9 \xF0\x9F\x98\x80"
                                 : std::string(200, 'x') + " In the beginning God created the heaven and the earth.\n caf\xC3\xA9 \xF0\x9F\x98\x80 <s> ";
  for (const auto& tok : toks) {
    const auto ids = tok->encode(text);
    const auto back = tok->decode(ids);
    std::vector<std::vector<std::int32_t>> got(kThreads);
    std::vector<std::string> text_back(kThreads), streamed(kThreads);
    run_together([&](int i) {
      const auto k = static_cast<std::size_t>(i);
      for (int rep = 0; rep < (kTsan ? 2 : 20); ++rep) got[k] = tok->encode(text);
      text_back[k] = tok->decode(got[k]);
      tinfer::StreamDecoder sd(*tok);
      for (auto id : got[k]) streamed[k] += sd.push(id);
      streamed[k] += sd.finish();
    });
    for (int i = 0; i < kThreads; ++i) {
      const auto k = static_cast<std::size_t>(i);
      EXPECT_EQ(got[k], ids);
      EXPECT_EQ(text_back[k], back);
      EXPECT_EQ(streamed[k], tinfer::unicode::sanitize_utf8(back));
    }
  }
}

// Pools created and destroyed by many threads at once, with and without work.
TEST(Concurrency, ManyPoolsStartAndStop) {
  run_together([](int i) {
    for (int rep = 0; rep < 5; ++rep) {
      tinfer::ThreadPool pool(1 + (i + rep) % 4);
      std::vector<int> hits(100, 0);
      if (rep % 2 == 0) pool.parallel_for(100, [&](std::int64_t b, std::int64_t e) {
        for (auto j = b; j < e; ++j) hits[static_cast<std::size_t>(j)]++;
      });
      for (int h : hits) ASSERT_EQ(h, rep % 2 == 0 ? 1 : 0);
    }
  });
}

}  // namespace
