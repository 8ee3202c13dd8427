// Memory read bandwidth: the bound of decoding (each weight byte is read once per token).
// A read-only stream (AVX-512 or AVX2 loads, summed so they cannot be elided) over
//   anon/hugepage   1 GiB of anonymous memory with MADV_HUGEPAGE (what the default loader uses),
//   anon/4k         the same with MADV_NOHUGEPAGE (4 KiB pages),
//   file/read, file/mmap   a model file loaded by MappedFile in each LoadMode (TINFER_BENCH_FILE,
//                  e.g. a 1-2 GB GGUF; skipped when unset): the two ways tinfer can hold weights,
// at 1 and 2 threads (each thread streams its own contiguous half). Counter: GB/s.
#include <benchmark/benchmark.h>

// GCC 12's _mm512_reduce_add_epi64 starts from an undefined register, which -Wuninitialized
// reports when inlined; the value is never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tinfer/core/mapped_file.hpp"
#include "tinfer/kernels/cpu_features.hpp"

namespace {

__attribute__((target("avx512f"))) std::uint64_t stream512(const std::byte* p, std::size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  std::size_t i = 0;
  for (; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 192));
  }
  return static_cast<std::uint64_t>(_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3))));
}

std::uint64_t stream_generic(const std::byte* p, std::size_t n) {
  std::uint64_t s[4] = {0, 0, 0, 0};
  for (std::size_t i = 0; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      std::uint64_t v;
      std::memcpy(&v, p + i + 8 * k, 8);
      s[k] += v;
    }
  }
  return s[0] + s[1] + s[2] + s[3];
}

std::uint64_t stream(const std::byte* p, std::size_t n) {
  return tinfer::kernels::cpu_features().avx512 ? stream512(p, n) : stream_generic(p, n);
}

void run_stream(benchmark::State& state, const std::byte* p, std::size_t n) {
  const int threads = static_cast<int>(state.range(0));
  std::uint64_t sink = 0;
  for (auto _ : state) {
    if (threads == 1) {
      sink += stream(p, n);
    } else {
      std::vector<std::thread> ts;
      std::vector<std::uint64_t> part(static_cast<std::size_t>(threads));
      const std::size_t chunk = n / static_cast<std::size_t>(threads) / 256 * 256;
      for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] { part[static_cast<std::size_t>(t)] = stream(p + static_cast<std::size_t>(t) * chunk, chunk); });
      }
      for (auto& th : ts) th.join();
      for (auto v : part) sink += v;
    }
  }
  benchmark::DoNotOptimize(sink);
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}

void BM_ReadBandwidthAnon(benchmark::State& state, bool huge) {
  const std::size_t n = std::size_t{1} << 30;
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    state.SkipWithError("cannot allocate 1 GiB");
    return;
  }
  ::madvise(p, n, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  std::memset(p, 1, n);
  run_stream(state, static_cast<const std::byte*>(p), n);
  ::munmap(p, n);
}

void BM_ReadBandwidthFile(benchmark::State& state, tinfer::LoadMode mode) {
  const char* path = std::getenv("TINFER_BENCH_FILE");
  if (path == nullptr) {
    state.SkipWithError("set TINFER_BENCH_FILE to a large file (e.g. a GGUF model)");
    return;
  }
  const tinfer::MappedFile f(path, mode);
  run_stream(state, f.data(), f.size());
}

BENCHMARK_CAPTURE(BM_ReadBandwidthAnon, hugepage, true)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ReadBandwidthAnon, 4k, false)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ReadBandwidthFile, read, tinfer::LoadMode::Read)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ReadBandwidthFile, mmap, tinfer::LoadMode::Mmap)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
