// GgufFile on the real GGUF assets: metadata, hyperparameters, tensor names/shapes/types, data
// placement, typed-getter errors.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "io/gguf_test_util.hpp"
#include "tinfer/io/gguf.hpp"

namespace {

using tinfer::DType;
using tinfer::io::GgufArray;
using tinfer::io::GgufFile;
using tinfer::io::GgufType;
using tinfer::testing::gguf_asset;

TEST(GgufRead, EveryRealFileParsesWithDataInsideTheFile) {
  const auto files = tinfer::testing::all_real_gguf_files();
  if (files.empty()) GTEST_SKIP() << "no GGUF assets; set TINFER_ASSETS";
  EXPECT_EQ(files.size(), 22u);
  for (const auto& p : files) {
    SCOPED_TRACE(p.string());
    const GgufFile f(p.string());
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_EQ(f.data_offset() % 32, 0u);
    EXPECT_TRUE(f.contains("general.architecture"));
    std::uint64_t end = 0;
    for (const auto& t : f.tensors()) {
      const auto data = f.tensor_data(t);
      EXPECT_EQ(data.size(), t.n_bytes);
      EXPECT_EQ(data.data(), f.bytes().data() + f.data_offset() + t.offset);
      EXPECT_EQ(f.find_tensor(t.name), &t);
      end = std::max(end, f.data_offset() + t.offset + t.n_bytes);
    }
    EXPECT_LE(end, f.bytes().size());
  }
}

TEST(GgufRead, Stories260K) {
  const auto path = gguf_asset("stories260K-f32.gguf");
  TINFER_REQUIRE_FILE(path);
  const auto f = GgufFile::open(path.string());
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_u32("llama.embedding_length"), 64u);
  EXPECT_EQ(f.get_u32("llama.feed_forward_length"), 172u);
  EXPECT_EQ(f.get_u32("llama.block_count"), 5u);
  EXPECT_EQ(f.get_u32("llama.attention.head_count"), 8u);
  EXPECT_EQ(f.get_u32("llama.attention.head_count_kv"), 4u);
  EXPECT_EQ(f.get_u32("llama.context_length"), 128u);  // the converter's choice (README)
  EXPECT_FLOAT_EQ(f.get_f32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 64);
  EXPECT_DOUBLE_EQ(f.get_float("llama.attention.layer_norm_rms_epsilon"), static_cast<double>(1e-5f));

  const auto tokens = f.get_array_of<std::string>("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[2], "</s>");
  EXPECT_EQ(f.get_array_of<float>("tokenizer.ggml.scores").size(), 512u);
  EXPECT_EQ(f.get_array("tokenizer.ggml.token_type").type, GgufType::I32);

  EXPECT_EQ(f.tensors().size(), 2u + 1u + 5u * 9u);  // embeddings, output, final norm, 9 per layer
  for (const auto& t : f.tensors()) EXPECT_EQ(t.type, DType::F32) << t.name;
  const auto& emb = f.tensor("token_embd.weight");
  EXPECT_EQ(emb.dims, (std::vector<std::int64_t>{64, 512}));
  EXPECT_EQ(emb.row_length(), 64);
  EXPECT_EQ(emb.n_rows(), 512);
  EXPECT_EQ(emb.row_bytes(), 256u);
  EXPECT_EQ(f.tensor("blk.0.ffn_down.weight").dims, (std::vector<std::int64_t>{172, 64}));
  EXPECT_EQ(f.tensor("blk.4.attn_k.weight").dims, (std::vector<std::int64_t>{64, 32}));  // 4 KV heads of 8
  EXPECT_EQ(f.tensor("output_norm.weight").dims, (std::vector<std::int64_t>{64}));
}

// tiny-llama-<TYPE>: every weight matrix (embeddings and output included) in TYPE, norms F32.
class TinyLlama : public ::testing::TestWithParam<const char*> {};

TEST_P(TinyLlama, HyperparametersAndTensorTypes) {
  const std::string type_name = GetParam();
  const auto path = gguf_asset("tiny-llama-" + type_name + ".gguf");
  TINFER_REQUIRE_FILE(path);
  const GgufFile f(path.string());
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_u32("llama.embedding_length"), 256u);
  EXPECT_EQ(f.get_u32("llama.block_count"), 2u);
  EXPECT_EQ(f.get_u32("llama.attention.head_count"), 8u);
  EXPECT_EQ(f.get_u32("llama.attention.head_count_kv"), 4u);
  EXPECT_EQ(f.get_u32("llama.feed_forward_length"), 768u);
  EXPECT_EQ(f.get_u32("llama.context_length"), 256u);
  EXPECT_EQ(f.get_u32("llama.vocab_size"), 512u);
  EXPECT_EQ(f.get_array_of<std::string>("tokenizer.ggml.tokens").size(), 512u);

  const DType want = type_name == "f32" ? DType::F32 : [&] {
    for (DType t : {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                    DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K})
      if (tinfer::dtype_name(t) == type_name) return t;
    ADD_FAILURE() << "unknown type " << type_name;
    return DType::F32;
  }();

  ASSERT_EQ(f.tensors().size(), 3u + 2u * 9u);
  std::set<std::string> names;
  for (const auto& t : f.tensors()) {
    names.insert(t.name);
    const bool is_norm = t.name.find("norm") != std::string::npos;
    EXPECT_EQ(t.type, is_norm ? DType::F32 : want) << t.name;
    EXPECT_EQ(t.dims.size(), is_norm ? 1u : 2u) << t.name;
  }
  for (const char* n : {"token_embd.weight", "output.weight", "output_norm.weight", "blk.1.attn_q.weight",
                        "blk.1.attn_k.weight", "blk.1.attn_v.weight", "blk.1.attn_output.weight",
                        "blk.1.ffn_gate.weight", "blk.1.ffn_up.weight", "blk.1.ffn_down.weight",
                        "blk.1.attn_norm.weight", "blk.1.ffn_norm.weight"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_EQ(f.tensor("token_embd.weight").dims, (std::vector<std::int64_t>{256, 512}));
  EXPECT_EQ(f.tensor("blk.0.attn_q.weight").dims, (std::vector<std::int64_t>{256, 256}));
  EXPECT_EQ(f.tensor("blk.0.attn_k.weight").dims, (std::vector<std::int64_t>{256, 128}));
  EXPECT_EQ(f.tensor("blk.0.ffn_up.weight").dims, (std::vector<std::int64_t>{256, 768}));
  EXPECT_EQ(f.tensor("blk.0.ffn_down.weight").dims, (std::vector<std::int64_t>{768, 256}));
  const auto info = *tinfer::dtype_info(want);
  EXPECT_EQ(f.tensor("token_embd.weight").n_bytes, 256u * 512u / info.block_size * info.block_bytes);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, TinyLlama,
                         ::testing::Values("f32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K",
                                           "Q3_K", "Q4_K", "Q5_K", "Q6_K"));

// tiny-gpt2-<TYPE>: GPT-2 layout (fused QKV, biases, learned positions, tied output).
class TinyGpt2 : public ::testing::TestWithParam<const char*> {};

TEST_P(TinyGpt2, HyperparametersAndTensorTypes) {
  const std::string type_name = GetParam();
  const auto path = gguf_asset("tiny-gpt2-" + type_name + ".gguf");
  TINFER_REQUIRE_FILE(path);
  const GgufFile f(path.string());
  EXPECT_EQ(f.get_string("general.architecture"), "gpt2");
  EXPECT_EQ(f.get_u32("gpt2.embedding_length"), 256u);
  EXPECT_EQ(f.get_u32("gpt2.block_count"), 2u);
  EXPECT_EQ(f.get_u32("gpt2.attention.head_count"), 4u);
  EXPECT_EQ(f.get_u32("gpt2.feed_forward_length"), 1024u);
  EXPECT_EQ(f.get_u32("gpt2.context_length"), 256u);
  const auto tokens = f.get_array_of<std::string>("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 1281u);
  EXPECT_EQ(tokens.back(), "<|endoftext|>");
  EXPECT_EQ(f.get_array_of<std::string>("tokenizer.ggml.merges").size(), 1024u);

  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied to token_embd
  EXPECT_EQ(f.tensor("token_embd.weight").dims, (std::vector<std::int64_t>{256, 1281}));
  EXPECT_EQ(f.tensor("position_embd.weight").dims, (std::vector<std::int64_t>{256, 256}));
  EXPECT_EQ(f.tensor("blk.0.attn_qkv.weight").dims, (std::vector<std::int64_t>{256, 768}));
  EXPECT_EQ(f.tensor("blk.0.attn_qkv.bias").dims, (std::vector<std::int64_t>{768}));
  EXPECT_EQ(f.tensor("blk.1.ffn_down.weight").dims, (std::vector<std::int64_t>{1024, 256}));
  const std::string want = type_name == "f32" ? "F32" : type_name;
  for (const auto& t : f.tensors()) {
    // Quantized: the 2-D weights except the position table; 1-D norms and biases stay F32.
    const bool quantized = t.dims.size() == 2 && t.name != "position_embd.weight";
    EXPECT_EQ(tinfer::dtype_name(t.type), quantized ? want : "F32") << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, TinyGpt2, ::testing::Values("f32", "F16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"));

TEST(GgufRead, VocabOnlyFiles) {
  const auto spm = tinfer::testing::assets_dir() / "llamacpp-vocab" / "ggml-vocab-llama-spm.gguf";
  TINFER_REQUIRE_FILE(spm);
  const GgufFile f(spm.string());
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_array_of<std::string>("tokenizer.ggml.tokens").size(), 32000u);
  EXPECT_EQ(f.get_array_of<float>("tokenizer.ggml.scores").size(), 32000u);
  EXPECT_EQ(f.get_array_of<std::int32_t>("tokenizer.ggml.token_type").size(), 32000u);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));

  const GgufFile g((tinfer::testing::assets_dir() / "llamacpp-vocab" / "ggml-vocab-gpt-2.gguf").string());
  EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "gpt2");
  const auto tokens = g.get_array_of<std::string>("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 50257u);
  EXPECT_EQ(tokens[50256], "<|endoftext|>");
  const auto merges = g.get_array_of<std::string>("tokenizer.ggml.merges");
  ASSERT_EQ(merges.size(), 50000u);
  EXPECT_EQ(merges[0], "\xC4\xA0 t");  // "Ġ t", GPT-2's first merge
}

TEST(GgufRead, GetterErrorsNameTheKey) {
  const auto path = gguf_asset("tiny-llama-Q4_K.gguf");
  TINFER_REQUIRE_FILE(path);
  const GgufFile f(path.string());
  EXPECT_EQ(f.find("no.such.key"), nullptr);
  auto message_of = [](auto&& fn) -> std::string {
    try {
      fn();
    } catch (const tinfer::FormatError& e) {
      return e.what();
    }
    return "(no FormatError)";
  };
  EXPECT_NE(message_of([&] { f.get_u32("no.such.key"); }).find("'no.such.key' is missing"), std::string::npos);
  const auto wrong = message_of([&] { f.get_i32("llama.embedding_length"); });
  EXPECT_NE(wrong.find("'llama.embedding_length' has type uint32, expected int32"), std::string::npos) << wrong;
  EXPECT_NE(message_of([&] { f.get_string("llama.embedding_length"); }).find("expected string"), std::string::npos);
  EXPECT_NE(message_of([&] { f.get_int("general.name"); }).find("expected an integer"), std::string::npos);
  EXPECT_NE(message_of([&] { f.get_float("llama.block_count"); }).find("expected float32 or float64"),
            std::string::npos);
  EXPECT_NE(message_of([&] { f.get_array_of<float>("tokenizer.ggml.tokens"); }).find("array of string"),
            std::string::npos);
  EXPECT_NE(message_of([&] { f.tensor("blk.9.attn_q.weight"); }).find("'blk.9.attn_q.weight' is missing"),
            std::string::npos);
  EXPECT_THROW(GgufFile("/nonexistent/dir/model.gguf"), tinfer::IoError);
}

TEST(GgufRead, MovedFileKeepsTensorViews) {
  const auto path = gguf_asset("tiny-llama-Q8_0.gguf");
  TINFER_REQUIRE_FILE(path);
  GgufFile a(path.string());
  const auto before = a.tensor_data("token_embd.weight");
  GgufFile b = std::move(a);
  EXPECT_EQ(b.tensor_data("token_embd.weight").data(), before.data());
}

}  // namespace
