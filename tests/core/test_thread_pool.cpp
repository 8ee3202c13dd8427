// The thread pool's split depends only on (n, min_chunk, size); results are identical for any
// thread count; exceptions propagate; nested calls do not deadlock.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cmath>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tinfer/core/thread_pool.hpp"

namespace {

using tinfer::ThreadPool;

TEST(ThreadPool, EveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 4, 8}) {
    ThreadPool pool(threads);
    for (std::int64_t n : {0, 1, 2, 7, 64, 1000, 1023}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
      pool.parallel_for(n, [&](std::int64_t b, std::int64_t e) {
        for (auto i = b; i < e; ++i) hits[static_cast<std::size_t>(i)]++;
      });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "threads " << threads << " n " << n;
    }
  }
}

TEST(ThreadPool, SplitIsAFunctionOfSizesOnly) {
  ThreadPool pool(4);
  for (int rep = 0; rep < 50; ++rep) {
    std::mutex m;
    std::vector<std::pair<std::int64_t, std::int64_t>> chunks;
    pool.parallel_for(103, [&](std::int64_t b, std::int64_t e) {
      std::lock_guard lock(m);
      chunks.emplace_back(b, e);
    });
    std::sort(chunks.begin(), chunks.end());
    const std::vector<std::pair<std::int64_t, std::int64_t>> want = {{0, 25}, {25, 51}, {51, 77}, {77, 103}};
    ASSERT_EQ(chunks, want);
  }
  EXPECT_EQ(pool.chunk_count(10, 4), 3);
  EXPECT_EQ(pool.chunk_count(100, 1), 4);
  EXPECT_EQ(pool.chunk_count(0), 0);
}

// A matrix-vector product computed row by row gives bit-identical results for every thread count.
TEST(ThreadPool, RowwiseResultsIndependentOfThreadCount) {
  const int rows = 257, cols = 311;
  std::vector<float> w(static_cast<std::size_t>(rows) * cols), x(cols);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::sin(static_cast<float>(i) * 0.37f);
  for (int j = 0; j < cols; ++j) x[static_cast<std::size_t>(j)] = std::cos(static_cast<float>(j));
  auto run = [&](int threads) {
    ThreadPool pool(threads);
    std::vector<float> y(rows);
    pool.parallel_for(rows, [&](std::int64_t b, std::int64_t e) {
      for (auto r = b; r < e; ++r) {
        float s = 0;
        for (int j = 0; j < cols; ++j) s += w[static_cast<std::size_t>(r) * cols + j] * x[static_cast<std::size_t>(j)];
        y[static_cast<std::size_t>(r)] = s;
      }
    });
    return y;
  };
  const auto ref = run(1);
  for (int t : {2, 3, 5, 8}) EXPECT_EQ(run(t), ref) << t << " threads";
}

TEST(ThreadPool, ExceptionPropagatesAndPoolStaysUsable) {
  ThreadPool pool(4);
  EXPECT_THROW(pool.parallel_for(100, [](std::int64_t b, std::int64_t) {
    if (b > 0) throw std::runtime_error("boom");
  }),
               std::runtime_error);
  std::atomic<int> count{0};
  pool.parallel_for(100, [&](std::int64_t b, std::int64_t e) { count += static_cast<int>(e - b); });
  EXPECT_EQ(count.load(), 100);
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(3);
  std::atomic<int> total{0};
  pool.parallel_for(6, [&](std::int64_t b, std::int64_t e) {
    for (auto i = b; i < e; ++i)
      pool.parallel_for(10, [&](std::int64_t b2, std::int64_t e2) { total += static_cast<int>(e2 - b2); });
  });
  EXPECT_EQ(total.load(), 60);
}

TEST(ThreadPool, ConcurrentCallersAreSerialized) {
  ThreadPool pool(2);
  std::vector<std::thread> callers;
  std::atomic<long> total{0};
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 200; ++rep)
        pool.parallel_for(50, [&](std::int64_t b, std::int64_t e) { total += e - b; });
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 4L * 200 * 50);
}

TEST(ThreadPool, RejectsAbsurdThreadCounts) {
  EXPECT_THROW(ThreadPool(-1), tinfer::InvalidArgument);
  EXPECT_THROW(ThreadPool(1 << 20), tinfer::InvalidArgument);
  ThreadPool automatic(0);
  EXPECT_GE(automatic.size(), 1);
}

}  // namespace
