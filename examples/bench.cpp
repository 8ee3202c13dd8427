// tinfer-bench: prompt-processing and token-generation speed of a model file, in the manner of
// llama.cpp's llama-bench (same flags, same JSON keys, so the two tools' results can be joined).
//
// A pp test feeds n_prompt random tokens in one forward_batch (positions d..d+n_prompt-1); a tg
// test feeds n_gen tokens one at a time with forward() (positions d..d+n_gen-1), where d is the
// depth (-d): that many random tokens already in the KV cache, computed untimed (once per model,
// growing as deeper tests come; each repetition truncates back to d, as llama-bench restores its
// saved state). Each test runs once to warm up (pp: the whole batch, tg: one token), then -r
// times; t/s is computed for each repetition and reported as mean and sample standard deviation.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <ctime>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "tinfer/tinfer.hpp"

namespace {

constexpr const char* kUsage = R"(usage: tinfer-bench -m MODEL [options]

Measures prompt processing (pp) and token generation (tg) speed, like llama-bench.

options:
  -m, --model FILE       model file (repeat or comma-separate for several)
  -t, --threads LIST     thread counts, comma-separated (default: 2)
  -p, --n-prompt LIST    prompt lengths for pp tests (default: 512; 0 skips)
  -n, --n-gen LIST       generated tokens for tg tests (default: 128; 0 skips)
  -d, --n-depth LIST     tokens already in the KV cache before each test (default: 0)
  -ctk, --cache-type-k T KV cache key type: f32, f16 or q8_0 (default: f16, as llama-bench)
  -ctv, --cache-type-v T KV cache value type (default: f16)
  -r, --repetitions N    timed runs per test (default: 5)
  --no-warmup            skip the untimed warm-up run of each test
  -o, --output FORMAT    md (default) or json
  -h, --help             show this help

The JSON output is an array with one object per test, with llama-bench's keys (model_filename,
model_type, model_size, model_n_params, n_threads, n_prompt, n_gen, test_time, avg_ns,
stddev_ns, avg_ts, stddev_ts, samples_ns, samples_ts, ...).
Environment: TINFER_ISA=scalar|avx2|avx512 lowers the kernels' instruction set,
TINFER_ACTIVATIONS=q8|f32 picks another activation mode for quantized weights,
TINFER_LOAD=mmap uses the weights in place from a memory map instead of reading them.
)";

struct Options {
  std::vector<std::string> models;
  std::vector<int> threads{2}, prompts{512}, gens{128}, depths{0};
  tinfer::KVCacheType type_k = tinfer::KVCacheType::F16, type_v = tinfer::KVCacheType::F16;
  int reps = 5;
  bool warmup = true;
  std::string output = "md";
};

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t end = std::min(s.find(',', start), s.size());
    out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::vector<int> int_list(tinfer_examples::Args& a, std::string_view flag, int lo, int hi) {
  std::vector<int> out;
  for (const std::string& item : split(a.value(flag))) {
    const char* argv[] = {"", item.c_str()};
    tinfer_examples::Args one(2, const_cast<char**>(argv));
    out.push_back(one.number<int>(flag, lo, hi));
  }
  return out;
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
      for (auto& m : split(a.value(f))) o.models.push_back(m);
    } else if (f == "-t" || f == "--threads") {
      o.threads = int_list(a, f, 1, tinfer::ThreadPool::kMaxThreads);
    } else if (f == "-p" || f == "--n-prompt") {
      o.prompts = int_list(a, f, 0, 1 << 20);
    } else if (f == "-n" || f == "--n-gen") {
      o.gens = int_list(a, f, 0, 1 << 20);
    } else if (f == "-d" || f == "--n-depth") {
      o.depths = int_list(a, f, 0, 1 << 20);
    } else if (f == "-ctk" || f == "--cache-type-k" || f == "-ctv" || f == "--cache-type-v") {
      const std::string v(a.value(f));
      tinfer::KVCacheType t;
      try {
        t = tinfer::parse_kv_cache_type(v);
      } catch (const tinfer::InvalidArgument& e) {
        throw UsageError("option " + std::string(f) + ": " + e.what());
      }
      (f == "-ctk" || f == "--cache-type-k" ? o.type_k : o.type_v) = t;
    } else if (f == "--no-warmup") {
      o.warmup = false;
    } else if (f == "-r" || f == "--repetitions") {
      o.reps = a.number<int>(f, 1, 1000000);
    } else if (f == "-o" || f == "--output") {
      o.output = a.value(f);
      if (o.output != "md" && o.output != "json") throw UsageError("option -o: '" + o.output + "' is not md or json");
    } else {
      throw UsageError("unknown option '" + std::string(f) + "'");
    }
  }
  if (o.models.empty()) throw UsageError("no model given: pass -m MODEL");
  return o;
}

struct ModelInfo {
  std::uint64_t size = 0, n_params = 0;  // bytes and elements of all tensors
  std::string type;                      // e.g. "llama 1.1B Q4_K"
};

std::string cpu_info() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto p = line.find(':');
      if (p != std::string::npos) return line.substr(std::min(line.size(), p + 2));
    }
  }
  return "";
}

// Sizes from the GGUF tensor table (f: nullptr for other formats).
ModelInfo model_info(const tinfer::io::GgufFile* f, std::string_view architecture) {
  ModelInfo info;
  std::string dominant = "?";
  if (f != nullptr) {
    std::map<std::string, std::uint64_t> bytes_by_type;
    for (const auto& t : f->tensors()) {
      info.size += t.n_bytes;
      info.n_params += t.n_elements;
      bytes_by_type[std::string(tinfer::dtype_name(t.type))] += t.n_bytes;
    }
    std::uint64_t best = 0;
    for (const auto& [k, v] : bytes_by_type) {
      if (v > best) {
        best = v;
        dominant = k;
      }
    }
  }
  char size[32];
  const double p = static_cast<double>(info.n_params);
  if (p >= 1e9) std::snprintf(size, sizeof size, "%.1fB", p / 1e9);
  else std::snprintf(size, sizeof size, "%.0fM", p / 1e6);
  info.type = std::string(architecture) + " " + size + " " + dominant;
  return info;
}

struct Result {
  std::string model_filename;
  ModelInfo info;
  int threads = 0, n_prompt = 0, n_gen = 0, n_depth = 0;
  std::string test_time;
  std::vector<double> ns;  // per repetition
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}
double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}
std::vector<double> ts_of(const Result& r) {
  std::vector<double> ts;
  const int n = r.n_prompt + r.n_gen;
  for (double ns : r.ns) ts.push_back(1e9 * n / ns);
  return ts;
}

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double run_once(const tinfer::Model& m, tinfer::Session& s, const std::vector<std::int32_t>& tokens, bool batch, int depth,
                tinfer::ThreadPool* pool) {
  const auto t0 = std::chrono::steady_clock::now();
  if (batch) {
    m.forward_batch(s, tokens, depth, pool);
  } else {
    for (std::size_t i = 0; i < tokens.size(); ++i) m.forward(s, tokens[i], depth + static_cast<int>(i), pool);
  }
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Options& o) {
  std::vector<Result> results;
  const bool md = o.output == "md";
  if (md) {
    std::printf("| model                          |       size |     params | backend    | threads |            test |                  t/s |\n");
    std::printf("| ------------------------------ | ---------: | ---------: | ---------- | ------: | --------------: | -------------------: |\n");
    std::fflush(stdout);
  }
  std::mt19937 rng(42);
  for (const std::string& path : o.models) {
    // A GGUF file is opened once, for the model and its tensor table.
    std::shared_ptr<const tinfer::io::GgufFile> gguf;
    if (!std::filesystem::is_directory(path) && tinfer::detect_model_format(path) == tinfer::ModelFormat::Gguf) {
      gguf = std::make_shared<const tinfer::io::GgufFile>(path);
    }
    // The model gets the only reference to the file, so it may repack its weights in place.
    ModelInfo info = gguf ? model_info(gguf.get(), tinfer::gguf_architecture(*gguf)) : ModelInfo{};
    const auto model = gguf ? tinfer::load_model(std::move(gguf)) : tinfer::load_model(path);
    if (info.type.empty()) info = model_info(nullptr, model->architecture());
    std::string fname = path;
    // One session for every test of this model: the depth tokens stay in its cache.
    int max_n = 0, max_d = 0;
    for (int p : o.prompts) max_n = std::max(max_n, p);
    for (int g : o.gens) max_n = std::max(max_n, g);
    for (int d : o.depths) max_d = std::max(max_d, d);
    if (max_d + max_n > model->max_context()) {
      throw tinfer::InvalidArgument(tinfer::detail::str_cat("tests of up to ", max_n, " tokens at depth ", max_d,
                                                            " exceed the model's context of ", model->max_context()));
    }
    const auto session = model->new_session(tinfer::SessionOptions{.context = max_d + max_n, .type_k = o.type_k, .type_v = o.type_v});
    std::uniform_int_distribution<int> tok(0, model->vocab_size() - 1);
    std::vector<std::int32_t> depth_tokens(static_cast<std::size_t>(max_d));
    for (auto& v : depth_tokens) v = tok(rng);
    int depth_held = 0;  // the session holds depth_tokens[0, depth_held) at positions 0..
    // Depth tokens are computed with the most threads asked for (untimed either way).
    tinfer::ThreadPool depth_pool(*std::max_element(o.threads.begin(), o.threads.end()));
    for (int t : o.threads) {
      tinfer::ThreadPool pool(t);
      // Truncates the session to depth d, computing the depth tokens it lacks (untimed).
      auto to_depth = [&](int d) {
        if (d > depth_held) {
          session->truncate(depth_held);
          model->forward_batch(*session, std::span<const std::int32_t>(depth_tokens).subspan(static_cast<std::size_t>(depth_held),
                                                                                              static_cast<std::size_t>(d - depth_held)),
                               depth_held, &depth_pool);
        }
        session->truncate(d);
        depth_held = d;  // a test writes positions from d on
      };
      auto add_test = [&](int n_prompt, int n_gen, int d) {
        const int n = n_prompt + n_gen;
        std::vector<std::int32_t> tokens(static_cast<std::size_t>(n));
        for (auto& v : tokens) v = tok(rng);
        const bool batch = n_prompt > 0;
        if (o.warmup) {
          to_depth(d);
          if (batch) run_once(*model, *session, tokens, true, d, &pool);
          else run_once(*model, *session, {tokens[0]}, false, d, &pool);
        }
        Result r{fname, info, t, n_prompt, n_gen, d, now_iso(), {}};
        for (int i = 0; i < o.reps; ++i) {
          to_depth(d);
          r.ns.push_back(run_once(*model, *session, tokens, batch, d, &pool));
        }
        if (md) {
          const auto ts = ts_of(r);
          char test[48], size[32], params[32], tsb[64];
          std::snprintf(test, sizeof test, n_prompt > 0 ? "pp%d" : "tg%d", n_prompt > 0 ? n_prompt : n_gen);
          if (d > 0) std::snprintf(test + std::strlen(test), sizeof test - std::strlen(test), " @ d%d", d);
          std::snprintf(size, sizeof size, "%.2f MiB", static_cast<double>(info.size) / (1024.0 * 1024.0));
          const double p = static_cast<double>(info.n_params);
          if (p >= 1e9) std::snprintf(params, sizeof params, "%.2f B", p / 1e9);
          else std::snprintf(params, sizeof params, "%.2f M", p / 1e6);
          std::snprintf(tsb, sizeof tsb, "%.2f ± %.2f", mean(ts), stddev(ts));
          std::printf("| %-30s | %10s | %10s | %-10s | %7d | %15s | %20s |\n", info.type.c_str(), size, params, "CPU", t, test, tsb);
          std::fflush(stdout);
        }
        results.push_back(std::move(r));
      };
      for (int d : o.depths) {
        for (int p : o.prompts)
          if (p > 0) add_test(p, 0, d);
        for (int g : o.gens)
          if (g > 0) add_test(0, g, d);
      }
    }
  }
  if (!md) {
    nlohmann::json arr = nlohmann::json::array();
    const std::string cpu = cpu_info();
    for (const Result& r : results) {
      const auto ts = ts_of(r);
      nlohmann::json j;
      j["build_commit"] = "tinfer";
      j["build_number"] = 0;
      j["cpu_info"] = cpu;
      j["gpu_info"] = "";
      j["backends"] = "CPU";
      j["model_filename"] = r.model_filename;
      j["model_type"] = r.info.type;
      j["model_size"] = r.info.size;
      j["model_n_params"] = r.info.n_params;
      j["n_batch"] = std::max(r.n_prompt, 1);
      j["n_ubatch"] = std::max(r.n_prompt, 1);
      j["n_threads"] = r.threads;
      j["type_k"] = std::string(tinfer::kv_cache_type_name(o.type_k));
      j["type_v"] = std::string(tinfer::kv_cache_type_name(o.type_v));
      const char* lm = std::getenv("TINFER_LOAD");
      j["load_mode"] = lm != nullptr && std::string_view(lm) == "mmap" ? "mmap" : "none";
      j["n_prompt"] = r.n_prompt;
      j["n_gen"] = r.n_gen;
      j["n_depth"] = r.n_depth;
      j["test_time"] = r.test_time;
      j["avg_ns"] = static_cast<std::uint64_t>(mean(r.ns));
      j["stddev_ns"] = static_cast<std::uint64_t>(stddev(r.ns));
      j["avg_ts"] = mean(ts);
      j["stddev_ts"] = stddev(ts);
      j["samples_ns"] = r.ns;
      j["samples_ts"] = ts;
      arr.push_back(j);
    }
    std::printf("%s\n", arr.dump(2).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tinfer_examples::guarded_main("tinfer-bench", [&] { return run(parse(argc, argv)); });
}
