// tinfer-perplexity: perplexity of a model over a text file, computed as llama.cpp's
// llama-perplexity does, so the two can be compared on the same model, text and context:
// the whole text is tokenized (with BOS when the tokenizer adds one), cut into chunks of
// -c tokens, each chunk starts again with BOS, and only the second half of each chunk's
// positions is scored (each then has at least c/2 tokens of context).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <tinfer/tinfer.hpp>

#include "args.hpp"

namespace {

constexpr const char* kUsage = R"(usage: tinfer-perplexity -m MODEL -f TEXT [options]

Computes the perplexity of MODEL over the text file TEXT in chunks of the context size, and
prints per-chunk running estimates and a final line in llama.cpp's form:
  Final estimate: PPL = X +/- Y

options:
  -m, --model PATH       model: a GGUF file, a Hugging Face folder, or a llama2.c checkpoint
  -z, --tokenizer PATH   tokenizer, overriding the model's own (needed for llama2.c checkpoints
                         and folders without tokenizer files)
  -f, --file PATH        the text to score
  -c, --ctx-size N       chunk (context) size in tokens (default: 512, at most the model's)
      --chunks N         score only the first N chunks (default: all)
  -ctk, --cache-type-k T KV cache type of the keys: f32 (default), f16 or q8_0
  -ctv, --cache-type-v T KV cache type of the values: f32 (default), f16 or q8_0
  -b, --batch-size N     tokens evaluated per batched pass (default: 512; 1: token by token)
  -t, --threads N        threads (default: all hardware threads)
  -h, --help             show this help
)";

struct Options {
  std::string model, tokenizer, file;
  int ctx = 512;
  int max_chunks = -1;
  int threads = 0;
  int batch = 512;
  tinfer::KVCacheType type_k = tinfer::KVCacheType::F32, type_v = tinfer::KVCacheType::F32;
};

tinfer::KVCacheType cache_type(std::string_view flag, std::string_view v) {
  try {
    return tinfer::parse_kv_cache_type(v);
  } catch (const tinfer::InvalidArgument&) {
    throw tinfer_examples::UsageError(std::string(flag) + ": unknown cache type '" + std::string(v) + "' (use f32, f16 or q8_0)");
  }
}

Options parse(int argc, char** argv) {
  using tinfer_examples::UsageError;
  tinfer_examples::Args a(argc, argv);
  Options o;
  while (!a.done()) {
    const std::string_view f = a.next_flag();
    if (f == "-h" || f == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (f == "-m" || f == "--model") {
      o.model = a.value(f);
    } else if (f == "-z" || f == "--tokenizer") {
      o.tokenizer = a.value(f);
    } else if (f == "-f" || f == "--file") {
      o.file = a.value(f);
    } else if (f == "-c" || f == "--ctx-size") {
      o.ctx = a.number<int>(f, 2, 1 << 24);
    } else if (f == "-ctk" || f == "--cache-type-k") {
      o.type_k = cache_type(f, a.value(f));
    } else if (f == "-ctv" || f == "--cache-type-v") {
      o.type_v = cache_type(f, a.value(f));
    } else if (f == "-b" || f == "--batch-size") {
      o.batch = a.number<int>(f, 1, 1 << 20);
    } else if (f == "--chunks") {
      o.max_chunks = a.number<int>(f, 1, 1 << 30);
    } else if (f == "-t" || f == "--threads") {
      o.threads = a.number<int>(f, 1, tinfer::ThreadPool::kMaxThreads);
    } else {
      throw UsageError("unknown option '" + std::string(f) + "'");
    }
  }
  if (o.model.empty()) throw UsageError("no model given: pass -m MODEL");
  if (o.file.empty()) throw UsageError("no text given: pass -f FILE");
  return o;
}

void progress(int done, int total, double seconds) {
  const int width = 30, filled = total > 0 ? done * width / total : width;
  std::fprintf(stderr, "\r[%.*s%*s] %d/%d chunks, %.1f s", filled, "==============================", width - filled, "", done,
               total, seconds);
  std::fflush(stderr);
}

int run(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto model = tinfer::load_model(o.model);
  const auto tok = o.tokenizer.empty() ? tinfer::load_model_tokenizer(o.model, *model) : tinfer::load_tokenizer(o.tokenizer);
  std::ifstream in(o.file, std::ios::binary);
  if (!in) throw tinfer::IoError(o.file + ": cannot open text file");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const std::vector<std::int32_t> tokens = tok->encode(text);
  if (o.ctx > model->max_context()) {
    throw tinfer::InvalidArgument(tinfer::detail::str_cat("context ", o.ctx, " exceeds the model's maximum of ", model->max_context(),
                                                          ": pass -c ", model->max_context(), " or less"));
  }
  const int n_ctx = o.ctx;
  int n_chunks = static_cast<int>(tokens.size() / static_cast<std::size_t>(n_ctx));
  if (n_chunks == 0) {
    throw tinfer::InvalidArgument(tinfer::detail::str_cat(o.file, " has ", tokens.size(), " tokens, fewer than one chunk of ", n_ctx,
                                                          ": use a smaller -c or a longer text"));
  }
  if (o.max_chunks > 0 && o.max_chunks < n_chunks) n_chunks = o.max_chunks;
  std::fprintf(stderr, "%s: %zu tokens, %d chunks of %d, scoring the second half of each\n", o.file.c_str(), tokens.size(), n_chunks, n_ctx);

  tinfer::ThreadPool pool(o.threads);
  const auto session = model->new_session(tinfer::SessionOptions{.context = n_ctx, .type_k = o.type_k, .type_v = o.type_v});
  std::fprintf(stderr, "KV cache: keys %s, values %s, %lld bytes per token\n", std::string(tinfer::kv_cache_type_name(o.type_k)).c_str(),
               std::string(tinfer::kv_cache_type_name(o.type_v)).c_str(), static_cast<long long>(session->cache().bytes_per_token()));
  const auto vocab = static_cast<std::size_t>(model->vocab_size());
  std::vector<std::int32_t> chunk(static_cast<std::size_t>(n_ctx));
  const int first = n_ctx / 2;
  const std::int32_t bos = tok->add_bos_by_default() ? tok->bos_id() : -1;
  double nll = 0, nll2 = 0;
  std::size_t count = 0;
  std::string running;
  for (int c = 0; c < n_chunks; ++c) {
    const std::size_t start = static_cast<std::size_t>(c) * static_cast<std::size_t>(n_ctx);
    for (int j = 0; j < n_ctx; ++j) chunk[static_cast<std::size_t>(j)] = tokens[start + static_cast<std::size_t>(j)];
    if (bos >= 0) chunk[0] = bos;
    // Batched passes of up to -b tokens; the logits of every token are needed from `first` on.
    std::span<float> batch_logits;
    int batch_at = 0;
    for (int j = 0; j < n_ctx - 1; ++j) {
      if (j == batch_at + static_cast<int>(batch_logits.size() / vocab) || batch_logits.empty()) {
        const int len = std::min(o.batch, n_ctx - 1 - j);
        batch_logits = model->forward_batch(*session, std::span<const std::int32_t>(chunk).subspan(static_cast<std::size_t>(j), static_cast<std::size_t>(len)),
                                            j, &pool, true);
        batch_at = j;
      }
      if (j < first) continue;
      const auto logits = batch_logits.subspan(static_cast<std::size_t>(j - batch_at) * vocab, vocab);
      // log-softmax in double of the logit of the next token
      double mx = logits[0];
      for (float v : logits) mx = std::max(mx, static_cast<double>(v));
      double sum = 0;
      for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
      const double lp = static_cast<double>(logits[static_cast<std::size_t>(tokens[start + static_cast<std::size_t>(j) + 1])]) - mx - std::log(sum);
      nll -= lp;
      nll2 += lp * lp;
      ++count;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    progress(c + 1, n_chunks, seconds);
    char buf[64];
    std::snprintf(buf, sizeof buf, "[%d]%.4f,", c + 1, std::exp(nll / static_cast<double>(count)));
    running += buf;
  }
  std::fprintf(stderr, "\n");
  std::printf("%s\n", running.c_str());
  const double mean = nll / static_cast<double>(count);
  double var = nll2 / static_cast<double>(count) - mean * mean;
  const double ppl = std::exp(mean);
  const double err = var > 0 ? std::sqrt(var / static_cast<double>(count - 1)) * ppl : 0.0;
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, err);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tinfer_examples::guarded_main("tinfer-perplexity", [&] { return run(parse(argc, argv)); });
}
