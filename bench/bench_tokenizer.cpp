// Tokenizer throughput (bytes_per_second) on ~4 MB of varied text: the TinyStories sample
// repeated plus generated multilingual text (tests/tokenizer/text_corpus.hpp). Encode and decode
// for the Llama 2 SentencePiece tokenizer and GPT-2's byte-level BPE, and, when the sentencepiece
// library was found at configure time, sentencepiece's own encode/decode of the same text.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "tinfer/tokenizer/byte_level_bpe.hpp"
#include "tinfer/tokenizer/sentencepiece_model.hpp"
#include "tokenizer/text_corpus.hpp"

#ifdef TINFER_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace {

std::filesystem::path assets() {
  const char* env = std::getenv("TINFER_ASSETS");
  return env && *env ? std::filesystem::path(env) : std::filesystem::path(TINFER_DEFAULT_ASSETS);
}
std::filesystem::path llama_model() { return assets() / "llama2-tokenizer" / "tokenizer.model"; }
std::filesystem::path gpt2_dir() { return assets() / "gpt2-bpe"; }

/// The benchmark text: half English stories, half generated multilingual text; ~4 MB.
const std::string& bench_text() {
  static const std::string text = [] {
    std::string stories;
    {
      std::ifstream in(assets().parent_path() / "reference" / "text" / "stories260K-sampled.txt", std::ios::binary);
      std::ostringstream s;
      s << in.rdbuf();
      stories = s.str();
    }
    std::string t;
    if (!stories.empty())
      while (t.size() < (2u << 20)) t += stories;
    tinfer::testing::TextGenerator gen(2024);
    t += gen.text((4u << 20) - t.size());
    return t;
  }();
  return text;
}

const tinfer::SentencePieceBpeTokenizer* llama() {
  static const auto tok = std::filesystem::exists(llama_model())
                              ? std::make_unique<tinfer::SentencePieceBpeTokenizer>(tinfer::load_sentencepiece_model(llama_model()))
                              : nullptr;
  return tok.get();
}

const tinfer::ByteLevelBpeTokenizer* gpt2() {
  static const auto tok = std::filesystem::exists(gpt2_dir() / "encoder.json")
                              ? std::make_unique<tinfer::ByteLevelBpeTokenizer>(tinfer::ByteLevelBpeTokenizer::from_vocab_and_merges(
                                    gpt2_dir() / "encoder.json", gpt2_dir() / "vocab.bpe"))
                              : nullptr;
  return tok.get();
}

void encode_bench(benchmark::State& state, const tinfer::Tokenizer* tok) {
  if (!tok) {
    state.SkipWithError("tokenizer files not found; set TINFER_ASSETS");
    return;
  }
  const std::string& text = bench_text();
  std::size_t n = 0;
  for (auto _ : state) {
    auto ids = tok->encode(text, {.add_bos = false});
    n = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(n);
}

void decode_bench(benchmark::State& state, const tinfer::Tokenizer* tok) {
  if (!tok) {
    state.SkipWithError("tokenizer files not found; set TINFER_ASSETS");
    return;
  }
  const std::string& text = bench_text();
  const auto ids = tok->encode(text, {.add_bos = false});
  for (auto _ : state) {
    std::string out = tok->decode(ids);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}

void BM_Tokenizer_Llama2_Encode(benchmark::State& state) { encode_bench(state, llama()); }
void BM_Tokenizer_Llama2_Decode(benchmark::State& state) { decode_bench(state, llama()); }
void BM_Tokenizer_Gpt2_Encode(benchmark::State& state) { encode_bench(state, gpt2()); }
void BM_Tokenizer_Gpt2_Decode(benchmark::State& state) { decode_bench(state, gpt2()); }
BENCHMARK(BM_Tokenizer_Llama2_Encode)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Tokenizer_Llama2_Decode)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Tokenizer_Gpt2_Encode)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Tokenizer_Gpt2_Decode)->Unit(benchmark::kMillisecond)->UseRealTime();

#ifdef TINFER_HAVE_SENTENCEPIECE
const sentencepiece::SentencePieceProcessor* sp() {
  static const auto p = [] {
    auto proc = std::make_unique<sentencepiece::SentencePieceProcessor>();
    if (!std::filesystem::exists(llama_model()) || !proc->Load(llama_model().string()).ok()) proc.reset();
    return proc;
  }();
  return p.get();
}

void BM_Tokenizer_Llama2_Encode_SentencePieceLib(benchmark::State& state) {
  if (!sp()) {
    state.SkipWithError("tokenizer.model not found; set TINFER_ASSETS");
    return;
  }
  const std::string& text = bench_text();
  std::vector<int> ids;
  for (auto _ : state) {
    ids.clear();
    if (!sp()->Encode(text, &ids).ok()) state.SkipWithError("sentencepiece Encode failed");
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(ids.size());
}

void BM_Tokenizer_Llama2_Decode_SentencePieceLib(benchmark::State& state) {
  if (!sp()) {
    state.SkipWithError("tokenizer.model not found; set TINFER_ASSETS");
    return;
  }
  const std::string& text = bench_text();
  std::vector<int> ids;
  if (!sp()->Encode(text, &ids).ok()) state.SkipWithError("sentencepiece Encode failed");
  for (auto _ : state) {
    std::string out;
    if (!sp()->Decode(ids, &out).ok()) state.SkipWithError("sentencepiece Decode failed");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_Tokenizer_Llama2_Encode_SentencePieceLib)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Tokenizer_Llama2_Decode_SentencePieceLib)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

}  // namespace
