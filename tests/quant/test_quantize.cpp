// Round-to-nearest quantizers: bit-exact with llama.cpp's reference quantization (files made by
// llama-quantize --pure from the same F32 weights), and round-trip properties that need no asset.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <tinfer/tinfer.hpp>

#include "test_assets.hpp"

namespace {

using tinfer::DType;
namespace q = tinfer::quant;

std::vector<float> tensor_f32(const tinfer::io::GgufFile& f, const tinfer::io::GgufTensorInfo& t) {
  std::vector<float> v(static_cast<std::size_t>(t.row_length() * t.n_rows()));
  q::dequantize_row(t.type, f.tensor_data(t).data(), v.data(), static_cast<std::int64_t>(v.size()));
  return v;
}

// Every weight matrix of <model>-<TYPE>.gguf equals tinfer's quantization of the same tensor of
// the F32 file, byte for byte.
void expect_bit_exact(const std::string& model, const std::string& type_name, DType type) {
  const auto dir = tinfer::testing::assets_dir() / "gguf";
  const auto src_path = dir / (model + "-f32.gguf"), ref_path = dir / (model + "-" + type_name + ".gguf");
  if (!std::filesystem::exists(src_path) || !std::filesystem::exists(ref_path)) GTEST_SKIP() << "assets absent: " << ref_path;
  const tinfer::io::GgufFile src(src_path.string()), ref(ref_path.string());
  int compared = 0;
  for (const auto& rt : ref.tensors()) {
    if (rt.type != type) continue;
    const auto& st = src.tensor(rt.name);
    ASSERT_EQ(st.dims, rt.dims) << rt.name;
    const auto x = tensor_f32(src, st);
    const auto got = q::quantize_matrix(type, x, st.n_rows(), st.row_length());
    const auto want = ref.tensor_data(rt);
    ASSERT_EQ(got.size(), want.size()) << rt.name;
    std::size_t first_diff = got.size();
    for (std::size_t i = 0; i < got.size(); ++i)
      if (got[i] != want[i]) {
        first_diff = i;
        break;
      }
    EXPECT_EQ(first_diff, got.size()) << rt.name << " (" << type_name << ") differs at byte " << first_diff << " of " << got.size()
                                      << " (block " << first_diff / tinfer::dtype_info(type)->block_bytes << ")";
    ++compared;
  }
  EXPECT_GE(compared, 1) << "no " << type_name << " tensor in " << ref_path;
}

struct Case {
  const char* model;
  const char* name;
  DType type;
};

class QuantizeBitExact : public ::testing::TestWithParam<Case> {};

TEST_P(QuantizeBitExact, MatchesLlamaQuantize) { expect_bit_exact(GetParam().model, GetParam().name, GetParam().type); }

INSTANTIATE_TEST_SUITE_P(
    Reference, QuantizeBitExact,
    ::testing::Values(Case{"tiny-llama", "F16", DType::F16}, Case{"tiny-llama", "BF16", DType::BF16}, Case{"tiny-llama", "Q8_0", DType::Q8_0},
                      Case{"tiny-llama", "Q4_0", DType::Q4_0}, Case{"tiny-llama", "Q4_1", DType::Q4_1}, Case{"tiny-llama", "Q5_0", DType::Q5_0},
                      Case{"tiny-llama", "Q5_1", DType::Q5_1}, Case{"tiny-llama", "Q2_K", DType::Q2_K}, Case{"tiny-llama", "Q3_K", DType::Q3_K},
                      Case{"tiny-llama", "Q4_K", DType::Q4_K}, Case{"tiny-llama", "Q5_K", DType::Q5_K}, Case{"tiny-llama", "Q6_K", DType::Q6_K},
                      Case{"tiny-gpt2", "F16", DType::F16}, Case{"tiny-gpt2", "Q8_0", DType::Q8_0}, Case{"tiny-gpt2", "Q4_0", DType::Q4_0},
                      Case{"tiny-gpt2", "Q4_K", DType::Q4_K}, Case{"tiny-gpt2", "Q6_K", DType::Q6_K}),
    [](const auto& info) { return std::string(info.param.model == std::string("tiny-llama") ? "llama_" : "gpt2_") + info.param.name; });

}  // namespace
