// tinfer-generate: generate text with a language model.
//
// stdout carries only the text (the prompt followed by the continuation, as llama2.c's run.c
// prints it); load time and speeds go to stderr.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include <tinfer/tinfer.hpp>

#include "args.hpp"

namespace {

constexpr const char* kUsage = R"(usage: tinfer-generate -m MODEL [options]

Generates text from a prompt and prints the prompt and its continuation to stdout; load time
and speeds go to stderr.

options:
  -m, --model PATH        model file: a llama2.c checkpoint (e.g. stories260K.bin)
  -z, --tokenizer PATH    tokenizer file (llama2.c tokenizer.bin); default: tokenizer.bin
                          in the model's folder
  -p, --prompt TEXT       the prompt (default: none, generation starts from BOS)
  -f, --file PATH         read the prompt from a file
  -n, --n-predict N       number of new tokens to generate (default: 256); generation also
                          ends when the model produces BOS, as in llama2.c
  -c, --ctx-size N        context size in tokens (default: the model's maximum)
  -t, --threads N         threads to use (default: all hardware threads)
  -s, --seed N            random seed, > 0 (default: the current time)
      --temp T            temperature (default: 1.0); 0 picks the most likely token (greedy)
      --top-p P           nucleus sampling threshold in (0, 1) (default: 0.9); 1 disables it
  -h, --help              show this help

example:
  tinfer-generate -m stories260K.bin -z tok512.bin -p "Once upon a time" -n 200 --temp 0
)";

struct Options {
  std::string model, tokenizer, prompt;
  int n_predict = 256;
  int ctx_size = 0;
  int threads = 0;
  std::uint64_t seed = 0;
  float temp = 1.0f;
  float top_p = 0.9f;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw tinfer::IoError(path + ": cannot open prompt file");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Options parse(int argc, char** argv) {
  using tinfer_examples::UsageError;
  tinfer_examples::Args a(argc, argv);
  Options o;
  bool have_prompt = false;
  while (!a.done()) {
    const std::string_view f = a.next_flag();
    if (f == "-h" || f == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (f == "-m" || f == "--model") {
      o.model = a.value(f);
    } else if (f == "-z" || f == "--tokenizer") {
      o.tokenizer = a.value(f);
    } else if (f == "-p" || f == "--prompt") {
      if (have_prompt) throw UsageError("give the prompt once, with -p or -f");
      o.prompt = a.value(f);
      have_prompt = true;
    } else if (f == "-f" || f == "--file") {
      if (have_prompt) throw UsageError("give the prompt once, with -p or -f");
      o.prompt = read_file(std::string(a.value(f)));
      have_prompt = true;
    } else if (f == "-n" || f == "--n-predict") {
      o.n_predict = a.number<int>(f, 0, 1 << 24);
    } else if (f == "-c" || f == "--ctx-size") {
      o.ctx_size = a.number<int>(f, 1, 1 << 24);
    } else if (f == "-t" || f == "--threads") {
      o.threads = a.number<int>(f, 1, tinfer::ThreadPool::kMaxThreads);
    } else if (f == "-s" || f == "--seed") {
      o.seed = a.number<std::uint64_t>(f, 1, UINT64_MAX);
    } else if (f == "--temp") {
      o.temp = a.number<float>(f, 0.0f, 1e6f);
    } else if (f == "--top-p") {
      o.top_p = a.number<float>(f, 0.0f, 1.0f);
    } else {
      throw UsageError("unknown option '" + std::string(f) + "'");
    }
  }
  if (o.model.empty()) throw UsageError("no model given: pass -m MODEL");
  return o;
}

// run.c prints a piece unless it is a single byte that is neither printable nor whitespace
// (raw byte tokens such as control characters would garble the terminal).
void print_piece(const std::string& piece) {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    const auto b = static_cast<unsigned char>(piece[0]);
    if (!(std::isprint(b) || std::isspace(b))) return;
  }
  std::fwrite(piece.data(), 1, piece.size(), stdout);
}

int run(const Options& o) {
  using Clock = std::chrono::steady_clock;
  const auto t_load = Clock::now();
  const tinfer::LlamaModel model = tinfer::LlamaModel::load_llama2c(o.model);
  std::string tok_path = o.tokenizer;
  if (tok_path.empty()) {
    tok_path = (std::filesystem::path(o.model).parent_path() / "tokenizer.bin").string();
    if (!std::filesystem::exists(tok_path)) {
      throw tinfer::IoError(o.model + ": no tokenizer given and no tokenizer.bin beside the model: pass -z TOKENIZER");
    }
  }
  const auto tokenizer = tinfer::Llama2cTokenizer::load(tok_path, model.config().vocab_size);
  tinfer::LlamaSession session(model, o.ctx_size);
  const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();

  const std::vector<std::int32_t> prompt = tokenizer.encode(o.prompt, /*add_bos=*/true);
  tinfer::ThreadPool pool(o.threads);
  const std::uint64_t seed = o.seed != 0 ? o.seed : static_cast<std::uint64_t>(std::time(nullptr));
  tinfer::TopPSampler sampler({.temperature = o.temp, .top_p = o.top_p, .seed = seed});

  for (std::size_t i = 1; i < prompt.size(); ++i) print_piece(tokenizer.decode_piece(prompt[i - 1], prompt[i]));
  std::fflush(stdout);
  const auto result = tinfer::generate(
      model, session, prompt, sampler, {.max_new_tokens = o.n_predict, .stop_token = tokenizer.bos_id()},
      [&](std::int32_t prev, std::int32_t token) {
        print_piece(tokenizer.decode_piece(prev, token));
        std::fflush(stdout);
        return true;
      },
      &pool);
  std::fputs("\n", stdout);
  std::fflush(stdout);

  const auto n_gen = result.tokens.size();
  std::fprintf(stderr, "load: %.1f ms\n", load_s * 1e3);
  std::fprintf(stderr, "prompt: %d tokens, %.1f ms, %.2f tokens/s\n", result.n_prompt, result.prompt_seconds * 1e3,
               result.prompt_seconds > 0 ? result.n_prompt / result.prompt_seconds : 0.0);
  std::fprintf(stderr, "generation: %zu tokens, %.1f ms, %.2f tokens/s (%d threads)\n", n_gen,
               result.generate_seconds * 1e3,
               result.generate_seconds > 0 ? static_cast<double>(n_gen) / result.generate_seconds : 0.0, pool.size());
  if (result.context_full) {
    std::fprintf(stderr, "note: stopped after %zu tokens because the context of %d tokens is full (-c)\n", n_gen,
                 session.context());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const tinfer_examples::UsageError& e) {
    std::fprintf(stderr, "tinfer-generate: %s\nrun 'tinfer-generate --help' for the options\n", e.what());
    return 2;
  } catch (const tinfer::Error& e) {
    std::fprintf(stderr, "tinfer-generate: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tinfer-generate: unexpected error: %s\n", e.what());
    return 1;
  }
}
