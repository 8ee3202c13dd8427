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
#include <memory>
#include <thread>
#include <vector>

#include <tinfer/tinfer.hpp>

#include "args.hpp"
#include "generate_args.hpp"

namespace {

constexpr const char* kUsage = R"(usage: tinfer-generate -m MODEL [options]

Generates text from a prompt and prints the prompt and its continuation to stdout; load time
and speeds go to stderr.

options:
  -m, --model PATH        model: a GGUF file (llama or gpt2 architecture), a Hugging Face
                          folder (config.json + model.safetensors), or a llama2.c checkpoint.
                          Default: the bundled demo model (a small GPT-2 trained on the King
                          James Bible, examples/demo-model/tinfer-demo-kjv.gguf)
  -z, --tokenizer PATH    tokenizer, overriding the model's own: tokenizer.json, a folder,
                          tokenizer.model, llama2.c tokenizer.bin, encoder.json, or a GGUF
                          file. Default: the one in the GGUF file or the Hugging Face folder;
                          for llama2.c checkpoints, tokenizer.bin in the model's folder
  -p, --prompt TEXT       the prompt (default: none, generation starts from BOS)
  -f, --file PATH         read the prompt from a file
  -n, --n-predict N       number of new tokens to generate (default: 256); generation also
                          ends at the end-of-text token (for llama2.c checkpoints: when the
                          model produces BOS, as run.c does)
  -c, --ctx-size N        context size in tokens (default: the model's maximum)
  -t, --threads N         threads to use (default: all hardware threads)
  -s, --seed N            random seed, > 0 (default: the current time)
      --temp T            temperature (default: 1.0); 0 picks the most likely token (greedy)
      --top-p P           nucleus sampling threshold in (0, 1) (default: 0.9); 1 disables it
  -h, --help              show this help

example:
  tinfer-generate -m stories260K.bin -z tok512.bin -p "Once upon a time" -n 200 --temp 0
)";

using Options = tinfer_examples::GenerateArgs;

// The demo model: in the source tree (build tree runs) or installed beside the program
// (<prefix>/bin/../share/tinfer/).
std::string bundled_model() {
  namespace fs = std::filesystem;
  const fs::path in_source = TINFER_DEMO_MODEL;
  if (fs::exists(in_source)) return in_source.string();
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path().parent_path() / "share" / "tinfer" / in_source.filename();
    if (fs::exists(installed)) return installed.string();
  }
  throw tinfer_examples::UsageError("no model given and the bundled demo model (" + in_source.string() + ") is missing: pass -m MODEL");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw tinfer::IoError(path + ": cannot open prompt file");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Options parse(int argc, char** argv) {
  Options o = tinfer_examples::parse_generate_args(std::vector<std::string>(argv + 1, argv + argc));
  if (o.help) {
    std::fputs(kUsage, stdout);
    std::exit(0);
  }
  if (!o.prompt_file.empty()) o.prompt = read_file(o.prompt_file);
  if (o.model.empty()) o.model = bundled_model();
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

// How tokens become text for one kind of model file.
class Codec {
 public:
  virtual ~Codec() = default;
  virtual std::vector<std::int32_t> encode(const std::string& prompt) const = 0;
  /// Prints the prompt as it will appear in front of the continuation.
  virtual void print_prompt(const std::string& prompt, const std::vector<std::int32_t>& ids) = 0;
  virtual void print_token(std::int32_t prev, std::int32_t token) = 0;
  virtual void finish() {}
  virtual std::int32_t stop_token() const = 0;
};

// llama2.c checkpoints: run.c's tokenizer and printing, so the output is run.c's byte for byte.
class Llama2cCodec final : public Codec {
 public:
  explicit Llama2cCodec(tinfer::Llama2cTokenizer t) : t_(std::move(t)) {}
  std::vector<std::int32_t> encode(const std::string& prompt) const override { return t_.encode(prompt, true); }
  void print_prompt(const std::string&, const std::vector<std::int32_t>& ids) override {
    for (std::size_t i = 1; i < ids.size(); ++i) print_piece(t_.decode_piece(ids[i - 1], ids[i]));
  }
  void print_token(std::int32_t prev, std::int32_t token) override { print_piece(t_.decode_piece(prev, token)); }
  std::int32_t stop_token() const override { return t_.bos_id(); }

 private:
  tinfer::Llama2cTokenizer t_;
};

// Everything else: the model's tokenizer, streamed so that no partial UTF-8 is ever printed.
class TokenizerCodec final : public Codec {
 public:
  TokenizerCodec(std::unique_ptr<tinfer::Tokenizer> t, std::int32_t stop) : t_(std::move(t)), stream_(*t_), stop_(stop) {}
  std::vector<std::int32_t> encode(const std::string& prompt) const override {
    auto ids = t_->encode(prompt);
    if (ids.empty()) {
      const std::int32_t start = t_->bos_id() >= 0 ? t_->bos_id() : t_->eos_id();
      if (start < 0) throw tinfer::InvalidArgument("the prompt is empty and the tokenizer has no BOS token to start from: pass -p");
      ids.push_back(start);
    }
    return ids;
  }
  void print_prompt(const std::string& prompt, const std::vector<std::int32_t>&) override {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  }
  void print_token(std::int32_t, std::int32_t token) override {
    const std::string text = stream_.push(token);
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  void finish() override {
    const std::string text = stream_.finish();
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  std::int32_t stop_token() const override { return stop_; }

 private:
  std::unique_ptr<tinfer::Tokenizer> t_;
  tinfer::StreamDecoder stream_;
  std::int32_t stop_;
};

std::unique_ptr<Codec> make_codec(const Options& o, const tinfer::Model& model) {
  namespace fs = std::filesystem;
  const bool llama2c = model.format() == tinfer::ModelFormat::Llama2c;
  std::string tok_path = o.tokenizer;
  if (llama2c) {
    if (tok_path.empty()) {
      tok_path = (fs::path(o.model).parent_path() / "tokenizer.bin").string();
      if (!fs::exists(tok_path)) {
        throw tinfer::IoError(o.model + ": no tokenizer given and no tokenizer.bin beside the model: pass -z TOKENIZER");
      }
    }
    if (fs::path(tok_path).extension() == ".bin") {
      return std::make_unique<Llama2cCodec>(tinfer::Llama2cTokenizer::load(tok_path, model.vocab_size()));
    }
  }
  std::unique_ptr<tinfer::Tokenizer> tok =
      tok_path.empty() ? tinfer::load_model_tokenizer(o.model, model) : tinfer::load_tokenizer(tok_path);
  if (tok->vocab_size() > model.vocab_size()) {
    throw tinfer::InvalidArgument(tinfer::detail::str_cat("the tokenizer has ", tok->vocab_size(), " tokens but the model only ",
                                                          model.vocab_size(), ": they do not belong together"));
  }
  const std::int32_t stop = tok->eos_id() >= 0 ? tok->eos_id() : model.eos_id();
  return std::make_unique<TokenizerCodec>(std::move(tok), stop);
}

int run(const Options& o) {
  using Clock = std::chrono::steady_clock;
  const auto t_load = Clock::now();
  const std::unique_ptr<tinfer::Model> model = tinfer::load_model(o.model);
  const std::unique_ptr<Codec> codec = make_codec(o, *model);
  const std::unique_ptr<tinfer::Session> session = model->new_session(o.ctx_size);
  const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();

  const std::vector<std::int32_t> prompt = codec->encode(o.prompt);
  tinfer::ThreadPool pool(o.threads);
  const std::uint64_t seed = o.seed != 0 ? o.seed : static_cast<std::uint64_t>(std::time(nullptr));
  tinfer::TopPSampler sampler({.temperature = o.temp, .top_p = o.top_p, .seed = seed});

  codec->print_prompt(o.prompt, prompt);
  std::fflush(stdout);
  const auto result = tinfer::generate(
      *model, *session, prompt, sampler, {.max_new_tokens = o.n_predict, .stop_token = codec->stop_token()},
      [&](std::int32_t prev, std::int32_t token) {
        codec->print_token(prev, token);
        std::fflush(stdout);
        return true;
      },
      &pool);
  codec->finish();
  std::fputs("\n", stdout);
  std::fflush(stdout);

  const auto n_gen = result.tokens.size();
  std::fprintf(stderr, "load: %.1f ms (%s, %s)\n", load_s * 1e3, std::string(model->architecture()).c_str(),
               std::string(tinfer::kernels::isa_name(tinfer::kernels::default_isa())).c_str());
  std::fprintf(stderr, "prompt: %d tokens, %.1f ms, %.2f tokens/s\n", result.n_prompt, result.prompt_seconds * 1e3,
               result.prompt_seconds > 0 ? result.n_prompt / result.prompt_seconds : 0.0);
  std::fprintf(stderr, "generation: %zu tokens, %.1f ms, %.2f tokens/s (%d threads)\n", n_gen,
               result.generate_seconds * 1e3,
               result.generate_seconds > 0 ? static_cast<double>(n_gen) / result.generate_seconds : 0.0, pool.size());
  if (result.context_full) {
    std::fprintf(stderr, "note: stopped after %zu tokens because the context of %d tokens is full (-c)\n", n_gen,
                 session->context());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tinfer_examples::guarded_main("tinfer-generate", [&] { return run(parse(argc, argv)); });
}
