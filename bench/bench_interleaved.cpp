// Interleaved Q8_0 / Q4_0 weights (kernels/interleave.hpp) against the same matrix row-major:
// kernels::matmul with n = 1 (decode), 16 and 64 (prompt) activation rows on TinyLlama-1.1B's
// FFN shape, default activation mode, 1 and 2 threads. Counters as bench_matmul.cpp: GFLOP/s and
// GB/s of weight bytes. Every row of the interleaved product is checked against matvec.
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/interleave.hpp"
#include "tinfer/quant/quantize.hpp"

namespace {

namespace k = tinfer::kernels;
using tinfer::DType;

void BM_Interleaved(benchmark::State& state, DType t, bool interleaved) {
  const std::int64_t rows = state.range(0), cols = state.range(1), n = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> wf(static_cast<std::size_t>(rows * cols));
  for (auto& v : wf) v = 0.02f * nd(rng);
  const std::size_t rb = tinfer::quant::row_bytes(t, cols);
  std::vector<std::byte> data(static_cast<std::size_t>(rows) * rb);
  for (std::int64_t r = 0; r < rows; ++r) tinfer::quant::quantize_row(t, wf.data() + r * cols, data.data() + r * rb, cols);
  const auto w = interleaved ? k::interleave_rows(t, data.data(), rows, cols) : tinfer::WeightView::dense(t, data.data(), rows, cols);
  std::vector<float> x(static_cast<std::size_t>(n * cols)), y(static_cast<std::size_t>(n * rows)), yv(static_cast<std::size_t>(rows));
  for (auto& v : x) v = nd(rng);
  std::unique_ptr<tinfer::ThreadPool> pool = threads > 1 ? std::make_unique<tinfer::ThreadPool>(threads) : nullptr;
  for (auto _ : state) {
    k::matmul(w, x.data(), n, cols, y.data(), rows, pool.get());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  for (std::int64_t i = 0; i < n; i += std::max<std::int64_t>(1, n / 3)) {
    k::matvec(w, x.data() + i * cols, yv.data(), nullptr);
    if (std::memcmp(yv.data(), y.data() + i * rows, yv.size() * sizeof(float)) != 0) {
      state.SkipWithError("matmul row differs from matvec");
      return;
    }
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(n * rows * cols), benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(rows) * static_cast<double>(rb),
                                              benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

const bool registered = [] {
  for (auto [t, tn] : {std::pair{DType::Q8_0, "Q8_0"}, std::pair{DType::Q4_0, "Q4_0"}})
    for (bool il : {false, true})
      for (int n : {1, 16, 64})
        for (int th : {1, 2}) {
          const std::string name = std::string("BM_Interleaved/") + tn + (il ? "/interleaved" : "/rows");
          auto* b = benchmark::RegisterBenchmark(name.c_str(), BM_Interleaved, t, il);
          b->ArgNames({"rows", "cols", "n", "threads"})->Args({5632, 2048, n, th})->UseRealTime()->Unit(benchmark::kMillisecond);
        }
  return true;
}();

}  // namespace
