// Token generation speed of the Llama decoder on stories260K (skipped without the asset).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "tinfer/models/llama.hpp"

namespace {

std::string stories_path() {
  const char* env = std::getenv("TINFER_ASSETS");
  std::filesystem::path assets = env ? env : TINFER_DEFAULT_ASSETS;
  return (assets / "stories260K" / "stories260K.bin").string();
}

void BM_Stories260K_Decode(benchmark::State& state) {
  if (!std::filesystem::exists(stories_path())) {
    state.SkipWithError("stories260K.bin not found; set TINFER_ASSETS");
    return;
  }
  const auto model = tinfer::LlamaModel::load_llama2c(stories_path());
  tinfer::LlamaSession session(model);
  tinfer::ThreadPool pool(static_cast<int>(state.range(0)));
  int pos = 0;
  for (auto _ : state) {
    auto logits = model.forward(session, 1 + pos % 300, pos, &pool);
    benchmark::DoNotOptimize(logits.data());
    pos = (pos + 1) % 256;  // decode at fills 0..255
  }
  state.counters["tokens/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Stories260K_Decode)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime();

}  // namespace
