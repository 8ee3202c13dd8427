// GPTQ (quant/gptq.hpp): it lowers the layer output error ||W X - Q X|| below round-to-nearest
// on real activations (the bundled demo model over real text), the blocks it writes dequantize
// to exactly the values it chose, and with a diagonal Hessian it is never worse than RTN.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include <tinfer/tinfer.hpp>

#include "test_assets.hpp"

namespace {

using tinfer::DType;
namespace q = tinfer::quant;

const std::filesystem::path kDemo = std::filesystem::path(TINFER_SOURCE_DIR) / "examples" / "demo-model" / "tinfer-demo-kjv.gguf";

// Public-domain text in the demo model's domain (KJV, Psalm 23 and Ecclesiastes 3), to produce
// real activations.
constexpr const char* kText =
    "The LORD is my shepherd; I shall not want.\nHe maketh me to lie down in green pastures: he leadeth me beside the still waters.\n"
    "He restoreth my soul: he leadeth me in the paths of righteousness for his name's sake.\n"
    "Yea, though I walk through the valley of the shadow of death, I will fear no evil: for thou art with me; thy rod and thy staff "
    "they comfort me.\nThou preparest a table before me in the presence of mine enemies: thou anointest my head with oil; my cup "
    "runneth over.\nSurely goodness and mercy shall follow me all the days of my life: and I will dwell in the house of the LORD for "
    "ever.\nTo every thing there is a season, and a time to every purpose under the heaven:\nA time to be born, and a time to die; a "
    "time to plant, and a time to pluck up that which is planted;\nA time to kill, and a time to heal; a time to break down, and a "
    "time to build up;\nA time to weep, and a time to laugh; a time to mourn, and a time to dance;\nA time to cast away stones, and "
    "a time to gather stones together; a time to embrace, and a time to refrain from embracing;\nA time to get, and a time to lose; "
    "a time to keep, and a time to cast away;\nA time to rend, and a time to sew; a time to keep silence, and a time to speak;\nA "
    "time to love, and a time to hate; a time of war, and a time of peace.\n";

struct Recorder : tinfer::LinearObserver {
  int layer;
  tinfer::LinearSlot slot;
  std::vector<float> rows;
  std::int64_t cols = 0;
  Recorder(int l, tinfer::LinearSlot s) : layer(l), slot(s) {}
  void on_input(int l, tinfer::LinearSlot s, const float* x, std::int64_t n, std::int64_t c) override {
    if (l != layer || s != slot) return;
    rows.insert(rows.end(), x, x + n * c);
    cols = c;
  }
};

// ||(W - Q) X^T||_F^2 with X's rows the inputs, in float64.
double output_error(const std::vector<float>& W, const std::vector<float>& Q, std::int64_t rows, std::int64_t cols, const std::vector<float>& X) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const std::int64_t n = static_cast<std::int64_t>(X.size()) / cols;
  const Eigen::MatrixXd D = (Eigen::Map<const RowMat>(W.data(), rows, cols) - Eigen::Map<const RowMat>(Q.data(), rows, cols)).cast<double>();
  const Eigen::MatrixXd Xd = Eigen::Map<const RowMat>(X.data(), n, cols).cast<double>();
  return (D * Xd.transpose()).squaredNorm();
}

std::vector<float> rtn_values(DType type, const std::vector<float>& W, std::int64_t rows, std::int64_t cols) {
  const auto data = q::quantize_matrix(type, W, rows, cols);
  std::vector<float> v(W.size());
  q::dequantize_row(type, data.data(), v.data(), static_cast<std::int64_t>(v.size()));
  return v;
}

TEST(Gptq, LowersLayerOutputErrorBelowRoundToNearestOnRealActivations) {
  auto file = std::make_shared<const tinfer::io::GgufFile>(kDemo.string());
  const auto model = tinfer::load_gpt2_gguf(file);
  const auto tok = tinfer::load_gguf_tokenizer(*file);
  const auto tokens = tok->encode(kText);
  ASSERT_GE(tokens.size(), 200u);
  struct Target {
    int layer;
    tinfer::LinearSlot slot;
    const char* name;
  };
  for (const Target t : {Target{0, tinfer::LinearSlot::FfnUp, "blk.0.ffn_up.weight"}, Target{1, tinfer::LinearSlot::AttnQKV, "blk.1.attn_qkv.weight"},
                         Target{2, tinfer::LinearSlot::FfnDown, "blk.2.ffn_down.weight"}}) {
    Recorder rec(t.layer, t.slot);
    tinfer::Gpt2Session s(model, 256);
    s.set_linear_observer(&rec);
    const std::size_t n = std::min<std::size_t>(tokens.size(), 256);
    for (std::size_t i = 0; i < n; ++i) model.forward(s, tokens[i], static_cast<int>(i));
    const auto& info = file->tensor(t.name);
    const std::int64_t rows = info.n_rows(), cols = info.row_length();
    ASSERT_EQ(rec.cols, cols);
    std::vector<float> W(static_cast<std::size_t>(rows * cols));
    q::dequantize_row(info.type, file->tensor_data(info).data(), W.data(), static_cast<std::int64_t>(W.size()));
    q::HessianAccumulator acc(cols);
    acc.add(rec.rows.data(), static_cast<std::int64_t>(rec.rows.size()) / cols);
    const Eigen::MatrixXd H = acc.hessian();
    for (const DType type : {DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q3_K, DType::Q2_K}) {
      for (const bool act_order : {false, true}) {
        q::GptqOptions opt;
        opt.act_order = act_order;
        const auto res = q::gptq_quantize(type, W, rows, cols, H, opt);
        const double e_gptq = output_error(W, res.values, rows, cols, rec.rows);
        const double e_rtn = output_error(W, rtn_values(type, W, rows, cols), rows, cols, rec.rows);
        // GPTQ minimizes exactly this quantity; on a few hundred real inputs it should win clearly.
        std::printf("  %s %s%s: GPTQ/RTN output error %.3f\n", t.name, std::string(tinfer::dtype_name(type)).c_str(),
                    act_order ? " act-order" : "", e_gptq / e_rtn);
        EXPECT_LT(e_gptq, 0.9 * e_rtn) << t.name << " " << tinfer::dtype_name(type) << (act_order ? " act-order" : "");
      }
    }
  }
}

// Q3_K's sixteen sub-block scales, fitted at the group's start, are stale by the time GPTQ reaches
// the later sub-blocks; re-fitting each when reached lowered the output error by 10-20% on every
// layer measured (training text, in and out of sample). Required here: lower on each matrix.
TEST(Gptq, Q3KSubBlockRefitLowersTheOutputError) {
  auto file = std::make_shared<const tinfer::io::GgufFile>(kDemo.string());
  const auto model = tinfer::load_gpt2_gguf(file);
  const auto tok = tinfer::load_gguf_tokenizer(*file);
  const auto tokens = tok->encode(kText);
  for (const auto& [layer, slot, name] : {std::tuple{0, tinfer::LinearSlot::FfnUp, "blk.0.ffn_up.weight"},
                                          std::tuple{2, tinfer::LinearSlot::FfnDown, "blk.2.ffn_down.weight"}}) {
    Recorder rec(layer, slot);
    tinfer::Gpt2Session s(model, 256);
    s.set_linear_observer(&rec);
    model.forward_batch(s, std::span<const std::int32_t>(tokens.data(), std::min<std::size_t>(tokens.size(), 256)), 0);
    const auto& info = file->tensor(name);
    const std::int64_t rows = info.n_rows(), cols = info.row_length();
    std::vector<float> W(static_cast<std::size_t>(rows * cols));
    q::dequantize_row(info.type, file->tensor_data(info).data(), W.data(), static_cast<std::int64_t>(W.size()));
    q::HessianAccumulator acc(cols);
    acc.add(rec.rows.data(), static_cast<std::int64_t>(rec.rows.size()) / cols);
    const Eigen::MatrixXd H = acc.hessian();
    q::GptqOptions stale;
    stale.refit_sub_scales = false;
    const double e_stale = output_error(W, q::gptq_quantize(DType::Q3_K, W, rows, cols, H, stale).values, rows, cols, rec.rows);
    const double e_refit = output_error(W, q::gptq_quantize(DType::Q3_K, W, rows, cols, H).values, rows, cols, rec.rows);
    std::printf("  %s Q3_K: refit/stale output error %.3f\n", name, e_refit / e_stale);
    EXPECT_LT(e_refit, e_stale) << name;
  }
}

TEST(Gptq, WrittenBlocksDequantizeToTheChosenValues) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const std::int64_t rows = 6, cols = 512, n = 300;
  std::vector<float> W(static_cast<std::size_t>(rows * cols)), X(static_cast<std::size_t>(n * cols));
  for (auto& v : W) v = 0.05f * nd(rng);
  for (std::int64_t s = 0; s < n; ++s)  // correlated inputs, as real activations are
    for (std::int64_t c = 0; c < cols; ++c) X[s * cols + c] = nd(rng) + (c > 0 ? 0.5f * X[s * cols + c - 1] : 0.0f);
  q::HessianAccumulator acc(cols);
  acc.add(X.data(), n);
  const Eigen::MatrixXd H = acc.hessian();
  tinfer::io::GgufWriter w;
  std::vector<std::pair<DType, std::vector<float>>> chosen;
  for (const DType type : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K,
                           DType::Q5_K, DType::Q6_K}) {
    q::GptqOptions opt;
    opt.group_size = type == DType::Q4_0 ? 128 : 0;  // also a group of several blocks
    const auto res = q::gptq_quantize(type, W, rows, cols, H, opt);
    w.add_tensor(std::string(tinfer::dtype_name(type)), {cols, rows}, type, res.data);
    chosen.emplace_back(type, res.values);
  }
  const auto f = tinfer::io::GgufFile::from_bytes(w.to_bytes());
  for (const auto& [type, values] : chosen) {
    const auto& t = f.tensor(std::string(tinfer::dtype_name(type)));
    std::vector<float> back(values.size());
    q::dequantize_row(t.type, f.tensor_data(t).data(), back.data(), static_cast<std::int64_t>(back.size()));
    for (std::size_t i = 0; i < back.size(); ++i) ASSERT_EQ(back[i], values[i]) << tinfer::dtype_name(type) << " weight " << i;
  }
}

TEST(Gptq, DiagonalHessianIsNeverWorseThanRoundToNearest) {
  // With H diagonal nothing propagates: each weight is rounded on the grid of scales fitted as
  // RTN fits them, to the nearest point, so the squared error cannot exceed RTN's.
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const std::int64_t rows = 4, cols = 512;
  std::vector<float> W(static_cast<std::size_t>(rows * cols));
  for (auto& v : W) v = nd(rng);
  const Eigen::MatrixXd H = Eigen::MatrixXd::Identity(cols, cols);
  for (const DType type : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q6_K}) {
    const auto res = q::gptq_quantize(type, W, rows, cols, H);
    const auto rtn = rtn_values(type, W, rows, cols);
    double eg = 0, er = 0;
    for (std::size_t i = 0; i < W.size(); ++i) {
      eg += (W[i] - res.values[i]) * (W[i] - res.values[i]);
      er += (W[i] - rtn[i]) * (W[i] - rtn[i]);
    }
    EXPECT_LE(eg, er * (1 + 1e-6)) << tinfer::dtype_name(type);
  }
}

TEST(Gptq, RejectsBadShapes) {
  const std::vector<float> W(64, 1.0f);
  EXPECT_THROW(q::gptq_quantize(DType::Q4_0, W, 2, 32, Eigen::MatrixXd::Identity(16, 16)), tinfer::InvalidArgument);
  EXPECT_THROW(q::gptq_quantize(DType::Q4_0, W, 3, 32, Eigen::MatrixXd::Identity(32, 32)), tinfer::InvalidArgument);
  EXPECT_THROW(q::gptq_quantize(DType::Q4_K, W, 2, 32, Eigen::MatrixXd::Identity(32, 32)), tinfer::InvalidArgument);
  EXPECT_THROW(q::gptq_quantize(DType::F16, W, 2, 32, Eigen::MatrixXd::Identity(32, 32)), tinfer::UnsupportedError);
  q::GptqOptions bad;
  bad.group_size = 48;
  EXPECT_THROW(q::gptq_quantize(DType::Q4_0, W, 1, 64, Eigen::MatrixXd::Identity(64, 64), bad), tinfer::InvalidArgument);
}

}  // namespace
