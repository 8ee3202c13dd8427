// Generation on the bundled demo model (GPT-2, 3.7M parameters):
// - DemoDecode/sequential vs /batched: 4 sequences of 64 tokens each, one after another or
//   together through generate_batch(); items/s is the total tokens/s.
// - DemoSpeculative/<n_draft>: greedy generation of 128 tokens with the first layer of the model
//   as draft, against DemoSpeculative/0 (the target alone); counters give the acceptance rate
//   and tokens per target pass.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "tinfer/generate/batch_generate.hpp"
#include "tinfer/generate/generate.hpp"
#include "tinfer/generate/sampler_chain.hpp"
#include "tinfer/generate/speculative.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/models/gguf_loader.hpp"
#include "tinfer/models/gpt2.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"

namespace {

using namespace tinfer;

struct Demo {
  std::shared_ptr<const Gpt2Model> model;
  std::unique_ptr<Gpt2Model> draft;
  std::vector<std::vector<std::int32_t>> prompts;
};

const Demo* demo() {
  static std::unique_ptr<Demo> d = [] {
    const std::filesystem::path path = std::filesystem::path(__FILE__).parent_path().parent_path() / "examples" / "demo-model" /
                                       "tinfer-demo-kjv.gguf";
    if (!std::filesystem::exists(path)) return std::unique_ptr<Demo>();
    auto file = std::make_shared<const io::GgufFile>(path.string());
    auto out = std::make_unique<Demo>();
    out->model = std::make_shared<const Gpt2Model>(load_gpt2_gguf(file));
    Gpt2Config c = out->model->config();
    Gpt2Weights w = out->model->weights();
    c.n_layers = 1;
    w.layers.resize(1);
    out->draft = std::make_unique<Gpt2Model>(c, w, out->model);
    const auto tok = load_gguf_tokenizer(*file);
    for (const char* p : {"And it came to pass", "In the beginning", "The LORD is my shepherd", "Blessed are the"})
      out->prompts.push_back(tok->encode(p));
    return out;
  }();
  return d.get();
}

constexpr int kSequences = 4;
constexpr int kTokens = 64;

void DemoDecode(benchmark::State& state, bool batched) {
  const Demo* d = demo();
  if (d == nullptr) {
    state.SkipWithError("demo model missing");
    return;
  }
  const Gpt2Model& m = *d->model;
  ThreadPool pool(static_cast<int>(state.range(0)));
  long tokens = 0;
  for (auto _ : state) {
    std::vector<Gpt2Session> sessions;
    for (int i = 0; i < kSequences; ++i) sessions.emplace_back(m, 256);
    std::vector<SamplerChain> samplers;
    for (int i = 0; i < kSequences; ++i)
      samplers.push_back(make_sampler_chain({.temperature = 0.8f, .seed = 1 + static_cast<std::uint64_t>(i)}));
    if (batched) {
      std::vector<BatchSequence<Gpt2Session, SamplerChain>> batch(kSequences);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        batch[i].session = &sessions[i];
        batch[i].sampler = &samplers[i];
        batch[i].seq.tokens = d->prompts[i];
        batch[i].opt = {.max_new_tokens = kTokens};
      }
      const bool multi = generate_batch(m, std::span(batch), [](std::size_t, std::int32_t, std::int32_t) { return true; }, &pool);
      state.counters["forward_multi"] = multi ? 1 : 0;
      for (const auto& b : batch) tokens += static_cast<long>(b.seq.tokens.size());
    } else {
      for (std::size_t i = 0; i < kSequences; ++i) {
        const auto r = generate(m, sessions[i], std::span(d->prompts[i]), samplers[i], {.max_new_tokens = kTokens},
                                [](std::int32_t, std::int32_t) { return true; }, &pool);
        tokens += static_cast<long>(r.tokens.size()) + r.n_prompt;
      }
    }
  }
  state.SetItemsProcessed(tokens);  // prompt + generated tokens of all sequences
}
BENCHMARK_CAPTURE(DemoDecode, sequential, false)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(DemoDecode, batched, true)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void DemoSpeculative(benchmark::State& state) {
  const Demo* d = demo();
  if (d == nullptr) {
    state.SkipWithError("demo model missing");
    return;
  }
  const Gpt2Model& m = *d->model;
  const int n_draft = static_cast<int>(state.range(0));
  ThreadPool pool(1);
  long tokens = 0;
  SpeculativeStats st;
  for (auto _ : state) {
    Gpt2Session ts(m, 256), ds(*d->draft, 256);
    auto greedy = SamplerChain::greedy();
    const GenerateOptions opt{.max_new_tokens = 128};
    auto keep = [](std::int32_t, std::int32_t) { return true; };
    if (n_draft == 0) {
      tokens += static_cast<long>(generate(m, ts, std::span(d->prompts[0]), greedy, opt, keep, &pool).tokens.size());
    } else {
      tokens += static_cast<long>(
          generate_speculative(m, ts, *d->draft, ds, std::span(d->prompts[0]), greedy, opt, n_draft, keep, &pool, &st).tokens.size());
    }
  }
  state.SetItemsProcessed(tokens);
  if (n_draft > 0) {
    state.counters["acceptance"] = st.acceptance_rate();
    state.counters["tokens_per_pass"] = static_cast<double>(st.accepted + st.target_passes) / static_cast<double>(st.target_passes);
  }
}
BENCHMARK(DemoSpeculative)->Arg(0)->Arg(2)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
