// tinfer-generate's flag parser (examples/generate_args.hpp): values land in the right fields,
// and every bad command line is a UsageError naming the flag (never an exit or another error).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "../../examples/generate_args.hpp"

namespace {

using tinfer_examples::GenerateArgs;
using tinfer_examples::parse_generate_args;
using tinfer_examples::UsageError;

GenerateArgs parse(std::vector<std::string> a) { return parse_generate_args(a); }

std::string error_of(std::vector<std::string> a) {
  try {
    parse_generate_args(a);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(GenerateArgs, DefaultsAndValues) {
  const GenerateArgs d = parse({});
  EXPECT_EQ(d.n_predict, 256);
  EXPECT_EQ(d.temp, 1.0f);
  EXPECT_TRUE(d.context_shift);
  EXPECT_FALSE(d.help);

  const GenerateArgs o =
      parse({"-m", "m.gguf", "-p", "hi", "-n", "-1", "-c", "128", "-t", "3", "-s", "7", "--temp", "0.5", "--top-k", "40",
             "--top-p", "0.95", "--min-p", "0.05", "--typical", "0.9", "--repeat-penalty", "1.1", "--repeat-last-n", "32",
             "--presence-penalty", "0.5", "--frequency-penalty", "-0.25", "--logit-bias", "15+1.5", "--logit-bias",
             "16-inf", "-r", "User:", "--reverse-prompt", "\n\n", "--ignore-eos", "-ctk", "f16", "-ctv", "q8_0", "--keep",
             "4", "--no-context-shift", "-np", "4", "--draft", "3"});
  EXPECT_EQ(o.model, "m.gguf");
  EXPECT_EQ(o.prompt, "hi");
  EXPECT_EQ(o.n_predict, -1);
  EXPECT_EQ(o.ctx_size, 128);
  EXPECT_EQ(o.threads, 3);
  EXPECT_EQ(o.seed, 7u);
  EXPECT_EQ(o.temp, 0.5f);
  EXPECT_EQ(o.top_k, 40);
  EXPECT_EQ(o.top_p, 0.95f);
  EXPECT_EQ(o.min_p, 0.05f);
  EXPECT_EQ(o.typical_p, 0.9f);
  EXPECT_EQ(o.repeat_penalty, 1.1f);
  EXPECT_EQ(o.repeat_last_n, 32);
  EXPECT_EQ(o.presence_penalty, 0.5f);
  EXPECT_EQ(o.frequency_penalty, -0.25f);
  ASSERT_EQ(o.logit_bias.size(), 2u);
  EXPECT_EQ(o.logit_bias[0].first, 15);
  EXPECT_EQ(o.logit_bias[0].second, 1.5f);
  EXPECT_EQ(o.logit_bias[1].first, 16);
  EXPECT_TRUE(std::isinf(o.logit_bias[1].second) && o.logit_bias[1].second < 0);
  EXPECT_EQ(o.reverse_prompts, (std::vector<std::string>{"User:", "\n\n"}));
  EXPECT_TRUE(o.ignore_eos);
  EXPECT_EQ(o.cache_type_k, tinfer::KVCacheType::F16);
  EXPECT_EQ(o.cache_type_v, tinfer::KVCacheType::Q8_0);
  EXPECT_EQ(o.keep, 4);
  EXPECT_FALSE(o.context_shift);
  EXPECT_EQ(o.parallel, 4);
  EXPECT_EQ(o.draft, 3);

  EXPECT_EQ(parse({"-f", "prompt.txt"}).prompt_file, "prompt.txt");
  EXPECT_TRUE(parse({"-cnv"}).conversation);
  EXPECT_TRUE(parse({"-i"}).conversation);
  EXPECT_EQ(parse({"-s", "-1"}).seed, 0u);
  EXPECT_EQ(parse({"-md", "d.gguf"}).draft_model, "d.gguf");
  // --help wins over anything that follows, even an error in the rest.
  EXPECT_TRUE(parse({"-n", "5", "--help", "-n", "bad"}).help);
}

TEST(GenerateArgs, BadValuesAreUsageErrorsNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-p"}, "-p needs a value"},
      {{"--bogus"}, "unknown option '--bogus'"},
      {{"-n", "abc"}, "not a valid number"},
      {{"-n", "-5"}, "outside [-1, 16777216]"},
      {{"-n", "99999999999"}, "not a valid number"},  // overflows int
      {{"-c", "-1"}, "outside"},
      {{"-c", "100000000"}, "outside"},
      {{"-t", "0"}, "outside [1, 1024]"},
      {{"-t", "5000"}, "outside"},
      {{"--temp", "nan"}, "not a finite number"},
      {{"--temp", "inf"}, "not a finite number"},
      {{"--temp", "-1"}, "outside"},
      {{"--top-p", "1.5"}, "outside"},
      {{"--min-p", "-0.1"}, "outside"},
      {{"--typical", "2"}, "outside"},
      {{"--repeat-penalty", "0"}, "must be > 0"},
      {{"--repeat-last-n", "-2"}, "outside"},
      {{"--top-k", "-3"}, "outside"},
      {{"-s", "0"}, "seed must be > 0"},
      {{"-s", "x"}, "not a valid number"},
      {{"--logit-bias", "15"}, "no + or -"},
      {{"--logit-bias", "x+1"}, "no valid token id"},
      {{"--logit-bias", "15+x"}, "no valid bias"},
      {{"--logit-bias", "15+inf"}, "+inf"},
      {{"--logit-bias", "-3+1"}, "no valid token id"},
      {{"-ctk", "q4_0"}, "unknown KV cache type 'q4_0'"},
      {{"-ctv", ""}, "-ctv"},
      {{"-r", ""}, "stop string is empty"},
      {{"-p", "a", "-f", "b"}, "give the prompt once"},
      {{"-c", "8", "--keep", "9"}, "--keep"},
      {{"--keep", "-2"}, "outside"},
      {{"-np", "0"}, "outside"},
      {{"--draft", "0"}, "outside"},
      {{"-cnv", "-np", "2"}, "--parallel"},
      {{"-m", ""}, "empty"},
  };
  for (const auto& [args, needle] : cases) {
    const std::string e = error_of(args);
    EXPECT_NE(e.find(needle), std::string::npos) << "args[0]=" << args[0] << ": got '" << e << "', expected '" << needle << "'";
  }
}

}  // namespace
