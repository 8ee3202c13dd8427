// tinfer/core/thread_pool.hpp: a persistent pool of worker threads with a deterministic
// parallel_for.
//
// parallel_for splits [0, n) into contiguous chunks whose bounds depend only on n, the minimum
// chunk length and the pool size, never on timing, and each index is handled by exactly one
// call. Kernels that compute each output from its own index alone (a matrix row, a head) thus
// give bit-identical results for any thread count; reductions must combine fixed-size blocks,
// not per-thread partial sums.
//
// Thread safety: calls from several threads are serialized (one job at a time). A parallel_for
// issued from inside a running job runs on the calling thread with the same split.
//
// Waking: a forward pass issues a job every few microseconds (decoding GPT-2 124M: ~60 per
// token), and waking a sleeping thread through the kernel costs tens of microseconds on a
// virtual machine. So idle workers, and the caller waiting for them, first spin on an atomic
// for up to kSpinMicros, and only then sleep on a condition variable.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "tinfer/core/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tinfer {

class ThreadPool {
 public:
  /// A pool whose parallel_for uses `n_threads` threads in all, the caller included.
  /// 0 means one per hardware thread. Throws InvalidArgument for negative or absurd counts.
  explicit ThreadPool(int n_threads = 0) {
    if (n_threads < 0 || n_threads > kMaxThreads) {
      throw InvalidArgument(detail::str_cat("thread count ", n_threads, " is out of range (1..", kMaxThreads,
                                            ", or 0 for one per hardware thread)"));
    }
    if (n_threads == 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    size_ = n_threads;
    workers_.reserve(static_cast<std::size_t>(size_ - 1));
    for (int w = 1; w < size_; ++w) workers_.emplace_back([this, w] { worker_loop(w); });
  }

  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stop_.store(true, std::memory_order_relaxed);
      ticket_.fetch_add(kTicketStep, std::memory_order_release);
    }
    start_cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  static constexpr int kMaxThreads = 1024;
  /// How long an idle worker, or the caller waiting for a job's end, spins before sleeping.
  static constexpr int kSpinMicros = 200;

  /// Threads used by parallel_for, the caller included.
  int size() const noexcept { return size_; }

  /// Number of chunks parallel_for(n, fn, min_chunk) uses.
  int chunk_count(std::int64_t n, std::int64_t min_chunk = 1) const noexcept {
    if (n <= 0) return 0;
    min_chunk = std::max<std::int64_t>(min_chunk, 1);
    const std::int64_t by_size = (n + min_chunk - 1) / min_chunk;
    return static_cast<int>(std::min<std::int64_t>(size_, by_size));
  }

  /// Calls fn(begin, end) on k contiguous chunks that partition [0, n): chunk c is
  /// [c*n/k, (c+1)*n/k), k = chunk_count(n, min_chunk). Blocks until all chunks are done; the
  /// first exception thrown by fn is rethrown here after the others finish.
  template <class F>
  void parallel_for(std::int64_t n, F&& fn, std::int64_t min_chunk = 1) {
    const int k = chunk_count(n, min_chunk);
    if (k == 0) return;
    using Fn = std::remove_reference_t<F>;
    auto call = [](void* ctx, std::int64_t b, std::int64_t e) { (*static_cast<Fn*>(ctx))(b, e); };
    if (k == 1 || inside_job()) {
      for (int c = 0; c < k; ++c) fn(chunk_begin(n, k, c), chunk_begin(n, k, c + 1));
      return;
    }
    run(k, n, call, const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using Call = void (*)(void*, std::int64_t, std::int64_t);

  static std::int64_t chunk_begin(std::int64_t n, int k, int c) noexcept {
    // n * c cannot overflow for the sizes a model produces (n < 2^53, c <= 1024).
    return n * c / k;
  }

  static bool& inside_job() noexcept {
    thread_local bool inside = false;
    return inside;
  }

  void run_chunk(int c) noexcept {
    const bool was_inside = inside_job();
    inside_job() = true;
    try {
      job_call_(job_ctx_, chunk_begin(job_n_, job_chunks_, c), chunk_begin(job_n_, job_chunks_, c + 1));
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    inside_job() = was_inside;
  }

  static void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#else
    std::this_thread::yield();
#endif
  }

  /// Spins until done() or kSpinMicros have passed; returns done().
  template <class Done>
  static bool spin_until(Done&& done) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    for (;;) {
      for (int i = 0; i < 64; ++i) {
        if (done()) return true;
        cpu_relax();
      }
      if (std::chrono::steady_clock::now() >= until) return done();
    }
  }

  void run(int k, std::int64_t n, Call call, void* ctx) {
    std::lock_guard submit(submit_mutex_);
    // Only the k - 1 workers that take part read these, after acquiring the ticket below, and
    // the next job writes them only after all of those have finished (pending_ == 0).
    job_call_ = call;
    job_ctx_ = ctx;
    job_n_ = n;
    job_chunks_ = k;
    pending_.store(k - 1, std::memory_order_relaxed);
    {
      // Under the mutex, so a worker about to sleep either sees the new ticket or is woken.
      std::lock_guard lock(mutex_);
      error_ = nullptr;
      ticket_.store((ticket_.load(std::memory_order_relaxed) & ~(kTicketStep - 1)) + kTicketStep + static_cast<std::uint64_t>(k),
                    std::memory_order_release);
    }
    start_cv_.notify_all();
    run_chunk(0);
    auto finished = [this] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(finished)) {
      std::unique_lock lock(mutex_);
      done_cv_.wait(lock, finished);
    }
    std::exception_ptr error;
    {
      std::lock_guard lock(mutex_);
      error = std::exchange(error_, nullptr);
    }
    if (error) std::rethrow_exception(error);
  }

  void worker_loop(int w) {
    std::uint64_t seen = 0;
    for (;;) {
      auto changed = [&] { return ticket_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(changed)) {
        std::unique_lock lock(mutex_);
        start_cv_.wait(lock, changed);
      }
      seen = ticket_.load(std::memory_order_acquire);
      if (stop_.load(std::memory_order_relaxed)) return;
      // The chunk count travels in the ticket: a worker sitting this job out must not read
      // job_chunks_, which the next job may already be writing.
      if (static_cast<std::uint64_t>(w) >= (seen & (kTicketStep - 1))) continue;
      run_chunk(w);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard lock(mutex_);  // the caller either has not checked yet or is waiting
        done_cv_.notify_one();
      }
    }
  }

  // A ticket is a job's sequence number times kTicketStep plus its chunk count.
  static constexpr std::uint64_t kTicketStep = 1u << 16;
  static_assert(kMaxThreads < static_cast<int>(kTicketStep));

  int size_ = 1;
  std::vector<std::thread> workers_;
  std::mutex submit_mutex_;  // one job at a time
  std::mutex mutex_;         // guards error_ and the sleeping side of the two waits
  std::condition_variable start_cv_, done_cv_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> ticket_{0};
  std::atomic<int> pending_{0};
  Call job_call_ = nullptr;
  void* job_ctx_ = nullptr;
  std::int64_t job_n_ = 0;
  int job_chunks_ = 0;
  std::exception_ptr error_;
};

}  // namespace tinfer
