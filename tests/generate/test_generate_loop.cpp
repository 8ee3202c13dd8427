// The generation loop on a scripted model (whose next token is a function of what its cache
// holds, so a wrong cache after a context shift shows as a wrong token), text streaming with
// UTF-8 split across tokens, stop strings, and the demo model end to end.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tinfer/generate/generate.hpp"
#include "tinfer/generate/sampler_chain.hpp"
#include "tinfer/generate/text_stream.hpp"
#include "tinfer/generate/token_text_decoder.hpp"
#include "tinfer/models/llama.hpp"
#include "tinfer/tokenizer/llama2c_tokenizer.hpp"
#include "tinfer/models/model.hpp"
#include "test_assets.hpp"
#include "tinfer/tokenizer/unicode.hpp"

namespace {

using namespace tinfer;

struct ScriptSession {
  int ctx;
  std::vector<std::int32_t> cache;  // the token at each cached position
  int context() const { return ctx; }
};

// Logits with a single 1 at next(cache); checks that positions continue the cache.
struct ScriptModel {
  int vocab = 16;
  std::function<std::int32_t(const std::vector<std::int32_t>&)> next;
  mutable std::vector<float> logits{};
  mutable int fed = 0;  // tokens fed in total (recomputation included)
  std::span<float> forward_batch(ScriptSession& s, std::span<const std::int32_t> tokens, int pos0, ThreadPool* = nullptr,
                                 bool = false) const {
    if (pos0 > static_cast<int>(s.cache.size())) throw InvalidArgument("gap in the cache");
    if (pos0 + static_cast<int>(tokens.size()) > s.ctx) throw InvalidArgument("past the context");
    s.cache.resize(static_cast<std::size_t>(pos0));
    s.cache.insert(s.cache.end(), tokens.begin(), tokens.end());
    fed += static_cast<int>(tokens.size());
    logits.assign(static_cast<std::size_t>(vocab), 0.0f);
    logits[static_cast<std::size_t>(next(s.cache))] = 1.0f;
    return logits;
  }
};

// next = (last + 1) mod 10: a counter.
ScriptModel counter() { return {16, [](const std::vector<std::int32_t>& c) { return (c.back() + 1) % 10; }}; }

auto keep_going = [](std::int32_t, std::int32_t) { return true; };

TEST(GenerateLoop, MaxTokensStopTokenAndCallback) {
  auto m = counter();
  ScriptSession s{64, {}};
  auto greedy = SamplerChain::greedy();
  const std::vector<std::int32_t> prompt = {3};
  auto r = generate(m, s, std::span(prompt), greedy, {.max_new_tokens = 4}, keep_going);
  EXPECT_EQ(r.tokens, (std::vector<std::int32_t>{4, 5, 6, 7}));
  EXPECT_EQ(r.n_prompt, 1);
  EXPECT_FALSE(r.hit_stop_token);

  s = {64, {}};
  r = generate(m, s, std::span(prompt), greedy, {.max_new_tokens = 100, .stop_token = 6}, keep_going);
  EXPECT_EQ(r.tokens, (std::vector<std::int32_t>{4, 5}));  // the stop token is not emitted
  EXPECT_TRUE(r.hit_stop_token);

  s = {64, {}};
  r = generate(m, s, std::span(prompt), greedy, {.max_new_tokens = 100},
               [](std::int32_t, std::int32_t t) { return t != 5; });
  EXPECT_EQ(r.tokens, (std::vector<std::int32_t>{4, 5}));  // the callback saw 5 and said stop
  EXPECT_TRUE(r.stopped_by_callback);

  s = {64, {}};
  r = generate(m, s, std::span(prompt), greedy, {.max_new_tokens = 0}, keep_going);
  EXPECT_TRUE(r.tokens.empty());
}

TEST(GenerateLoop, FullContextWithoutShift) {
  auto m = counter();
  ScriptSession s{5, {}};
  auto greedy = SamplerChain::greedy();
  const std::vector<std::int32_t> prompt = {0, 1};
  const auto r = generate(m, s, std::span(prompt), greedy, {.max_new_tokens = -1}, keep_going);
  // 5 positions: 2 prompt + 3 fed samples; the 4th sample needs no position of its own.
  EXPECT_EQ(r.tokens, (std::vector<std::int32_t>{2, 3, 4, 5}));
  EXPECT_TRUE(r.context_full);
  const std::vector<std::int32_t> too_long = {0, 1, 2, 3, 4, 5};
  s = {5, {}};
  EXPECT_THROW(generate(m, s, std::span(too_long), greedy, {}, keep_going), InvalidArgument);
}

// A model whose next token is the sum of its cache mod 10: the tokens after a shift show
// whether the cache holds exactly the kept tokens.
TEST(GenerateLoop, ContextShiftKeepsFirstTokensAndDropsHalfOfTheRest) {
  ScriptModel m{16, [](const std::vector<std::int32_t>& c) {
                  int sum = 0;
                  for (auto t : c) sum += t;
                  return sum % 10;
                }};
  ScriptSession s{8, {}};
  auto greedy = SamplerChain::greedy();
  SequenceState seq{{1, 2}, 0};
  const auto r = generate(m, s, seq, greedy, {.max_new_tokens = 12, .context_shift = true, .n_keep = 1}, keep_going);
  EXPECT_EQ(r.tokens.size(), 12u);
  EXPECT_FALSE(r.context_full);
  EXPECT_GE(r.context_shifts, 1);
  // Replay by hand: keep token 0, on overflow drop floor((n_cached - 1) / 2) after it.
  std::vector<std::int32_t> toks = {1, 2};
  std::vector<std::int32_t> want;
  int n_cached = 2;
  for (int i = 0; i < 12; ++i) {
    int sum = 0;
    for (int k = 0; k < n_cached; ++k) sum += toks[static_cast<std::size_t>(k)];
    const std::int32_t t = sum % 10;
    want.push_back(t);
    toks.push_back(t);
    if (i == 11) break;
    if (static_cast<int>(toks.size()) > 8) {
      const int drop = (n_cached - 1) / 2;
      toks.erase(toks.begin() + 1, toks.begin() + 1 + drop);
    }
    n_cached = static_cast<int>(toks.size());
  }
  EXPECT_EQ(r.tokens, want);
  EXPECT_EQ(seq.tokens, toks);
  EXPECT_EQ(s.cache.front(), 1);  // the kept first token
  EXPECT_LE(static_cast<int>(s.cache.size()), 8);
}

// A Llama model moves its cache (context_shift re-rotates the keys): nothing is fed again.
TEST(GenerateLoop, LlamaContextShiftMovesTheCache) {
  const auto path = tinfer::testing::assets_dir() / "stories260K" / "stories260K.bin";
  TINFER_REQUIRE_FILE(path);
  const auto model = LlamaModel::load_llama2c(path.string());
  LlamaSession s(model, 32);
  auto greedy = SamplerChain::greedy();
  const auto tok_path = tinfer::testing::assets_dir() / "stories260K" / "tok512.bin";
  TINFER_REQUIRE_FILE(tok_path);
  const std::vector<std::int32_t> prompt = Llama2cTokenizer::load(tok_path.string(), 512).encode("Once upon a time", true);
  SequenceState seq{prompt, 0};
  const auto r = generate(model, s, seq, greedy, {.max_new_tokens = 100, .context_shift = true, .n_keep = 1},
                          [](std::int32_t, std::int32_t) { return true; });
  EXPECT_EQ(r.tokens.size(), 100u);
  EXPECT_GE(r.context_shifts, 3);
  EXPECT_EQ(r.recomputed_tokens, 0);
  EXPECT_EQ(seq.tokens.front(), 1);
  EXPECT_EQ(s.n_past(), seq.n_cached);
  // Before the first shift, the run is the unshifted one.
  LlamaSession plain(model, 32);
  auto greedy2 = SamplerChain::greedy();
  const auto first = generate(model, plain, std::span(prompt), greedy2, {.max_new_tokens = -1},
                              [](std::int32_t, std::int32_t) { return true; });
  ASSERT_TRUE(first.context_full);
  EXPECT_TRUE(std::equal(first.tokens.begin(), first.tokens.end(), r.tokens.begin()));
}

TEST(GenerateLoop, SequenceStateContinuesAConversation) {
  auto m = counter();
  ScriptSession s{64, {}};
  auto greedy = SamplerChain::greedy();
  SequenceState seq{{0}, 0};
  auto r = generate(m, s, seq, greedy, {.max_new_tokens = 3}, keep_going);
  EXPECT_EQ(r.tokens, (std::vector<std::int32_t>{1, 2, 3}));
  EXPECT_EQ(seq.n_cached, 3);  // 0 1 2 cached; 3 sampled, fed with the next turn
  const int fed_before = m.fed;
  seq.tokens.push_back(7);  // the next turn
  r = generate(m, s, seq, greedy, {.max_new_tokens = 2}, keep_going);
  EXPECT_EQ(r.tokens, (std::vector<std::int32_t>{8, 9}));
  EXPECT_EQ(m.fed - fed_before, 3);  // 3 and 7, then 8: nothing fed twice
  EXPECT_EQ(s.cache, (std::vector<std::int32_t>{0, 1, 2, 3, 7, 8}));
}

// The sampler sees the prompt: a repeat penalty on the prompt's tokens changes greedy picks.
TEST(GenerateLoop, SamplerAcceptsPromptAndGeneratedTokens) {
  ScriptModel m{4, [](const std::vector<std::int32_t>&) { return 0; }};
  m.next = [](const std::vector<std::int32_t>&) { return 0; };
  struct Recorder {
    std::vector<std::int32_t> seen;
    std::int32_t sample(std::span<const float>) { return static_cast<std::int32_t>(seen.size() % 3); }
    void accept(std::int32_t t) { seen.push_back(t); }
  } rec;
  ScriptSession s{64, {}};
  const std::vector<std::int32_t> prompt = {3, 2};
  const auto r = generate(m, s, std::span(prompt), rec, {.max_new_tokens = 3}, keep_going);
  // accepted when fed: 3 2 (prompt), then each sample before the next one is drawn.
  EXPECT_EQ(r.tokens, (std::vector<std::int32_t>{2, 0, 1}));
  EXPECT_EQ(rec.seen, (std::vector<std::int32_t>{3, 2, 2, 0}));
}

TEST(TextStream, HoldsBackIncompleteUtf8) {
  TextStream t;
  // "é" = C3 A9 and "🦙" = F0 9F A6 99 split over several pushes.
  EXPECT_EQ(t.push("a\xC3"), "a");
  EXPECT_EQ(t.push("\xA9"), "\xC3\xA9");
  EXPECT_EQ(t.push("\xF0\x9F"), "");
  EXPECT_EQ(t.held_bytes(), 2u);
  EXPECT_EQ(t.push("\xA6"), "");
  EXPECT_EQ(t.push("\x99!"), "\xF0\x9F\xA6\x99!");
  EXPECT_EQ(t.push("\xE2\x82"), "");
  EXPECT_EQ(t.finish(), "\xEF\xBF\xBD\xEF\xBF\xBD");  // unfinished at the end: U+FFFD per byte
}

TEST(TextStream, StopStringsAcrossPushesAndNothingPastThem) {
  TextStream t({"User:", "\n\n"});
  std::string shown;
  for (const char* piece : {"Hello", " Us", "e", "ful. U", "ser", ": more"}) {
    shown += t.push(piece);
    if (t.stopped()) break;
  }
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(t.matched_stop(), "User:");
  EXPECT_EQ(shown, "Hello Useful. ");
  EXPECT_EQ(t.push("x"), "");
  EXPECT_EQ(t.finish(), "");

  // A held prefix that never completes is released at the end.
  TextStream u({"User:"});
  EXPECT_EQ(u.push("Amen. Us"), "Amen. ");
  EXPECT_EQ(u.finish(), "Us");
  EXPECT_FALSE(u.stopped());

  // A stop string inside one piece, and the earliest of two.
  TextStream v({"C", "B"});
  EXPECT_EQ(v.push("aBCd"), "a");
  EXPECT_EQ(v.matched_stop(), "B");
  EXPECT_THROW(TextStream({""}), InvalidArgument);
}

// Bytes per token for a scripted model; UTF-8 characters split across tokens.
struct ByteDecoder {
  std::vector<std::string> pieces;
  std::string push(std::int32_t, std::int32_t t) { return pieces[static_cast<std::size_t>(t)]; }
  std::string finish() { return {}; }
};

TEST(GenerateText, StreamsCompleteUtf8AndStopsAtStopString) {
  // Tokens 1..9 spell "é" (C3 | A9), "🦙" (F0 9F | A6 | 99), " amen", "\n", "Us", "er:" and "x".
  ByteDecoder dec{{"", "\xC3", "\xA9", "\xF0\x9F", "\xA6", "\x99", " amen", "\n", "Us", "er:"}};
  auto m = counter();  // 0 1 2 ... 9 0 1 ...
  auto greedy = SamplerChain::greedy();
  std::vector<std::string> chunks;
  auto on_text = [&](std::string_view s) {
    chunks.emplace_back(s);
    return true;
  };
  ScriptSession s{64, {}};
  SequenceState seq{{0}, 0};
  GenerateOptions opt{.max_new_tokens = 20, .stop_strings = {"User:"}};
  const auto r = generate_text(m, s, seq, greedy, opt, dec, on_text);
  std::string all;
  for (const auto& c : chunks) {
    all += c;
    EXPECT_EQ(unicode::sanitize_utf8(c), c) << "every chunk is valid UTF-8";
  }
  EXPECT_EQ(all, "\xC3\xA9\xF0\x9F\xA6\x99 amen\n");
  EXPECT_EQ(r.stop_string, "User:");
  EXPECT_FALSE(r.stopped_by_callback);
  EXPECT_EQ(r.tokens.back(), 9);  // the token that completed the stop string
  // The multi-byte characters came out whole: "é" with token 2, "🦙" with token 5.
  EXPECT_EQ(chunks[0], "\xC3\xA9");
  EXPECT_EQ(chunks[1], "\xF0\x9F\xA6\x99");

  // The callback stops generation.
  ScriptSession s2{64, {}};
  SequenceState seq2{{0}, 0};
  int calls = 0;
  const auto r2 = generate_text(m, s2, seq2, greedy, GenerateOptions{.max_new_tokens = 20}, dec, [&](std::string_view) {
    return ++calls < 2;
  });
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(r2.stopped_by_callback);
}

// A real byte-level BPE (the demo model's, learned from English text) splits characters it has
// never seen into byte tokens: streaming them one token at a time still yields whole characters.
TEST(GenerateText, DemoTokenizerSplitsCharactersAcrossTokens) {
  const std::filesystem::path path = std::filesystem::path(TINFER_SOURCE_DIR) / "examples/demo-model/tinfer-demo-kjv.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "demo model missing";
  const auto model = load_model(path.string());
  const auto tok = load_model_tokenizer(path.string(), *model);
  const std::string text = "na\xC3\xAFve \xF0\x9F\xA6\x99 caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC";  // naïve 🦙 café 日本
  const auto ids = tok->encode(text);
  EXPECT_GT(ids.size(), 12u);  // the non-ASCII characters take several tokens each
  TokenTextDecoder dec(*tok);
  TextStream stream;
  std::string out;
  int split = 0;  // tokens after which a character was incomplete
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::string chunk = stream.push(dec.push(i > 0 ? ids[i - 1] : -1, ids[i]));
    EXPECT_EQ(unicode::sanitize_utf8(chunk), chunk);
    if (stream.held_bytes() > 0) ++split;
    out += chunk;
  }
  out += stream.finish();
  EXPECT_EQ(out, text);
  EXPECT_GE(split, 4);  // at least one split inside each of the four multi-byte words
}

// The demo model: streamed text equals the decoded tokens, cut before the stop string.
TEST(GenerateText, DemoModelStreamEqualsDecode) {
  const std::filesystem::path path = std::filesystem::path(TINFER_SOURCE_DIR) / "examples/demo-model/tinfer-demo-kjv.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "demo model missing";
  const auto model = load_model(path.string());
  const auto tok = load_model_tokenizer(path.string(), *model);
  auto session = model->new_session(128);
  auto greedy = SamplerChain::greedy();
  SequenceState seq{tok->encode("And it came to pass"), 0};
  TokenTextDecoder dec(*tok, false);
  std::string streamed;
  const auto r = generate_text(*model, *session, seq, greedy, GenerateOptions{.max_new_tokens = 60, .stop_token = tok->eos_id()},
                               dec, [&](std::string_view s) {
                                 streamed += s;
                                 return true;
                               });
  ASSERT_FALSE(r.tokens.empty());
  EXPECT_EQ(streamed, tok->decode(r.tokens));
  // Now stop at the first comma that the greedy text contains after its start.
  const auto comma = streamed.find(',');
  ASSERT_NE(comma, std::string::npos);
  auto session2 = model->new_session(128);
  SequenceState seq2{tok->encode("And it came to pass"), 0};
  TokenTextDecoder dec2(*tok, false);
  std::string cut;
  auto greedy2 = SamplerChain::greedy();
  const auto r2 = generate_text(*model, *session2, seq2, greedy2,
                                GenerateOptions{.max_new_tokens = 60, .stop_token = tok->eos_id(), .stop_strings = {","}}, dec2,
                                [&](std::string_view s) {
                                  cut += s;
                                  return true;
                                });
  EXPECT_EQ(r2.stop_string, ",");
  EXPECT_EQ(cut, streamed.substr(0, comma));
}

}  // namespace
