// Batched products (prompt processing): kernels::matmul with n = 1..128 activation rows on
// TinyLlama-1.1B's shapes (and GPT-2's for the float types), per weight type, in the default
// activation mode, at 1 and 2 threads.
// Counters: GFLOP/s (2 n rows cols per call) and GB/s of weight bytes (read once per call).
// Q8_0, Q4_0, Q4_K, Q6_K and the float types run in both layouts (`BM_Matmul/Q8_0` and
// `BM_Matmul/Q8_0/interleaved`). The
// result of every row is checked bit for bit against matvec() of that row.
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/interleave.hpp"

namespace {

namespace k = tinfer::kernels;
using tinfer::DType;

void BM_Matmul(benchmark::State& state, DType t, bool interleaved) {
  const std::int64_t rows = state.range(0), cols = state.range(1), n = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const auto info = tinfer::dtype_info(t);
  const std::size_t row_bytes = static_cast<std::size_t>(cols) / info->block_size * info->block_bytes;
  std::vector<std::byte> data(static_cast<std::size_t>(rows) * row_bytes);
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : data) b = static_cast<std::byte>(byte(rng));
  // Sane scales/values: small f16 at the start of each block (all types here keep d first),
  // or every element for the float types.
  const std::uint16_t h = tinfer::f16::from_float(0.01f);
  if (t == DType::F32) {
    for (std::size_t i = 0; i < data.size(); i += 4) { const float v = 0.01f * static_cast<float>(byte(rng) - 128); std::memcpy(&data[i], &v, 4); }
  } else if (t == DType::F16 || t == DType::BF16) {
    const std::uint16_t v = t == DType::F16 ? h : tinfer::bf16::from_float(0.01f);
    for (std::size_t i = 0; i < data.size(); i += 2) std::memcpy(&data[i], &v, 2);
  } else {
    const std::size_t d_off = t == DType::Q6_K ? offsetof(tinfer::quant::block_q6_K, d) : 0;
    for (std::size_t b = 0; b < data.size(); b += info->block_bytes) {
      std::memcpy(&data[b + d_off], &h, 2);
      if (t == DType::Q4_K) std::memcpy(&data[b + 2], &h, 2);
    }
  }
  // Also in the interleaved layout models load them in (kernels/interleave.hpp).
  const auto w = interleaved ? k::interleave_rows(t, data.data(), rows, cols) : tinfer::WeightView::dense(t, data.data(), rows, cols);
  std::normal_distribution<float> nd(0, 1);
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
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(rows) * static_cast<double>(row_bytes),
                                              benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

const bool registered = [] {
  const std::pair<DType, const char*> types[] = {{DType::F32, "F32"},   {DType::F16, "F16"},   {DType::BF16, "BF16"},
                                                 {DType::Q8_0, "Q8_0"}, {DType::Q4_0, "Q4_0"}, {DType::Q4_K, "Q4_K"},
                                                 {DType::Q6_K, "Q6_K"}, {DType::Q5_K, "Q5_K"}};
  auto add = [](DType t, const char* tn, int r, int c, int n, int th, bool il = false) {
    auto* b = benchmark::RegisterBenchmark((std::string("BM_Matmul/") + tn + (il ? "/interleaved" : "")).c_str(), BM_Matmul, t, il);
    b->ArgNames({"rows", "cols", "n", "threads"})->Args({r, c, n, th})->UseRealTime()->Unit(benchmark::kMillisecond);
  };
  for (const auto& [t, tn] : types)
    for (auto [r, c] : {std::pair{2048, 2048}, std::pair{5632, 2048}})
      for (int n : {1, 16, 128})
        for (int th : {1, 2}) {
          add(t, tn, r, c, n, th);
          if (tinfer::kernels::can_interleave(t)) add(t, tn, r, c, n, th, true);
        }
  // The float types also on TinyLlama's down projection (long rows: the cache-blocked path) and
  // GPT-2 124M's shapes (768 columns: q/k/v fused, attention out, MLP up; 3072: MLP down).
  for (const auto& [t, tn] : {std::pair{DType::F32, "F32"}, std::pair{DType::F16, "F16"}, std::pair{DType::BF16, "BF16"}})
    for (auto [r, c] : {std::pair{2048, 5632}, std::pair{2304, 768}, std::pair{768, 768}, std::pair{3072, 768}, std::pair{768, 3072}})
      for (int n : {16, 128})
        for (int th : {1, 2}) {
          add(t, tn, r, c, n, th);
          add(t, tn, r, c, n, th, true);
        }
  return true;
}();

}  // namespace
