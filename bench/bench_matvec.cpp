// Matrix-vector product benchmarks: tinfer's scalar kernel against Eigen's on the same data,
// on shapes from real models (TinyLlama-1.1B: 2048x2048 attention, 5632x2048 FFN, 32000x2048
// classifier) and odd ones. Counters: GB/s of weights streamed and GFLOP/s. The result is
// checked against Eigen's so a fast wrong kernel cannot win.
#include <benchmark/benchmark.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/matvec.hpp"

namespace {

struct Problem {
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> w;
  Eigen::VectorXf x;
  Problem(int rows, int cols) : w(rows, cols), x(cols) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> d(-1, 1);
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) w(i, j) = d(rng);
    for (int j = 0; j < cols; ++j) x(j) = d(rng);
  }
};

void counters(benchmark::State& state, int rows, int cols) {
  const double bytes = static_cast<double>(rows) * cols * sizeof(float);
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * rows * cols, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void BM_MatvecF32_Tinfer(benchmark::State& state) {
  const int rows = static_cast<int>(state.range(0)), cols = static_cast<int>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  Problem p(rows, cols);
  tinfer::ThreadPool pool(threads);
  std::vector<float> y(static_cast<std::size_t>(rows));
  for (auto _ : state) {
    tinfer::kernels::matvec_f32(p.w.data(), p.x.data(), y.data(), rows, cols, &pool);
    benchmark::DoNotOptimize(y.data());
  }
  const Eigen::VectorXf ref = p.w * p.x;
  for (int r = 0; r < rows; ++r) {
    if (std::fabs(ref(r) - y[static_cast<std::size_t>(r)]) > 1e-3f * (1 + std::fabs(ref(r)))) {
      state.SkipWithError("result differs from Eigen");
      break;
    }
  }
  counters(state, rows, cols);
}

void BM_MatvecF32_Eigen(benchmark::State& state) {
  const int rows = static_cast<int>(state.range(0)), cols = static_cast<int>(state.range(1));
  Problem p(rows, cols);
  Eigen::VectorXf y(rows);
  for (auto _ : state) {
    y.noalias() = p.w * p.x;
    benchmark::DoNotOptimize(y.data());
  }
  counters(state, rows, cols);
}

void shapes(benchmark::internal::Benchmark* b, bool with_threads) {
  for (auto [r, c] : std::vector<std::pair<int, int>>{{2048, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}, {1000, 1001}, {64, 64}}) {
    if (with_threads) {
      for (int t : {1, 2}) b->Args({r, c, t});
    } else {
      b->Args({r, c});
    }
  }
}

BENCHMARK(BM_MatvecF32_Tinfer)->Apply([](auto* b) { shapes(b, true); })->ArgNames({"rows", "cols", "threads"})->UseRealTime();
BENCHMARK(BM_MatvecF32_Eigen)->Apply([](auto* b) { shapes(b, false); })->ArgNames({"rows", "cols"});

}  // namespace
