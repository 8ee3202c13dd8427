// The same vocabulary loaded from its different file layouts must tokenize identically.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "llamacpp_vectors.hpp"
#include "test_assets.hpp"
#include "tinfer/tokenizer/byte_level_bpe.hpp"
#include "tinfer/tokenizer/hf_tokenizer_json.hpp"
#include "tinfer/tokenizer/load_tokenizer.hpp"
#include "tinfer/tokenizer/sentencepiece_model.hpp"

namespace {

using tinfer::testing::assets_dir;

std::vector<std::string> sample_texts() {
  std::vector<std::string> texts;
  const auto inp = assets_dir() / "llamacpp-vocab/ggml-vocab-gpt-2.gguf.inp";
  if (std::filesystem::exists(inp))
    for (auto& c : tinfer::testing::read_llamacpp_vectors(inp)) texts.push_back(c.text);
  texts.push_back("Once upon a time, there was a little girl named Lily. She loved to play outside.");
  texts.push_back("<|endoftext|> isn't special unless asked; 'll 've 're 'd 'm 's 't");
  return texts;
}

TEST(TokenizerFormats, Gpt2ThreeLayoutsAgree) {
  const auto dir = assets_dir() / "gpt2-bpe";
  TINFER_REQUIRE_FILE(dir / "tokenizer.json");
  const auto openai = tinfer::ByteLevelBpeTokenizer::from_vocab_and_merges(dir / "encoder.json", dir / "vocab.bpe");
  const auto hf = tinfer::load_hf_tokenizer_json(dir / "tokenizer.json");
  ASSERT_NE(dynamic_cast<const tinfer::ByteLevelBpeTokenizer*>(hf.get()), nullptr);
  // The in-memory constructor, fed as a GGUF loader would (tokens, merges, types, ids).
  const nlohmann::json vocab = nlohmann::json::parse(tinfer::testing::read_text_file(dir / "encoder.json"));
  std::vector<std::string> tokens(vocab.size());
  std::vector<tinfer::TokenType> types(vocab.size(), tinfer::TokenType::Normal);
  for (const auto& [t, id] : vocab.items()) tokens[id.get<std::size_t>()] = t;
  types[50256] = tinfer::TokenType::Control;
  std::vector<std::string> merges;
  {
    std::istringstream in(tinfer::testing::read_text_file(dir / "vocab.bpe"));
    std::string line;
    std::getline(in, line);  // #version
    while (std::getline(in, line))
      if (!line.empty()) merges.push_back(line);
  }
  const tinfer::ByteLevelBpeTokenizer mem(tokens, merges, types, {.bos = 50256, .eos = 50256, .unk = -1, .add_bos = false});

  ASSERT_EQ(hf->vocab_size(), openai.vocab_size());
  ASSERT_EQ(mem.vocab_size(), openai.vocab_size());
  for (std::int32_t id = 0; id < openai.vocab_size(); ++id) {
    ASSERT_EQ(hf->token_to_piece(id), openai.token_to_piece(id)) << id;
    ASSERT_EQ(mem.token_to_piece(id), openai.token_to_piece(id)) << id;
  }
  EXPECT_EQ(hf->eos_id(), 50256);
  EXPECT_FALSE(hf->add_bos_by_default());
  for (const auto& t : sample_texts()) {
    for (bool special : {false, true}) {
      const auto want = openai.encode(t, {.parse_special = special});
      EXPECT_EQ(hf->encode(t, {.parse_special = special}), want) << tinfer::testing::printable(t);
      EXPECT_EQ(mem.encode(t, {.parse_special = special}), want) << tinfer::testing::printable(t);
    }
  }
  // A RoBERTa-style file asking for a prefix space: "Hello" is tokenized as " Hello".
  nlohmann::json root = nlohmann::json::parse(tinfer::testing::read_text_file(dir / "tokenizer.json"));
  root["pre_tokenizer"]["add_prefix_space"] = true;
  const auto prefixed = tinfer::byte_level_bpe_from_hf_json(root, "prefixed.json");
  EXPECT_TRUE(prefixed.add_prefix_space());
  EXPECT_EQ(prefixed.encode("Hello world"), (std::vector<std::int32_t>{18435, 995}));
  EXPECT_EQ(prefixed.encode(" Hello"), (std::vector<std::int32_t>{18435}));
  // The folder and single-file entry points pick the same tokenizer.
  EXPECT_EQ(tinfer::load_tokenizer(dir)->encode("Hello world"), (std::vector<std::int32_t>{15496, 995}));
  EXPECT_EQ(tinfer::load_tokenizer(dir / "encoder.json")->encode("Hello world"), (std::vector<std::int32_t>{15496, 995}));
}

TEST(TokenizerFormats, Gpt2SpecialTokens) {
  const auto dir = assets_dir() / "gpt2-bpe";
  TINFER_REQUIRE_FILE(dir / "encoder.json");
  const auto tok = tinfer::ByteLevelBpeTokenizer::from_vocab_and_merges(dir / "encoder.json", dir / "vocab.bpe");
  const std::string text = "Hi<|endoftext|>there";
  const auto plain = tok.encode(text);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(tok.decode(plain), text);
  EXPECT_EQ(tok.encode(text, {.parse_special = true}), (std::vector<std::int32_t>{17250, 50256, 8117}));
  EXPECT_EQ(tok.encode("Hi", {.add_bos = true, .add_eos = true}), (std::vector<std::int32_t>{50256, 17250, 50256}));
  // decode() skips control tokens unless asked to render them.
  EXPECT_EQ(tok.decode(std::vector<std::int32_t>{17250, 50256, 8117}), "Hithere");
  EXPECT_EQ(tok.decode(std::vector<std::int32_t>{17250, 50256, 8117}, {.render_special = true}), text);
}

TEST(TokenizerFormats, TinyGpt2VocabMergesAndJsonAgree) {
  const auto dir = assets_dir() / "hf/tiny-gpt2-f32";
  TINFER_REQUIRE_FILE(dir / "tokenizer.json");
  const auto a = tinfer::ByteLevelBpeTokenizer::from_vocab_and_merges(dir / "vocab.json", dir / "merges.txt");
  const auto b = tinfer::load_tokenizer(dir / "tokenizer.json");
  const auto c = tinfer::load_tokenizer(dir);
  EXPECT_EQ(a.vocab_size(), 1281);
  EXPECT_EQ(b->vocab_size(), 1281);
  EXPECT_EQ(b->eos_id(), 1280);
  for (const auto& t : sample_texts()) {
    const auto ids = a.encode(t, {.parse_special = true});
    EXPECT_EQ(b->encode(t, {.parse_special = true}), ids) << tinfer::testing::printable(t);
    EXPECT_EQ(c->encode(t, {.parse_special = true}), ids);
    EXPECT_EQ(a.decode(a.encode(t)), t);
    EXPECT_TRUE(std::all_of(ids.begin(), ids.end(), [](std::int32_t id) { return id >= 0 && id < 1281; }));
  }
  // With the full vocabulary these are single tokens; the truncated one must build them from
  // its first 1,024 merges but still decode to the same text.
  const std::string t = " the quick brown fox";
  EXPECT_EQ(a.decode(a.encode(t)), t);
}

// A Llama-layout tokenizer.json (BPE + byte_fallback, Prepend/Replace normalizer), made here
// from tokenizer.model as Hugging Face's converter does: for every piece, every split into two
// pieces is a merge, ordered by the piece's score.
TEST(TokenizerFormats, SentencePieceHfJsonAgreesWithModel) {
  const auto path = assets_dir() / "llama2-tokenizer/tokenizer.model";
  TINFER_REQUIRE_FILE(path);
  const auto spm = tinfer::load_sentencepiece_model(path);
  nlohmann::json vocab = nlohmann::json::object();
  struct M {
    float score;
    std::int32_t id;
    std::string a, b;
  };
  std::vector<M> ms;
  for (std::int32_t id = 0; id < spm.vocab_size(); ++id) {
    const std::string& p = spm.token_text(id);
    vocab[p] = id;
    if (spm.token_type(id) != tinfer::TokenType::Normal) continue;
    for (std::size_t cut = 1; cut < p.size(); ++cut) {
      if ((static_cast<unsigned char>(p[cut]) & 0xC0) == 0x80) continue;  // inside a character
      const auto l = spm.find_token(p.substr(0, cut));
      const auto r = spm.find_token(p.substr(cut));
      if (l && r && spm.token_type(*l) == tinfer::TokenType::Normal && spm.token_type(*r) == tinfer::TokenType::Normal)
        ms.push_back({spm.score(id), id, p.substr(0, cut), p.substr(cut)});
    }
  }
  std::stable_sort(ms.begin(), ms.end(), [](const M& x, const M& y) { return x.score > y.score || (x.score == y.score && x.id < y.id); });
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& m : ms) merges.push_back(m.a + " " + m.b);
  const nlohmann::json root = {
      {"added_tokens",
       {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
        {{"id", 1}, {"content", "<s>"}, {"special", true}},
        {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}},
      {"model",
       {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"vocab", vocab}, {"merges", merges}}},
  };
  const auto file = std::filesystem::temp_directory_path() / "tinfer_test_llama_tokenizer.json";
  std::ofstream(file) << root.dump();
  const auto hf = tinfer::load_tokenizer(file);
  std::filesystem::remove(file);
  ASSERT_NE(dynamic_cast<const tinfer::SentencePieceBpeTokenizer*>(hf.get()), nullptr);
  EXPECT_EQ(hf->bos_id(), 1);
  EXPECT_EQ(hf->eos_id(), 2);
  EXPECT_EQ(hf->unk_id(), 0);
  EXPECT_TRUE(hf->add_bos_by_default());
  const auto inp = assets_dir() / "llamacpp-vocab/ggml-vocab-llama-spm.gguf.inp";
  TINFER_REQUIRE_FILE(inp);
  for (const auto& c : tinfer::testing::read_llamacpp_vectors(inp)) {
    EXPECT_EQ(hf->encode(c.text, {.add_bos = false}), c.ids) << tinfer::testing::printable(c.text);
    EXPECT_EQ(hf->decode(hf->encode(c.text)), c.text);
  }
}

}  // namespace
