// Attention benchmarks (issue 6): decode tokens/s at a context fill of 0, 512, 2048 and 4096
// positions, and prompt processing of 512 and 2048 tokens, per KV cache type and thread count,
// on a TinyLlama-1.1B-shaped model (dim 2048, 32 heads, 4 KV heads, FFN 5632, vocab 32000).
//
// The model file comes from TINFER_BENCH_LLAMA (default
// /work/models/tinyllama-shape-4l-ctx8k-q8_0.gguf: random weights, 4 layers of TinyLlama's
// shapes, 8192 positions; see README's "Attention and KV cache" section for how it is made and
// how the figures compare with llama-bench). Without the file the benchmarks report an error.
//
// Decode at fill D: the cache is filled with D positions of random keys and values (attention
// costs the same for any values; computing D real tokens first would take minutes), then tokens
// are fed at positions D, D+1, ..., D+127 cyclically, as llama-bench's tg128 at depth D does.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tinfer/models/model.hpp"

namespace {

std::string model_path() {
  const char* env = std::getenv("TINFER_BENCH_LLAMA");
  return env != nullptr ? env : "/work/models/tinyllama-shape-4l-ctx8k-q8_0.gguf";
}

const tinfer::LlamaModel* model() {
  static std::unique_ptr<tinfer::Model> m = [] {
    const std::string p = model_path();
    return std::filesystem::exists(p) ? tinfer::load_model(p) : nullptr;
  }();
  if (!m || m->architecture() != "llama") return nullptr;
  return &static_cast<const tinfer::model_detail::ModelOf<tinfer::LlamaModel, tinfer::LlamaSession>&>(*m).typed();
}

tinfer::ThreadPool& pool(int threads) {
  static std::map<int, std::unique_ptr<tinfer::ThreadPool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<tinfer::ThreadPool>(threads);
  return *p;
}

const tinfer::KVCacheType kTypes[] = {tinfer::KVCacheType::F32, tinfer::KVCacheType::F16, tinfer::KVCacheType::Q8_0};

// args: fill, threads, cache type index
void BM_Decode(benchmark::State& state) {
  const auto* m = model();
  if (m == nullptr) {
    state.SkipWithError(("model not found: " + model_path() + " (set TINFER_BENCH_LLAMA)").c_str());
    return;
  }
  const int fill = static_cast<int>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const tinfer::KVCacheType type = kTypes[state.range(2)];
  tinfer::LlamaSession s(*m, tinfer::SessionOptions{.context = fill + 128, .type_k = type, .type_v = type});
  // Synthetic fill (see the file comment): random keys/values of a typical scale.
  auto& cache = const_cast<tinfer::KVCache&>(s.cache());
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> row(static_cast<std::size_t>(cache.kv_dim()));
  for (int l = 0; l < cache.n_layers(); ++l) {
    for (int p = 0; p < fill; ++p) {
      for (float& x : row) x = nd(rng);
      cache.store_key(l, p, row.data());
      cache.store_value(l, p, row.data());
    }
  }
  cache.set_n_past(fill);
  int i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(m->forward(s, 100 + i % 1000, fill + i % 128, &pool(threads)).data());
    ++i;
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["KV_bytes_per_token"] = static_cast<double>(cache.bytes_per_token());
  state.SetLabel(std::string("ctk=ctv=") + std::string(tinfer::kv_cache_type_name(type)));
}

// args: prompt length, threads, cache type index
void BM_Prompt(benchmark::State& state) {
  const auto* m = model();
  if (m == nullptr) {
    state.SkipWithError(("model not found: " + model_path() + " (set TINFER_BENCH_LLAMA)").c_str());
    return;
  }
  const int n = static_cast<int>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const tinfer::KVCacheType type = kTypes[state.range(2)];
  tinfer::LlamaSession s(*m, tinfer::SessionOptions{.context = n, .type_k = type, .type_v = type});
  std::vector<std::int32_t> toks(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) toks[static_cast<std::size_t>(i)] = 100 + (i * 7919) % 30000;
  for (auto _ : state) benchmark::DoNotOptimize(m->forward_batch(s, toks, 0, &pool(threads)).data());
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * n, benchmark::Counter::kIsRate);
  state.SetLabel(std::string("ctk=ctv=") + std::string(tinfer::kv_cache_type_name(type)));
}

BENCHMARK(BM_Decode)
    ->ArgNames({"fill", "threads", "type"})
    ->ArgsProduct({{0, 512, 2048, 4096}, {1, 2}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0)
    ->UseRealTime();
BENCHMARK(BM_Prompt)
    ->ArgNames({"tokens", "threads", "type"})
    ->ArgsProduct({{512, 2048}, {1, 2}, {0}})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace
