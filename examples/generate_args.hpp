// tinfer-generate's command line, parsed without side effects: parse_generate_args() does no
// I/O and never exits, so tests and a fuzzer can call it on any input. It throws
// tinfer_examples::UsageError for every bad command line (unknown flag, missing value, a number
// that does not parse or is out of range) and nothing else.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "args.hpp"
#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/core/thread_pool.hpp"

namespace tinfer_examples {

struct GenerateArgs {
  bool help = false;                 // -h/--help: print the usage and exit 0
  std::string model;                 // -m; empty: the bundled demo model
  std::string tokenizer;             // -z; empty: the model's own
  std::string prompt;                // -p
  std::string prompt_file;           // -f (read by the program, not here)
  int n_predict = 256;               // -n; -1: no limit (until EOS, a stop string or the context)
  int ctx_size = 0;                  // -c; 0: the model's maximum
  int threads = 0;                   // -t; 0: all hardware threads
  std::uint64_t seed = 0;            // -s; 0: from the clock
  float temp = 1.0f;                 // --temp; 0: greedy
  int top_k = 0;                     // --top-k; 0: off
  float top_p = 0.9f;                // --top-p; 1: off
  float min_p = 0.0f;                // --min-p; 0: off
  float typical_p = 1.0f;            // --typical; 1: off
  float repeat_penalty = 1.0f;       // --repeat-penalty; 1: off
  int repeat_last_n = 64;            // --repeat-last-n; 0: off, -1: the context size
  float presence_penalty = 0.0f;     // --presence-penalty
  float frequency_penalty = 0.0f;    // --frequency-penalty
  std::vector<std::pair<std::int32_t, float>> logit_bias;  // --logit-bias TOKEN(+|-)BIAS
  std::vector<std::string> reverse_prompts;                 // -r/--reverse-prompt (stop strings)
  bool ignore_eos = false;           // --ignore-eos
  tinfer::KVCacheType cache_type_k = tinfer::KVCacheType::F32;  // -ctk
  tinfer::KVCacheType cache_type_v = tinfer::KVCacheType::F32;  // -ctv
  int keep = 0;                      // --keep; -1: the whole prompt
  bool context_shift = true;         // --no-context-shift turns it off
  bool conversation = false;         // -cnv/--conversation, -i/--interactive
  int parallel = 1;                  // -np/--parallel: sequences generated together
  std::string draft_model;           // -md/--model-draft
  int draft = 5;                     // --draft: tokens drafted per step
};

/// Largest values accepted; beyond them a number is a typo, not a request.
inline constexpr int kMaxGenerateTokens = 1 << 24;  // -n, -c, --keep, --repeat-last-n
inline constexpr int kMaxParallel = 256;
inline constexpr int kMaxDraft = 64;

namespace generate_args_detail {

class Cursor {
 public:
  explicit Cursor(const std::vector<std::string>& a) : a_(a) {}
  bool done() const { return i_ >= a_.size(); }
  const std::string& next() { return a_[i_++]; }
  const std::string& value(std::string_view flag) {
    if (done()) throw UsageError("option " + std::string(flag) + " needs a value");
    return a_[i_++];
  }

 private:
  const std::vector<std::string>& a_;
  std::size_t i_ = 0;
};

template <class T>
T parse_number(std::string_view flag, std::string_view s) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
    throw UsageError("option " + std::string(flag) + ": '" + std::string(s) + "' is not a valid number");
  }
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v)) throw UsageError("option " + std::string(flag) + ": '" + std::string(s) + "' is not a finite number");
  }
  return v;
}

template <class T>
std::string show(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    std::string s = std::to_string(v);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  } else {
    return std::to_string(v);
  }
}

template <class T>
T number(Cursor& c, std::string_view flag, T lo, T hi, std::string_view what = {}) {
  const std::string& s = c.value(flag);
  const T v = parse_number<T>(flag, s);
  if (v < lo || v > hi) {
    std::string msg = "option " + std::string(flag) + ": " + s + " is outside [" + show(lo) + ", " + show(hi) + "]";
    if (!what.empty()) msg += " (" + std::string(what) + ")";
    throw UsageError(msg);
  }
  return v;
}

// TOKEN(+|-)BIAS, e.g. 15043+1.5, 15043-inf (bans the token).
inline std::pair<std::int32_t, float> parse_logit_bias(std::string_view flag, std::string_view s) {
  const auto sign = s.find_first_of("+-", 1);  // a leading '-' would be a negative token id
  const auto bad = [&](const std::string& why) {
    return UsageError("option " + std::string(flag) + ": '" + std::string(s) + "' " + why +
                      " (expected TOKEN+BIAS or TOKEN-BIAS, e.g. 15043+1 or 15043-inf)");
  };
  if (sign == std::string_view::npos) throw bad("has no + or - between token and bias");
  const std::string_view tok = s.substr(0, sign), bias = s.substr(sign + 1);
  std::int32_t id = 0;
  const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), id);
  if (ec != std::errc() || end != tok.data() + tok.size() || tok.empty() || id < 0) throw bad("has no valid token id");
  float b = 0;
  if (bias == "inf") {
    b = std::numeric_limits<float>::infinity();
  } else {
    const auto [e2, ec2] = std::from_chars(bias.data(), bias.data() + bias.size(), b);
    if (ec2 != std::errc() || e2 != bias.data() + bias.size() || bias.empty() || !std::isfinite(b) || b < 0) {
      throw bad("has no valid bias");
    }
  }
  if (s[sign] == '-') b = -b;
  if (b == std::numeric_limits<float>::infinity()) throw bad("asks for +inf (only -inf, which bans a token, is allowed)");
  return {id, b};
}

inline tinfer::KVCacheType cache_type(std::string_view flag, std::string_view s) {
  try {
    return tinfer::parse_kv_cache_type(s);
  } catch (const tinfer::Error& e) {
    throw UsageError("option " + std::string(flag) + ": " + e.what());
  }
}

}  // namespace generate_args_detail

/// Parses tinfer-generate's arguments (without the program name). Pure: no I/O, no exit.
/// Throws UsageError naming the flag for anything invalid.
inline GenerateArgs parse_generate_args(const std::vector<std::string>& args) {
  using namespace generate_args_detail;
  Cursor a(args);
  GenerateArgs o;
  bool have_prompt = false;
  auto set_prompt = [&]() {
    if (have_prompt) throw UsageError("give the prompt once, with -p or -f");
    have_prompt = true;
  };
  while (!a.done()) {
    const std::string& f = a.next();
    if (f == "-h" || f == "--help") {
      o.help = true;  // the rest of the line does not matter
      return o;
    } else if (f == "-m" || f == "--model") {
      o.model = a.value(f);
      if (o.model.empty()) throw UsageError("option " + f + ": the model path is empty");
    } else if (f == "-z" || f == "--tokenizer") {
      o.tokenizer = a.value(f);
      if (o.tokenizer.empty()) throw UsageError("option " + f + ": the tokenizer path is empty");
    } else if (f == "-p" || f == "--prompt") {
      set_prompt();
      o.prompt = a.value(f);
    } else if (f == "-f" || f == "--file") {
      set_prompt();
      o.prompt_file = a.value(f);
      if (o.prompt_file.empty()) throw UsageError("option " + f + ": the prompt file path is empty");
    } else if (f == "-n" || f == "--n-predict") {
      o.n_predict = number<int>(a, f, -1, kMaxGenerateTokens, "-1: until end of text or a full context");
    } else if (f == "-c" || f == "--ctx-size") {
      o.ctx_size = number<int>(a, f, 0, kMaxGenerateTokens, "0: the model's maximum");
    } else if (f == "-t" || f == "--threads") {
      o.threads = number<int>(a, f, 1, tinfer::ThreadPool::kMaxThreads);
    } else if (f == "-s" || f == "--seed") {
      const std::string& s = a.value(f);
      if (s == "-1") {
        o.seed = 0;  // llama.cpp's "random seed"
      } else {
        o.seed = parse_number<std::uint64_t>(f, s);
        if (o.seed == 0) throw UsageError("option " + f + ": the seed must be > 0 (or -1 for a random one)");
      }
    } else if (f == "--temp") {
      o.temp = number<float>(a, f, 0.0f, 1e6f, "0: greedy");
    } else if (f == "--top-k") {
      o.top_k = number<int>(a, f, 0, std::numeric_limits<std::int32_t>::max(), "0: off");
    } else if (f == "--top-p") {
      o.top_p = number<float>(a, f, 0.0f, 1.0f, "1: off");
    } else if (f == "--min-p") {
      o.min_p = number<float>(a, f, 0.0f, 1.0f, "0: off");
    } else if (f == "--typical") {
      o.typical_p = number<float>(a, f, 0.0f, 1.0f, "1: off");
    } else if (f == "--repeat-penalty") {
      o.repeat_penalty = number<float>(a, f, 0.0f, 1e6f, "1: off");
      if (o.repeat_penalty == 0.0f) throw UsageError("option " + f + ": the penalty divides logits and must be > 0 (1: off)");
    } else if (f == "--repeat-last-n") {
      o.repeat_last_n = number<int>(a, f, -1, kMaxGenerateTokens, "0: off, -1: the context size");
    } else if (f == "--presence-penalty") {
      o.presence_penalty = number<float>(a, f, -1e6f, 1e6f);
    } else if (f == "--frequency-penalty") {
      o.frequency_penalty = number<float>(a, f, -1e6f, 1e6f);
    } else if (f == "--logit-bias" || f == "-l") {
      o.logit_bias.push_back(parse_logit_bias(f, a.value(f)));
    } else if (f == "-r" || f == "--reverse-prompt") {
      o.reverse_prompts.push_back(a.value(f));
      if (o.reverse_prompts.back().empty()) throw UsageError("option " + f + ": the stop string is empty");
    } else if (f == "--ignore-eos") {
      o.ignore_eos = true;
    } else if (f == "-ctk" || f == "--cache-type-k") {
      o.cache_type_k = cache_type(f, a.value(f));
    } else if (f == "-ctv" || f == "--cache-type-v") {
      o.cache_type_v = cache_type(f, a.value(f));
    } else if (f == "--keep") {
      o.keep = number<int>(a, f, -1, kMaxGenerateTokens, "-1: the whole prompt");
    } else if (f == "--no-context-shift") {
      o.context_shift = false;
    } else if (f == "--context-shift") {
      o.context_shift = true;
    } else if (f == "-cnv" || f == "--conversation" || f == "-i" || f == "--interactive") {
      o.conversation = true;
    } else if (f == "-np" || f == "--parallel") {
      o.parallel = number<int>(a, f, 1, kMaxParallel);
    } else if (f == "-md" || f == "--model-draft") {
      o.draft_model = a.value(f);
      if (o.draft_model.empty()) throw UsageError("option " + f + ": the draft model path is empty");
    } else if (f == "--draft" || f == "--draft-max") {
      o.draft = number<int>(a, f, 1, kMaxDraft);
    } else {
      throw UsageError("unknown option '" + f + "'");
    }
  }
  if (o.ctx_size != 0 && o.keep > o.ctx_size) {
    throw UsageError("option --keep: " + std::to_string(o.keep) + " tokens cannot be kept in a context of " +
                     std::to_string(o.ctx_size));
  }
  if (o.parallel > 1 && o.conversation) throw UsageError("-np/--parallel cannot be combined with the conversation mode");
  if (!o.draft_model.empty() && o.conversation) throw UsageError("-md/--model-draft cannot be combined with the conversation mode");
  if (!o.draft_model.empty() && o.parallel > 1) throw UsageError("-md/--model-draft cannot be combined with -np/--parallel");
  return o;
}

}  // namespace tinfer_examples
