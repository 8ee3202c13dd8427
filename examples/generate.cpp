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
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <tinfer/tinfer.hpp>

#include "args.hpp"
#include "generate_args.hpp"

namespace {

constexpr const char* kUsage = R"(usage: tinfer-generate [-m MODEL] [options]

Generates text from a prompt and prints the prompt and its continuation to stdout; load time
and speeds go to stderr.

model and prompt:
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
  -n, --n-predict N       number of new tokens to generate (default: 256; -1: until the end
                          of text or, without context shift, a full context)
  -c, --ctx-size N        context size in tokens (default 0: the model's maximum)
  -t, --threads N         threads to use (default: all hardware threads)
  -ctk, --cache-type-k T  KV cache type of the keys: f32, f16 or q8_0 (default: f32)
  -ctv, --cache-type-v T  KV cache type of the values: f32, f16 or q8_0 (default: f32)

sampling (applied in llama.cpp's order: logit bias, penalties, top-k, typical, top-p, min-p,
temperature; with only --temp, --top-p and --seed, run.c's sampler, which reproduces
llama2.c's sampled text draw for draw):
  -s, --seed N            random seed, > 0; -1: from the clock (default)
      --temp T            temperature (default: 1.0); 0 picks the most likely token (greedy)
      --top-k N           keep the N most likely tokens (default: 0, off)
      --top-p P           nucleus sampling threshold in (0, 1) (default: 0.9); 1 disables it
      --min-p P           drop tokens below P times the top probability (default: 0, off)
      --typical P         locally typical sampling with mass P (default: 1, off)
      --repeat-penalty R  divide positive / multiply negative logits of recent tokens by R
                          (default: 1, off)
      --repeat-last-n N   tokens the penalties look back over (default: 64; 0: off, -1: the
                          context size)
      --presence-penalty P   subtract P from the logit of every recent token (default: 0)
      --frequency-penalty F  subtract F times its count from every recent token (default: 0)
  -l, --logit-bias T(+|-)B   add B to token T's logit, e.g. 15043+1 or 15043-inf (banned);
                          may be given several times

stopping:
  -r, --reverse-prompt S  stop when the text contains S (S and what follows are not printed);
                          may be given several times. In the conversation mode it ends a reply
      --ignore-eos        go on past the end-of-text token (for llama2.c checkpoints: BOS)
      --keep N            when the context is full, keep the first N tokens (-1: the whole
                          prompt; default 0), drop the oldest half of the rest and go on
      --no-context-shift  stop when the context is full instead

modes:
  -cnv, --conversation    chat: read a line from stdin, answer it, repeat until end of input,
  -i, --interactive       keeping the session (and the context) between turns. Each turn is fed
                          as "User: LINE\nAssistant:" and a reply ends at "\nUser:", -r, the end
                          of text or -n tokens. -p gives an optional opening text
  -np, --parallel N       generate N sequences from the prompt together (batched decode, seeds
                          SEED, SEED+1, ...) and print the total speed (default: 1)
  -md, --model-draft PATH speculative decoding with this smaller draft model (same vocabulary):
                          the output equals the model's own; prints the acceptance rate
      --draft N           tokens the draft model proposes per step (default: 5)
  -h, --help              show this help

examples:
  tinfer-generate -p "And it came to pass" -n 48 --temp 0.8 -s 2
  tinfer-generate -m stories260K.bin -z tok512.bin -p "Once upon a time" -n 200 --temp 0
  tinfer-generate -m model.gguf -p "Hello" --temp 0.7 --top-k 40 --min-p 0.05 -r "\n\n"
  printf 'Who was Moses?\n' | tinfer-generate -cnv -n 40
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
  // A folder opens as a stream that reads nothing: refuse it instead of generating from "".
  if (std::filesystem::is_directory(path)) throw tinfer::IoError(path + ": is a folder, not a prompt file");
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

void write_out(std::string_view s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

// How tokens become text for one kind of model file.
class Codec {
 public:
  virtual ~Codec() = default;
  /// `first`: the start of the sequence (with BOS where the model expects it).
  virtual std::vector<std::int32_t> encode(const std::string& text, bool first) const = 0;
  /// The prompt as it will appear in front of the continuation.
  virtual std::string prompt_text(const std::string& prompt, const std::vector<std::int32_t>& ids) const = 0;
  /// The bytes of `token` following `prev` (possibly part of a UTF-8 character).
  virtual std::string piece(std::int32_t prev, std::int32_t token) = 0;
  /// Whether the next piece starts the text (SentencePiece drops its leading space then).
  virtual void set_at_start(bool) {}
  virtual std::int32_t stop_token() const = 0;
};

// llama2.c checkpoints: run.c's tokenizer and printing, so the output is run.c's byte for byte.
class Llama2cCodec final : public Codec {
 public:
  explicit Llama2cCodec(tinfer::Llama2cTokenizer t) : t_(std::move(t)) {}
  std::vector<std::int32_t> encode(const std::string& text, bool first) const override { return t_.encode(text, first); }
  std::string prompt_text(const std::string&, const std::vector<std::int32_t>& ids) const override {
    std::string out;
    for (std::size_t i = 1; i < ids.size(); ++i) out += printable(t_.decode_piece(ids[i - 1], ids[i]));
    return out;
  }
  std::string piece(std::int32_t prev, std::int32_t token) override { return printable(t_.decode_piece(prev, token)); }
  std::int32_t stop_token() const override { return t_.bos_id(); }

 private:
  // run.c prints a piece unless it is a single byte that is neither printable nor whitespace.
  static std::string printable(std::string piece) {
    if (piece.size() == 1) {
      const auto b = static_cast<unsigned char>(piece[0]);
      if (!(std::isprint(b) || std::isspace(b))) return {};
    }
    return piece;
  }
  tinfer::Llama2cTokenizer t_;
};

// Everything else: the model's tokenizer (text is held back until it is complete UTF-8).
class TokenizerCodec final : public Codec {
 public:
  TokenizerCodec(std::unique_ptr<tinfer::Tokenizer> t, std::int32_t stop) : t_(std::move(t)), stop_(stop) {}
  std::vector<std::int32_t> encode(const std::string& text, bool first) const override {
    tinfer::EncodeOptions eo;
    if (!first) eo.add_bos = false;
    auto ids = t_->encode(text, eo);
    if (ids.empty() && first) {
      const std::int32_t start = t_->bos_id() >= 0 ? t_->bos_id() : t_->eos_id();
      if (start < 0) throw tinfer::InvalidArgument("the prompt is empty and the tokenizer has no BOS token to start from: pass -p");
      ids.push_back(start);
    }
    return ids;
  }
  std::string prompt_text(const std::string& prompt, const std::vector<std::int32_t>&) const override { return prompt; }
  std::string piece(std::int32_t, std::int32_t token) override {
    std::string out;
    t_->append_decoded(token, {}, at_start_, out);
    return out;
  }
  void set_at_start(bool v) override { at_start_ = v; }
  std::int32_t stop_token() const override { return stop_; }

 private:
  std::unique_ptr<tinfer::Tokenizer> t_;
  std::int32_t stop_;
  bool at_start_ = true;
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

// run.c's sampler when only --temp/--top-p are used (so its sampled stories are reproduced),
// else the llama.cpp-order chain.
class AnySampler {
 public:
  AnySampler(const Options& o, std::uint64_t seed, int context) {
    const bool plain = o.top_k == 0 && o.min_p == 0.0f && o.typical_p >= 1.0f && o.repeat_penalty == 1.0f &&
                       o.presence_penalty == 0.0f && o.frequency_penalty == 0.0f && o.logit_bias.empty();
    if (plain) {
      topp_.emplace(tinfer::TopPSamplerOptions{.temperature = o.temp, .top_p = o.top_p, .seed = seed});
      return;
    }
    tinfer::SamplingParams p;
    p.temperature = o.temp;
    p.top_k = o.top_k;
    p.top_p = o.top_p;
    p.min_p = o.min_p;
    p.typical_p = o.typical_p;
    p.penalties = {.last_n = o.repeat_last_n < 0 ? context : o.repeat_last_n,
                   .repeat = o.repeat_penalty,
                   .frequency = o.frequency_penalty,
                   .presence = o.presence_penalty};
    p.logit_bias = o.logit_bias;
    p.seed = seed;
    chain_.emplace(tinfer::make_sampler_chain(p));
  }
  std::int32_t sample(std::span<float> logits) { return topp_ ? topp_->sample(logits) : chain_->sample(logits); }
  void accept(std::int32_t t) {
    if (chain_) chain_->accept(t);
  }

 private:
  std::optional<tinfer::TopPSampler> topp_;
  std::optional<tinfer::SamplerChain> chain_;
};

// Token -> stdout through a TextStream (complete UTF-8, stop strings held back).
struct Printer {
  Codec& codec;
  tinfer::TextStream stream;
  std::string text;  // everything printed
  bool to_stdout = true;
  bool push(std::int32_t prev, std::int32_t token) {
    emit(stream.push(codec.piece(prev, token)));
    return !stream.stopped();
  }
  void finish() { emit(stream.finish()); }
  void emit(const std::string& s) {
    text += s;
    if (to_stdout) write_out(s);
  }
};

void check_token_ids(const Options& o, const tinfer::Model& model) {
  for (const auto& [id, bias] : o.logit_bias) {
    if (id >= model.vocab_size()) {
      throw tinfer_examples::UsageError(tinfer::detail::str_cat("option --logit-bias: token ", id, " is outside the vocabulary [0, ",
                                                                model.vocab_size(), ")"));
    }
  }
}

void report(const char* what, long n, double seconds) {
  std::fprintf(stderr, "%s: %ld tokens, %.1f ms, %.2f tokens/s\n", what, n, seconds * 1e3, seconds > 0 ? n / seconds : 0.0);
}

int run(const Options& o) {
  using Clock = std::chrono::steady_clock;
  const auto t_load = Clock::now();
  const std::unique_ptr<tinfer::Model> model = tinfer::load_model(o.model);
  const std::unique_ptr<Codec> codec = make_codec(o, *model);
  check_token_ids(o, *model);
  const tinfer::SessionOptions sopt{.context = o.ctx_size, .type_k = o.cache_type_k, .type_v = o.cache_type_v};
  const std::unique_ptr<tinfer::Session> session = model->new_session(sopt);
  std::unique_ptr<tinfer::Model> draft;
  std::unique_ptr<tinfer::Session> draft_session;
  if (!o.draft_model.empty()) {
    draft = tinfer::load_model(o.draft_model);
    if (draft->vocab_size() != model->vocab_size()) {
      throw tinfer::InvalidArgument(tinfer::detail::str_cat(o.draft_model, ": the draft model has ", draft->vocab_size(),
                                                            " tokens but the model ", model->vocab_size(),
                                                            ": speculative decoding needs the same vocabulary"));
    }
    draft_session = draft->new_session(tinfer::SessionOptions{
        .context = std::min(session->context(), draft->max_context()), .type_k = o.cache_type_k, .type_v = o.cache_type_v});
  }
  const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
  std::fprintf(stderr, "load: %.1f ms (%s, %s)\n", load_s * 1e3, std::string(model->architecture()).c_str(),
               std::string(tinfer::kernels::isa_name(tinfer::kernels::default_isa())).c_str());

  tinfer::ThreadPool pool(o.threads);
  const std::uint64_t seed = o.seed != 0 ? o.seed : static_cast<std::uint64_t>(std::time(nullptr)) | 1u;
  const int context = session->context();
  tinfer::GenerateOptions gopt;
  gopt.max_new_tokens = o.n_predict;
  gopt.stop_token = o.ignore_eos ? -1 : codec->stop_token();
  gopt.stop_strings = o.reverse_prompts;
  gopt.context_shift = o.context_shift;
  gopt.n_keep = o.keep;

  if (o.conversation) {
    // Chat: the session (and everything said so far) stays between turns.
    AnySampler sampler(o, seed, context);
    tinfer::SequenceState seq;
    gopt.stop_strings.insert(gopt.stop_strings.begin(), "\nUser:");
    if (!o.prompt.empty()) {
      seq.tokens = codec->encode(o.prompt, true);
      write_out(o.prompt + "\n");
    }
    bool user_tag_given = false;  // the model itself wrote "\nUser:" last turn
    std::string line;
    long total = 0;
    double gen_s = 0;
    while (true) {
      std::fputs("> ", stderr);
      std::fflush(stderr);
      if (!std::getline(std::cin, line)) break;
      if (line.empty()) continue;
      const std::string turn = (user_tag_given ? " " : (seq.tokens.empty() ? "User: " : "\nUser: ")) + line + "\nAssistant:";
      const auto ids = codec->encode(turn, seq.tokens.empty());
      seq.tokens.insert(seq.tokens.end(), ids.begin(), ids.end());
      codec->set_at_start(false);
      struct Decoder {
        Codec& c;
        std::string push(std::int32_t p, std::int32_t t) { return c.piece(p, t); }
        std::string finish() { return {}; }
      } dec{*codec};
      const auto r = tinfer::generate_text(*model, *session, seq, sampler, gopt, dec,
                                           [&](std::string_view s) {
                                             write_out(s);
                                             return true;
                                           },
                                           &pool);
      write_out("\n");
      user_tag_given = r.stop_string == "\nUser:";
      total += static_cast<long>(r.tokens.size());
      gen_s += r.generate_seconds;
      if (r.context_full) {
        std::fprintf(stderr, "note: the context of %d tokens is full (-c; context shift is off)\n", context);
        break;
      }
    }
    std::fputs("\n", stderr);
    report("generation", total, gen_s);
    return 0;
  }

  const std::vector<std::int32_t> prompt = codec->encode(o.prompt, true);
  write_out(codec->prompt_text(o.prompt, prompt));
  codec->set_at_start(o.prompt.empty());

  if (o.parallel > 1) {
    // Batched decode: one session and sampler per sequence, one shared model.
    const int n = o.parallel;
    std::vector<std::unique_ptr<tinfer::Session>> sessions;
    std::vector<AnySampler> samplers;
    std::vector<std::unique_ptr<Codec>> codecs;
    std::vector<Printer> printers;
    sessions.push_back(nullptr);
    for (int i = 0; i < n; ++i) {
      if (i > 0) sessions.push_back(model->new_session(sopt));
      samplers.emplace_back(o, seed + static_cast<std::uint64_t>(i), context);
      codecs.push_back(make_codec(o, *model));
      codecs.back()->set_at_start(o.prompt.empty());
    }
    for (int i = 0; i < n; ++i) printers.push_back(Printer{*codecs[static_cast<std::size_t>(i)], tinfer::TextStream(o.reverse_prompts), {}, false});
    std::vector<tinfer::BatchSequence<tinfer::Session, AnySampler>> batch(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i].session = i == 0 ? session.get() : sessions[i].get();
      batch[i].sampler = &samplers[i];
      batch[i].seq.tokens = prompt;
      batch[i].opt = gopt;
    }
    const auto t0 = Clock::now();
    const bool multi = tinfer::generate_batch(*model, std::span(batch), [&](std::size_t i, std::int32_t prev, std::int32_t t) {
      return printers[i].push(prev, t);
    }, &pool);
    const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();
    long total = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      printers[i].finish();
      total += static_cast<long>(batch[i].result.tokens.size());
      if (i > 0) write_out("\n" + codec->prompt_text(o.prompt, prompt));
      write_out(printers[i].text);
      write_out("\n");
    }
    std::fprintf(stderr, "parallel: %d sequences, %s\n", n, multi ? "one batched forward per step" : "one forward per sequence and step");
    report("total (prompts + generation)", total, total_s);
    return 0;
  }

  AnySampler sampler(o, seed, context);
  Printer out{*codec, tinfer::TextStream(o.reverse_prompts), {}, true};
  tinfer::GenerateResult result;
  tinfer::SpeculativeStats spec;
  if (draft) {
    gopt.stop_strings.clear();  // handled by the printer
    result = tinfer::generate_speculative(*model, *session, *draft, *draft_session, std::span(prompt), sampler, gopt, o.draft,
                                          [&](std::int32_t prev, std::int32_t t) { return out.push(prev, t); }, &pool, &spec);
    if (!out.stream.stopped()) out.finish();
  } else {
    struct Decoder {
      Codec& c;
      std::string push(std::int32_t p, std::int32_t t) { return c.piece(p, t); }
      std::string finish() { return {}; }
    } dec{*codec};
    tinfer::SequenceState seq{prompt, 0};
    result = tinfer::generate_text(*model, *session, seq, sampler, gopt, dec, [&](std::string_view s) {
      write_out(s);
      return true;
    }, &pool);
  }
  write_out("\n");

  const auto n_gen = static_cast<long>(result.tokens.size());
  report("prompt", result.n_prompt, result.prompt_seconds);
  std::fprintf(stderr, "generation: %ld tokens, %.1f ms, %.2f tokens/s (%d threads)\n", n_gen, result.generate_seconds * 1e3,
               result.generate_seconds > 0 ? static_cast<double>(n_gen) / result.generate_seconds : 0.0, pool.size());
  if (draft) {
    std::fprintf(stderr, "speculative: %ld drafted, %ld accepted (%.1f%%), %ld target passes, %.2f tokens per pass\n", spec.drafted,
                 spec.accepted, 100.0 * spec.acceptance_rate(), spec.target_passes,
                 spec.target_passes > 0 ? static_cast<double>(n_gen) / static_cast<double>(spec.target_passes) : 0.0);
  }
  if (result.context_shifts > 0) {
    std::fprintf(stderr, "note: the context was shifted %d times (%s; %d tokens fed again)\n", result.context_shifts,
                 model->can_context_shift() ? "cache moved" : "cache rebuilt", result.recomputed_tokens);
  }
  if (result.context_full) {
    std::fprintf(stderr, "note: stopped after %ld tokens because the context of %d tokens is full (-c)\n", n_gen, context);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tinfer_examples::guarded_main("tinfer-generate", [&] { return run(parse(argc, argv)); });
}
