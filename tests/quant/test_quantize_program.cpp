// tinfer-quantize: command line, llama.cpp's per-tensor type rules on real models, the input's
// metadata kept, tensors equal to the library's quantization, Hugging Face folders as input, and
// a GPTQ run whose tensors stay close to the source.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <tinfer/tinfer.hpp>

#include "program_runner.hpp"
#include "test_assets.hpp"

namespace {

using tinfer::DType;
using tinfer::io::GgufFile;
using tinfer::testing::run_program;
using tinfer::testing::shell_quote;
namespace q = tinfer::quant;

const std::filesystem::path kDemo = std::filesystem::path(TINFER_SOURCE_DIR) / "examples" / "demo-model" / "tinfer-demo-kjv.gguf";

class QuantizeProgram : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tinfer::testing::examples_built()) GTEST_SKIP() << "examples are not built";
  }
};

std::vector<float> as_f32(const GgufFile& f, const tinfer::io::GgufTensorInfo& t) {
  std::vector<float> v(static_cast<std::size_t>(t.row_length() * t.n_rows()));
  q::dequantize_row(t.type, f.tensor_data(t).data(), v.data(), static_cast<std::int64_t>(v.size()));
  return v;
}

// Every tensor of `out` is the source tensor, copied or quantized by the library to its type.
void expect_tensors_from(const GgufFile& src, const GgufFile& out) {
  ASSERT_EQ(src.tensors().size(), out.tensors().size());
  for (const auto& t : out.tensors()) {
    const auto& s = src.tensor(t.name);
    ASSERT_EQ(s.dims, t.dims) << t.name;
    const auto data = out.tensor_data(t);
    if (t.type == s.type) {
      const auto sd = src.tensor_data(s);
      EXPECT_TRUE(std::equal(data.begin(), data.end(), sd.begin(), sd.end())) << t.name;
    } else {
      const auto want = q::quantize_matrix(t.type, as_f32(src, s), s.n_rows(), s.row_length());
      EXPECT_TRUE(std::equal(data.begin(), data.end(), want.begin(), want.end())) << t.name << " as " << tinfer::dtype_name(t.type);
    }
  }
}

std::map<std::string, DType> types_of(const GgufFile& f) {
  std::map<std::string, DType> m;
  for (const auto& t : f.tensors()) m[t.name] = t.type;
  return m;
}

TEST_F(QuantizeProgram, HelpAndUsageErrors) {
  const auto help = run_program("tinfer-quantize", "--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("usage: tinfer-quantize [options] INPUT OUTPUT TYPE"), std::string::npos);
  EXPECT_NE(help.out.find("--gptq"), std::string::npos);
  const auto out = shell_quote(tinfer::testing::temp_path("x.gguf").string());
  const auto demo = shell_quote(kDemo.string());
  auto r = run_program("tinfer-quantize", demo + " " + out + " Q4_Z", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("unknown TYPE 'Q4_Z'"), std::string::npos) << r.out;
  r = run_program("tinfer-quantize", demo + " " + out, true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("expected INPUT OUTPUT TYPE"), std::string::npos) << r.out;
  r = run_program("tinfer-quantize", "/nonexistent.gguf " + out + " Q4_0", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("does not exist"), std::string::npos) << r.out;
  r = run_program("tinfer-quantize", "--gptq " + demo + " " + out + " Q4_0", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--calib"), std::string::npos) << r.out;
  r = run_program("tinfer-quantize", "--bogus " + demo + " " + out + " Q4_0", true);
  EXPECT_EQ(r.exit_code, 2);
  // Not a GGUF file: a failure that names the file.
  const auto junk = tinfer::testing::temp_path("junk.gguf");
  std::ofstream(junk) << "not a model";
  r = run_program("tinfer-quantize", shell_quote(junk.string()) + " " + out + " Q4_0", true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("junk.gguf"), std::string::npos) << r.out;
  std::filesystem::remove(junk);
}

TEST_F(QuantizeProgram, DemoModelQ4KMFollowsLlamaCppRulesAndKeepsMetadata) {
  const auto out = tinfer::testing::temp_path("demo-q4km.gguf");
  const auto r = run_program("tinfer-quantize", shell_quote(kDemo.string()) + " " + shell_quote(out.string()) + " Q4_K_M", true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("quant size ="), std::string::npos) << r.out;
  const GgufFile src(kDemo.string()), f(out.string());
  EXPECT_EQ(f.get_u32("general.file_type"), 15u);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  EXPECT_EQ(f.get_u32("general.quantization_version"), 2u);
  EXPECT_EQ(f.get_array_of<std::string>("tokenizer.ggml.merges"), src.get_array_of<std::string>("tokenizer.ggml.merges"));
  EXPECT_EQ(f.get_string("general.name"), src.get_string("general.name"));
  // 4 layers, tied output: the embedding gets the output's Q6_K; attention QKV (V-like) and FFN
  // down use more bits in layers 2 and 3 (i >= 7n/8 or (i - n/8) % 3 == 2).
  const auto ty = types_of(f);
  EXPECT_EQ(ty.at("token_embd.weight"), DType::Q6_K);
  EXPECT_EQ(ty.at("position_embd.weight"), DType::F16);  // never quantized
  EXPECT_EQ(ty.at("output_norm.weight"), DType::F32);
  for (int l = 0; l < 4; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const DType more = l >= 2 ? DType::Q6_K : DType::Q4_K;
    EXPECT_EQ(ty.at(p + "attn_qkv.weight"), more) << l;
    EXPECT_EQ(ty.at(p + "ffn_down.weight"), more) << l;
    EXPECT_EQ(ty.at(p + "attn_output.weight"), DType::Q4_K) << l;
    EXPECT_EQ(ty.at(p + "ffn_up.weight"), DType::Q4_K) << l;
    EXPECT_EQ(ty.at(p + "attn_qkv.bias"), DType::F32) << l;
  }
  // llama.cpp's order: tensors outside blocks first, then blocks by number, names sorted.
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) names.push_back(t.name);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end(), q::llama_tensor_order_less));
  expect_tensors_from(src, f);
  const auto model = tinfer::load_model(out.string());
  auto s = model->new_session(16);
  const auto logits = model->forward(*s, 1138, 0);
  EXPECT_TRUE(std::isfinite(logits[0]));
  std::filesystem::remove(out);
}

TEST_F(QuantizeProgram, PureGivesEveryMatrixTheType) {
  const auto out = tinfer::testing::temp_path("demo-pure.gguf");
  const auto r = run_program("tinfer-quantize", "--pure " + shell_quote(kDemo.string()) + " " + shell_quote(out.string()) + " Q4_0", true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const GgufFile src(kDemo.string()), f(out.string());
  EXPECT_EQ(f.get_u32("general.file_type"), 2u);
  for (const auto& t : f.tensors()) {
    if (t.dims.size() == 2 && t.name != "position_embd.weight") {
      EXPECT_EQ(t.type, DType::Q4_0) << t.name;
    }
  }
  expect_tensors_from(src, f);
  std::filesystem::remove(out);
}

// As llama-quantize: an already quantized tensor is not quantized again unless asked for.
TEST_F(QuantizeProgram, RequantizingNeedsAllowRequantize) {
  const auto q8 = tinfer::testing::temp_path("demo-q8.gguf"), q4 = tinfer::testing::temp_path("demo-q4-from-q8.gguf");
  auto r = run_program("tinfer-quantize", shell_quote(kDemo.string()) + " " + shell_quote(q8.string()) + " Q8_0", true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = run_program("tinfer-quantize", shell_quote(q8.string()) + " " + shell_quote(q4.string()) + " Q4_0", true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("already quantized (Q8_0)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--allow-requantize"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(q4));
  // The same type needs no re-quantizing: tensors are copied.
  r = run_program("tinfer-quantize", shell_quote(q8.string()) + " " + shell_quote(q4.string()) + " Q8_0", true);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = run_program("tinfer-quantize", "--allow-requantize " + shell_quote(q8.string()) + " " + shell_quote(q4.string()) + " Q4_0", true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const GgufFile src(q8.string()), f(q4.string());
  expect_tensors_from(src, f);
  std::filesystem::remove(q8);
  std::filesystem::remove(q4);
}

TEST_F(QuantizeProgram, Stories260KRowsOf172FallBack) {
  const auto path = tinfer::testing::assets_dir() / "gguf" / "stories260K-f32.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "asset absent: " << path;
  const auto out = tinfer::testing::temp_path("stories-q4km.gguf");
  const auto r = run_program("tinfer-quantize", shell_quote(path.string()) + " " + shell_quote(out.string()) + " Q4_K_M", true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("fall back"), std::string::npos) << r.out;
  const GgufFile src(path.string()), f(out.string());
  const auto ty = types_of(f);
  // Rows of 64 do not fit Q4_K's 256: Q4_K -> Q5_0, Q6_K -> Q8_0; rows of 172 fit nothing -> F16.
  EXPECT_EQ(ty.at("output.weight"), DType::Q8_0);
  EXPECT_EQ(ty.at("token_embd.weight"), DType::Q5_0);
  for (int l = 0; l < 5; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    EXPECT_EQ(ty.at(p + "ffn_down.weight"), DType::F16) << l;
    EXPECT_EQ(ty.at(p + "attn_v.weight"), l == 2 || l == 4 ? DType::Q8_0 : DType::Q5_0) << l;
    EXPECT_EQ(ty.at(p + "attn_q.weight"), DType::Q5_0) << l;
  }
  expect_tensors_from(src, f);
  std::filesystem::remove(out);
}

TEST_F(QuantizeProgram, HuggingFaceFolderInputEqualsItsGguf) {
  const auto folder = tinfer::testing::assets_dir() / "hf" / "tiny-gpt2-f32";
  const auto gguf = tinfer::testing::assets_dir() / "gguf" / "tiny-gpt2-f32.gguf";
  if (!std::filesystem::exists(folder) || !std::filesystem::exists(gguf)) GTEST_SKIP() << "assets absent: " << folder;
  const auto out = tinfer::testing::temp_path("hf-q8.gguf");
  const auto r = run_program("tinfer-quantize", shell_quote(folder.string()) + " " + shell_quote(out.string()) + " Q8_0", true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const GgufFile src(gguf.string()), f(out.string());
  // The folder holds the same float32 weights as the GGUF file, so each tensor the GGUF file
  // has quantizes to the same bytes.
  int n = 0;
  for (const auto& t : f.tensors()) {
    const auto* s = src.find_tensor(t.name);
    ASSERT_NE(s, nullptr) << t.name;
    const auto want = t.type == s->type ? std::vector<std::byte>(src.tensor_data(*s).begin(), src.tensor_data(*s).end())
                                        : q::quantize_matrix(t.type, as_f32(src, *s), s->n_rows(), s->row_length());
    const auto got = f.tensor_data(t);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin(), want.end())) << t.name;
    ++n;
  }
  EXPECT_GT(n, 10);
  std::filesystem::remove(out);
}

TEST_F(QuantizeProgram, GptqRunsOnTheDemoModel) {
  const auto calib = tinfer::testing::temp_path("calib.txt");
  {
    std::ofstream c(calib);
    for (int i = 0; i < 6; ++i)
      c << "And God said, Let there be light: and there was light. And God saw the light, that it was good: and God divided the "
           "light from the darkness. And God called the light Day, and the darkness he called Night. And the evening and the "
           "morning were the first day.\n";
  }
  const auto out = tinfer::testing::temp_path("demo-gptq.gguf");
  const auto r = run_program("tinfer-quantize", "--gptq --calib " + shell_quote(calib.string()) + " --calib-chunks 4 --calib-ctx 64 " +
                                                    shell_quote(kDemo.string()) + " " + shell_quote(out.string()) + " Q4_0", true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("GPTQ calibration: 4 chunks of 64 tokens"), std::string::npos) << r.out;
  const GgufFile src(kDemo.string()), f(out.string());
  int gptq_tensors = 0;
  for (const auto& t : f.tensors()) {
    const auto& s = src.tensor(t.name);
    if (t.type == s.type) continue;
    const auto w = as_f32(src, s), got = as_f32(f, t);
    const auto rtn_data = q::quantize_matrix(t.type, w, s.n_rows(), s.row_length());
    std::vector<float> rtn(w.size());
    q::dequantize_row(t.type, rtn_data.data(), rtn.data(), static_cast<std::int64_t>(rtn.size()));
    double e_got = 0, e_rtn = 0, n2 = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      e_got += (got[i] - w[i]) * (got[i] - w[i]);
      e_rtn += (rtn[i] - w[i]) * (rtn[i] - w[i]);
      n2 += w[i] * w[i];
    }
    const auto data = f.tensor_data(t);
    // The embedding is tied to the classifier (Q6_K in the Q4_0 mix): GPTQ'd as the classifier.
    ++gptq_tensors;
    EXPECT_FALSE(std::equal(data.begin(), data.end(), rtn_data.begin(), rtn_data.end())) << t.name << " should differ from RTN";
    // GPTQ trades weight error for output error, but it stays of RTN's order (a broken
    // calibration, e.g. zero inputs, would zero whole columns: relative error near 1).
    EXPECT_LT(e_got, 3.0 * e_rtn) << t.name;
    EXPECT_LT(std::sqrt(e_got / n2), 0.3) << t.name;
  }
  EXPECT_EQ(gptq_tensors, 17);  // 4 layers x (qkv, attn out, ffn up, ffn down) + the tied embedding
  std::filesystem::remove(out);
  std::filesystem::remove(calib);
}

}  // namespace
