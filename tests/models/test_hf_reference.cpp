// Hugging Face folders (config.json + safetensors) against independent references: run.c's
// stories260K logits, and the exact GPT-2 forward of the same weights as the GGUF reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_assets.hpp"
#include "tinfer/models/model.hpp"

namespace {

using tinfer::testing::assets_dir;
using tinfer::testing::reference_dir;

TEST(HfFolder, Stories260KF32MatchesRunC) {
  const auto folder = assets_dir() / "hf" / "stories260K-f32";
  const auto ref_path = reference_dir() / "stories260K" / "once_upon_a_time.json";
  TINFER_REQUIRE_FILE(folder);
  TINFER_REQUIRE_FILE(ref_path);
  const auto j = nlohmann::json::parse(tinfer::testing::read_text_file(ref_path));
  const auto fed = j.at("fed_tokens").get<std::vector<std::int32_t>>();
  const auto logits = j.at("logits_first_positions").get<std::vector<std::vector<float>>>();
  const auto model = tinfer::load_model(folder.string());
  EXPECT_EQ(model->format(), tinfer::ModelFormat::HuggingFace);
  EXPECT_EQ(model->architecture(), "llama");
  auto s = model->new_session();
  for (std::size_t pos = 0; pos < logits.size(); ++pos) {
    const auto l = model->forward(*s, fed[pos], static_cast<int>(pos));
    for (std::size_t i = 0; i < l.size(); ++i) ASSERT_NEAR(l[i], logits[pos][i], 1e-4) << "pos " << pos << " logit " << i;
  }
}

TEST(HfFolder, Stories260KBf16CloseToF32) {
  const auto f32 = assets_dir() / "hf" / "stories260K-f32", bf16 = assets_dir() / "hf" / "stories260K-bf16";
  TINFER_REQUIRE_FILE(f32);
  TINFER_REQUIRE_FILE(bf16);
  const auto a = tinfer::load_model(f32.string()), b = tinfer::load_model(bf16.string());
  auto sa = a->new_session(), sb = b->new_session();
  const std::vector<std::int32_t> toks = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376};
  double se = 0, ss = 0;
  int agree = 0;
  for (std::size_t pos = 0; pos < toks.size(); ++pos) {
    const auto la = a->forward(*sa, toks[pos], static_cast<int>(pos));
    std::vector<float> va(la.begin(), la.end());
    const auto lb = b->forward(*sb, toks[pos], static_cast<int>(pos));
    for (std::size_t i = 0; i < va.size(); ++i) {
      se += (va[i] - lb[i]) * (va[i] - lb[i]);
      ss += va[i] * va[i];
    }
    agree += std::max_element(va.begin(), va.end()) - va.begin() == std::max_element(lb.begin(), lb.end()) - lb.begin();
  }
  // bf16 keeps 8 significant bits (relative rounding error <= 2^-9 per weight).
  EXPECT_LT(std::sqrt(se / ss), 2e-2);
  EXPECT_GE(agree, 9);
}

TEST(HfFolder, TinyGpt2MatchesExactForward) {
  const auto folder = assets_dir() / "hf" / "tiny-gpt2-f32";
  const auto ref_path = reference_dir() / "gguf" / "tiny-gpt2-f32.json";
  TINFER_REQUIRE_FILE(folder);
  TINFER_REQUIRE_FILE(ref_path);
  const auto j = nlohmann::json::parse(tinfer::testing::read_text_file(ref_path));
  const auto tokens = j.at("tokens").get<std::vector<std::int32_t>>();
  const auto exact = j.at("exact_logits").get<std::vector<std::vector<double>>>();
  const auto model = tinfer::load_model(folder.string());
  EXPECT_EQ(model->architecture(), "gpt2");
  auto s = model->new_session();
  double se = 0, sum = 0, sum2 = 0;
  std::size_t n = 0;
  for (std::size_t pos = 0; pos < tokens.size(); ++pos) {
    const auto l = model->forward(*s, tokens[pos], static_cast<int>(pos));
    for (std::size_t i = 0; i < l.size(); ++i) {
      se += (l[i] - exact[pos][i]) * (l[i] - exact[pos][i]);
      sum += exact[pos][i];
      sum2 += exact[pos][i] * exact[pos][i];
      ++n;
    }
  }
  const double mean = sum / static_cast<double>(n);
  EXPECT_LT(std::sqrt(se / static_cast<double>(n)) / std::sqrt(sum2 / static_cast<double>(n) - mean * mean), 1e-5);
}

// Malformed folders: each problem is a tinfer::Error naming the file and the field.
class HfMalformed : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = assets_dir() / "hf" / "tiny-gpt2-f32";
    TINFER_REQUIRE_FILE(src_);
    dir_ = tinfer::testing::temp_path("hf");
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::filesystem::copy_file(src_ / "config.json", dir_ / "config.json");
    std::filesystem::copy_file(src_ / "model.safetensors", dir_ / "model.safetensors");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& bytes) { std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << bytes; }
  std::string read(const std::string& name) { return tinfer::testing::read_text_file(dir_ / name); }
  std::string error() {
    try {
      tinfer::load_model(dir_.string());
    } catch (const tinfer::Error& e) {
      return e.what();
    }
    return "";
  }
  std::filesystem::path src_, dir_;
};

TEST_F(HfMalformed, SafetensorsHeaderProblems) {
  const std::string good = read("model.safetensors");
  std::uint64_t n;
  std::memcpy(&n, good.data(), 8);
  const std::string header = good.substr(8, n);
  auto with_header = [&](const std::string& h) {
    std::string b(8, '\0');
    const std::uint64_t len = h.size();
    std::memcpy(b.data(), &len, 8);
    write("model.safetensors", b + h + good.substr(8 + n));
  };
  write("model.safetensors", good.substr(0, 5));
  EXPECT_NE(error().find("header length"), std::string::npos) << error();
  write("model.safetensors", good.substr(0, 8 + n / 2));
  EXPECT_NE(error().find("exceeds"), std::string::npos) << error();
  with_header("{not json");
  EXPECT_NE(error().find("not valid JSON"), std::string::npos) << error();
  with_header("[1,2]");
  EXPECT_NE(error().find("not a JSON object"), std::string::npos) << error();
  std::string lie = header;
  lie.replace(lie.find("[0,3072]"), 8, "[0,3076]");
  with_header(lie);
  EXPECT_NE(error().find("data_offsets span"), std::string::npos) << error();
  std::string past = header;
  past.replace(past.find("[0,3072]"), 8, "[0,99999999999]");
  with_header(past);
  EXPECT_NE(error().find("outside"), std::string::npos) << error();
  std::string dtype = header;
  dtype.replace(dtype.find("\"F32\""), 5, "\"I8\"");
  with_header(dtype);
  EXPECT_NE(error().find("dtype I8"), std::string::npos) << error();
  // Truncated data: offsets now point past the end.
  write("model.safetensors", good.substr(0, good.size() - 100));
  EXPECT_NE(error().find("outside"), std::string::npos) << error();
}

TEST_F(HfMalformed, ConfigProblems) {
  const auto cfg = nlohmann::json::parse(read("config.json"));
  auto with = [&](const char* key, const nlohmann::json& v) {
    auto c = cfg;
    if (v.is_discarded()) c.erase(key);
    else c[key] = v;
    write("config.json", c.dump());
    return error();
  };
  EXPECT_NE(with("n_embd", nlohmann::json::value_t::discarded).find("\"n_embd\" is missing"), std::string::npos);
  EXPECT_NE(with("n_embd", -3).find("outside"), std::string::npos);
  EXPECT_NE(with("n_embd", "wide").find("not an integer"), std::string::npos);
  EXPECT_NE(with("n_head", 3).find("does not divide"), std::string::npos);
  EXPECT_NE(with("n_layer", 3).find("'transformer.h.2.ln_1.weight' is missing"), std::string::npos);
  EXPECT_NE(with("n_embd", 128).find("has shape"), std::string::npos);
  EXPECT_NE(with("model_type", "bert").find("not supported"), std::string::npos);
  write("config.json", "{\"model_type\": ");
  EXPECT_NE(error().find("not valid JSON"), std::string::npos);
  std::filesystem::remove(dir_ / "config.json");
  EXPECT_NE(error().find("config.json"), std::string::npos);
}

}  // namespace

namespace {

// A sharded checkpoint (model.safetensors.index.json + two shards) loads to the same model as
// the single file it was split from.
TEST(HfFolder, ShardedCheckpointEqualsSingleFile) {
  const auto src = assets_dir() / "hf" / "tiny-gpt2-f32";
  TINFER_REQUIRE_FILE(src);
  const auto dir = tinfer::testing::temp_path("sharded");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(src / "config.json", dir / "config.json");
  const std::string whole = tinfer::testing::read_text_file(src / "model.safetensors");
  std::uint64_t n;
  std::memcpy(&n, whole.data(), 8);
  const auto header = nlohmann::json::parse(whole.substr(8, n));
  const std::string data = whole.substr(8 + n);
  nlohmann::json shard_header[2] = {nlohmann::json::object(), nlohmann::json::object()};
  std::string shard_data[2];
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  int i = 0;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const int s = (i++) % 2;
    const auto begin = it.value()["data_offsets"][0].get<std::size_t>(), end = it.value()["data_offsets"][1].get<std::size_t>();
    auto entry = it.value();
    entry["data_offsets"] = {shard_data[s].size(), shard_data[s].size() + (end - begin)};
    shard_data[s] += data.substr(begin, end - begin);
    shard_header[s][it.key()] = entry;
    index["weight_map"][it.key()] = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
  }
  for (int s = 0; s < 2; ++s) {
    const std::string h = shard_header[s].dump();
    const std::uint64_t len = h.size();
    std::string bytes(8, '\0');
    std::memcpy(bytes.data(), &len, 8);
    std::ofstream(dir / ("model-0000" + std::to_string(s + 1) + "-of-00002.safetensors"), std::ios::binary) << bytes << h << shard_data[s];
  }
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  const auto a = tinfer::load_model(src.string()), b = tinfer::load_model(dir.string());
  auto sa = a->new_session(), sb = b->new_session();
  for (int pos = 0; pos < 6; ++pos) {
    const auto la = a->forward(*sa, 100 + pos, pos);
    const std::vector<float> va(la.begin(), la.end());
    const auto lb = b->forward(*sb, 100 + pos, pos);
    ASSERT_EQ(va, std::vector<float>(lb.begin(), lb.end())) << pos;
  }
  // A weight_map naming a shard outside the folder is refused.
  index["weight_map"]["transformer.wte.weight"] = "../escape.safetensors";
  std::ofstream(dir / "model.safetensors.index.json", std::ios::trunc) << index.dump();
  EXPECT_THROW(tinfer::load_model(dir.string()), tinfer::FormatError);
  std::filesystem::remove_all(dir);
}

}  // namespace

namespace {

// The tokenizer stored with a model: from GGUF metadata or the folder; a clear IoError when the
// model holds none.
TEST(ModelTokenizer, ComesFromTheModelFileOrSaysToPassOne) {
  const auto gguf = assets_dir() / "gguf" / "stories260K-f32.gguf";
  const auto gpt2 = assets_dir() / "hf" / "tiny-gpt2-f32";
  const auto bare = assets_dir() / "hf" / "stories260K-f32";
  const auto bin = assets_dir() / "stories260K" / "stories260K.bin";
  TINFER_REQUIRE_FILE(gguf);
  TINFER_REQUIRE_FILE(gpt2);
  TINFER_REQUIRE_FILE(bare);
  TINFER_REQUIRE_FILE(bin);
  EXPECT_EQ(tinfer::load_model_tokenizer(gguf.string(), *tinfer::load_model(gguf.string()))->encode("Once upon a time"),
            (std::vector<std::int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tinfer::load_model_tokenizer(gpt2.string(), *tinfer::load_model(gpt2.string()))->vocab_size(), 1281);
  for (const auto& p : {bare, bin}) {
    try {
      tinfer::load_model_tokenizer(p.string(), *tinfer::load_model(p.string()));
      FAIL() << p << " has no tokenizer";
    } catch (const tinfer::IoError& e) {
      EXPECT_NE(std::string(e.what()).find("pass one"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
