// The GPTQ calibration driver (models/gptq_calibration.hpp): the collector waits for every row of
// a chunk before stopping a pass, chunks are cut as documented, and the first matrix of the
// model is quantized from exactly the Hessian of its real inputs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <tinfer/tinfer.hpp>

namespace {

using tinfer::DType;
using tinfer::LinearSlot;
namespace q = tinfer::quant;

const std::filesystem::path kDemo = std::filesystem::path(TINFER_SOURCE_DIR) / "examples" / "demo-model" / "tinfer-demo-kjv.gguf";

constexpr const char* kText =
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon the "
    "face of the deep. And the Spirit of God moved upon the face of the waters. And God said, Let there be light: and there was "
    "light. And God saw the light, that it was good: and God divided the light from the darkness. And God called the light Day, "
    "and the darkness he called Night. And the evening and the morning were the first day.\n";

// forward_batch may deliver a chunk's rows of one slot in several groups (row groups of
// kMaxRows), interleaved with later slots: stopping at the first later slot would lose rows.
TEST(GptqCalibration, CollectorStopsOnlyAfterTheWholeChunk) {
  q::HessianAccumulator acc(2);
  tinfer::detail::GptqCollector col(1, LinearSlot::AttnOut, acc);
  const float x[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  col.start_chunk(5);
  col.on_input(0, LinearSlot::FfnDown, x, 5, 2);  // an earlier slot: ignored
  col.on_input(1, LinearSlot::AttnOut, x, 3, 2);
  EXPECT_NO_THROW(col.on_input(1, LinearSlot::FfnUp, x, 3, 2));  // 2 rows still to come
  col.on_input(1, LinearSlot::AttnOut, x + 6, 2, 2);
  EXPECT_THROW(col.on_input(1, LinearSlot::FfnUp, x, 5, 2), tinfer::detail::GptqStopForward);
  EXPECT_EQ(acc.n_samples(), 5);
  // H = 2/5 * sum x x^T over the five rows (1,2) (3,4) (5,6) (7,8) (9,10).
  const Eigen::MatrixXd H = acc.hessian();
  EXPECT_DOUBLE_EQ(H(0, 0), 2.0 / 5 * (1 + 9 + 25 + 49 + 81));
  EXPECT_DOUBLE_EQ(H(0, 1), 2.0 / 5 * (2 + 12 + 30 + 56 + 90));
  EXPECT_DOUBLE_EQ(H(1, 1), 2.0 / 5 * (4 + 16 + 36 + 64 + 100));
}

TEST(GptqCalibration, ChunksAreSpreadEvenlyOverTheText) {
  const tinfer::io::GgufFile f(kDemo.string());
  const auto tok = tinfer::load_gguf_tokenizer(f);
  const auto tokens = tok->encode(kText);
  ASSERT_GE(tokens.size(), 60u);
  const int ctx = 12;
  const std::size_t avail = tokens.size() / ctx;
  const auto chunks = tinfer::gptq_calibration_chunks(*tok, kText, 3, ctx);
  ASSERT_EQ(chunks.size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) {
    const std::size_t c = k * avail / 3;  // the demo tokenizer adds no BOS: chunks are plain slices
    EXPECT_EQ(chunks[k], std::vector<std::int32_t>(tokens.begin() + static_cast<std::ptrdiff_t>(c * ctx),
                                                   tokens.begin() + static_cast<std::ptrdiff_t>((c + 1) * ctx)))
        << k;
  }
  EXPECT_EQ(tinfer::gptq_calibration_chunks(*tok, kText, 1000, ctx).size(), avail);  // at most what the text holds
  EXPECT_THROW(tinfer::gptq_calibration_chunks(*tok, "In the", 4, ctx), tinfer::InvalidArgument);
}

// blk.0's QKV input is LayerNorm(embedding + position): no weight matrix before it. With the
// embedding kept as stored, the driver's first step must equal GPTQ on the Hessian of the inputs
// recorded from the unmodified model, byte for byte; later matrices are all returned, and nothing else.
TEST(GptqCalibration, FirstMatrixUsesTheHessianOfItsRealInputs) {
  const auto file = std::make_shared<const tinfer::io::GgufFile>(kDemo.string());
  const auto tok = tinfer::load_gguf_tokenizer(*file);
  const auto chunks = tinfer::gptq_calibration_chunks(*tok, kText, 2, 32);
  ASSERT_EQ(chunks.size(), 2u);
  std::map<std::string, DType> target;
  for (const auto& t : file->tensors()) target[t.name] = t.type;
  for (int l = 0; l < 4; ++l)
    for (const char* m : {"attn_qkv", "attn_output", "ffn_up", "ffn_down"}) target["blk." + std::to_string(l) + "." + m + ".weight"] = DType::Q4_0;
  const auto out = tinfer::gptq_quantize_model(file, target, chunks);
  EXPECT_EQ(out.size(), 16u);
  for (const auto& [name, data] : out) {
    const auto& t = file->tensor(name);
    EXPECT_EQ(data.size(), static_cast<std::size_t>(t.n_rows() * t.row_length() / 32 * 18)) << name;
  }

  const auto model = tinfer::load_gpt2_gguf(file);
  struct Recorder : tinfer::LinearObserver {
    q::HessianAccumulator acc{256};
    void on_input(int l, LinearSlot s, const float* x, std::int64_t n, std::int64_t) override {
      if (l == 0 && s == LinearSlot::AttnQKV) acc.add(x, n);
    }
  } rec;
  tinfer::Gpt2Session s(model, tinfer::SessionOptions{.context = 32});
  s.set_linear_observer(&rec);
  for (const auto& c : chunks) {
    s.truncate(0);
    model.forward_batch(s, c, 0);
  }
  const auto& t = file->tensor("blk.0.attn_qkv.weight");
  std::vector<float> w(static_cast<std::size_t>(t.n_rows() * t.row_length()));
  q::dequantize_row(t.type, file->tensor_data(t).data(), w.data(), static_cast<std::int64_t>(w.size()));
  const auto want = q::gptq_quantize(DType::Q4_0, w, t.n_rows(), t.row_length(), rec.acc.hessian());
  EXPECT_EQ(out.at("blk.0.attn_qkv.weight"), want.data);
}

TEST(GptqCalibration, RejectsBadInput) {
  const auto file = std::make_shared<const tinfer::io::GgufFile>(kDemo.string());
  std::map<std::string, DType> target;
  for (const auto& t : file->tensors()) target[t.name] = t.type;
  EXPECT_THROW(tinfer::gptq_quantize_model(file, target, {}), tinfer::InvalidArgument);
  EXPECT_THROW(tinfer::gptq_quantize_model(file, target, {std::vector<std::int32_t>(257, 1)}), tinfer::InvalidArgument);  // context 256
}

}  // namespace
