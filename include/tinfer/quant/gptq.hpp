// tinfer/quant/gptq.hpp: GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers") for one weight matrix, written as standard GGUF blocks.
//
// For W (rows = outputs, cols = inputs) and the inputs X the layer sees on calibration text,
// GPTQ minimizes ||W X - Q X||^2 column by column: H = 2 X X^T / n (dampened by a fraction of
// its mean diagonal), U = the upper Cholesky factor of H^-1; column i is rounded to its grid and
// its error, divided by U(i,i), is spread over the columns not yet quantized (rows of U), in
// lazy batches of `block_size` columns.
//
// GGUF mapping: the scales of a block (32 weights for Q4_0..Q8_0, 256 for the K types) are the
// "group" parameters. They are chosen by the format's own reference scale search (quantize.hpp)
// on the current, error-updated weights when GPTQ reaches the group's first column (with
// act_order: once, from the original weights, "static groups"), and every weight is then
// rounded to the grid those stored scales allow. Each value GPTQ picks is therefore exactly what
// the written block dequantizes to. Q3_K (16 sub-blocks of 16 weights with 6-bit scales under one
// f16 d) refits each sub-block's scale when GPTQ reaches it, keeping d: fitted at the group's
// start, the scales of later sub-blocks miss the shift GPTQ's updates from the group's earlier
// columns gave their weights (refit_sub_scales; 10-20% lower layer output error measured).
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <vector>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/quant/quantize.hpp"

namespace tinfer::quant {

struct GptqOptions {
  double damp = 0.01;    // dampening: this fraction of H's mean diagonal is added to its diagonal
  int block_size = 128;  // columns per lazy batch (rounded up to a multiple of the group)
  int group_size = 0;    // columns whose block scales are fitted together; 0 = the type's block
                         // size; else a multiple of it
  bool act_order = false;  // quantize columns in order of decreasing H diagonal
  bool refit_sub_scales = true;   // Q3_K: re-fit each 16-weight sub-block's scale when GPTQ
                                  // reaches it (see gptq_impl); off: all fitted at the group start
};

/// Accumulates the GPTQ Hessian H = 2/n * sum over inputs x of x x^T for one linear layer.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(std::int64_t cols) : cols_(cols), sum_(Eigen::MatrixXd::Zero(cols, cols)) {
    if (cols <= 0) throw InvalidArgument("HessianAccumulator: the layer needs at least one input column");
  }

  std::int64_t cols() const noexcept { return cols_; }
  std::int64_t n_samples() const noexcept { return n_ + static_cast<std::int64_t>(pending_.size()) / cols_; }

  /// Adds n_rows input rows of cols() floats each.
  void add(const float* x, std::int64_t n_rows) {
    pending_.insert(pending_.end(), x, x + n_rows * cols_);
    if (static_cast<std::int64_t>(pending_.size()) >= kBatch * cols_) flush();
  }

  /// H = 2/n X X^T (cols x cols). Throws InvalidArgument if nothing was added.
  Eigen::MatrixXd hessian() {
    flush();
    if (n_ == 0) throw InvalidArgument("GPTQ: no calibration inputs reached this layer");
    Eigen::MatrixXd h = sum_.selfadjointView<Eigen::Lower>();
    return h * (2.0 / static_cast<double>(n_));
  }

 private:
  static constexpr std::int64_t kBatch = 256;
  void flush() {
    const std::int64_t n = static_cast<std::int64_t>(pending_.size()) / cols_;
    if (n == 0) return;
    // Rows of pending_ are samples: X^T X accumulates as one symmetric rank-n update.
    const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> xf(pending_.data(), n, cols_);
    const Eigen::MatrixXd xd = xf.cast<double>();
    sum_.selfadjointView<Eigen::Lower>().rankUpdate(xd.transpose());
    n_ += n;
    pending_.clear();
  }

  std::int64_t cols_;
  Eigen::MatrixXd sum_;
  std::int64_t n_ = 0;
  std::vector<float> pending_;
};

struct GptqResult {
  std::vector<std::byte> data;  // rows * row_bytes(type, cols): the GGUF blocks
  std::vector<float> values;    // rows * cols: the weights GPTQ chose (= data dequantized)
};

namespace detail {

template <class Codec>
GptqResult gptq_impl(std::span<const float> w_in, std::int64_t rows, std::int64_t cols, Eigen::MatrixXd H, const GptqOptions& opt) {
  using Block = typename Codec::Block;
  constexpr int N = Codec::kN;
  const std::int64_t nb = cols / N;
  const int g = opt.group_size == 0 ? N : opt.group_size;
  if (g <= 0 || g % N != 0 || cols % g != 0) {
    throw InvalidArgument(tinfer::detail::str_cat("GPTQ: group size ", g, " must be a multiple of the block size ", N,
                                                  " that divides the row length ", cols));
  }
  const std::int64_t B = (std::max<std::int64_t>(opt.block_size, g) + g - 1) / g * g;

  Eigen::MatrixXd W(rows, cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) W(r, c) = w_in[static_cast<std::size_t>(r * cols + c)];

  // Inputs that never fire carry no information: their weights are zeroed (as GPTQ does).
  for (std::int64_t c = 0; c < cols; ++c) {
    if (H(c, c) == 0.0) {
      H(c, c) = 1.0;
      W.col(c).setZero();
    }
  }

  std::vector<Block> blocks(static_cast<std::size_t>(rows * nb));
  std::vector<GridPoint> grid(static_cast<std::size_t>(rows * cols));
  std::vector<int> quants(static_cast<std::size_t>(rows * cols), 0);
  // Fits the scales of the blocks [c0, c0 + g) of every row from `src(r, c)` (current weights).
  auto fit_group = [&](std::int64_t c0, auto&& src) {
    float x[N];
    int L[N];
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t b = c0 / N; b < (c0 + g) / N; ++b) {
        for (int j = 0; j < N; ++j) x[j] = static_cast<float>(src(r, b * N + j));
        Block& blk = blocks[static_cast<std::size_t>(r * nb + b)];
        blk = Block{};
        Codec::quantize(x, blk, L);
        Codec::grid(blk, &grid[static_cast<std::size_t>(r * cols + b * N)]);
      }
    }
  };

  std::vector<std::int64_t> perm(static_cast<std::size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (opt.act_order) {
    for (std::int64_t c0 = 0; c0 < cols; c0 += g) fit_group(c0, [&](std::int64_t r, std::int64_t c) { return W(r, c); });
    std::stable_sort(perm.begin(), perm.end(), [&](std::int64_t a, std::int64_t b) { return H(a, a) > H(b, b); });
    Eigen::MatrixXd Wp(rows, cols), Hp(cols, cols);
    for (std::int64_t i = 0; i < cols; ++i) Wp.col(i) = W.col(perm[static_cast<std::size_t>(i)]);
    for (std::int64_t i = 0; i < cols; ++i)
      for (std::int64_t j = 0; j < cols; ++j) Hp(i, j) = H(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(j)]);
    W = std::move(Wp);
    H = std::move(Hp);
  }

  // U: upper Cholesky factor of (H + damp I)^-1, H^-1 = U^T U. More dampening if H is singular.
  const double mean_diag = H.diagonal().mean();
  Eigen::MatrixXd U;
  for (double damp = opt.damp;; damp *= 10) {
    Eigen::MatrixXd Hd = H;
    Hd.diagonal().array() += damp * mean_diag;
    Eigen::LLT<Eigen::MatrixXd> llt(Hd);
    if (llt.info() == Eigen::Success) {
      const Eigen::MatrixXd Hinv = llt.solve(Eigen::MatrixXd::Identity(cols, cols));
      Eigen::LLT<Eigen::MatrixXd> llt2(Hinv);
      if (llt2.info() == Eigen::Success) {
        U = llt2.matrixU();
        break;
      }
    }
    if (damp > 1e6) throw InvalidArgument("GPTQ: the Hessian is not positive definite even with heavy dampening");
  }

  Eigen::MatrixXd Q(rows, cols);
  for (std::int64_t i1 = 0; i1 < cols; i1 += B) {
    const std::int64_t count = std::min(B, cols - i1);
    Eigen::MatrixXd W1 = W.middleCols(i1, count);
    Eigen::MatrixXd Err1(rows, count);
    for (std::int64_t i = 0; i < count; ++i) {
      const std::int64_t col = i1 + i;
      const std::int64_t orig = perm[static_cast<std::size_t>(col)];
      if (!opt.act_order && orig % g == 0) {
        // The group lies inside this batch (B is a multiple of g), whose columns are current.
        fit_group(orig, [&](std::int64_t r, std::int64_t c) { return W1(r, c - i1); });
      } else if constexpr (requires { Codec::kSub; }) {
        // A K block's sub-block scales were fitted at the group's start, before the error of the
        // group's earlier columns moved these weights: re-choose this sub-block's scale (the
        // block's d kept) on the weights as they are now, weighted by H's diagonal.
        if (opt.refit_sub_scales && !opt.act_order && orig % Codec::kSub == 0) {
          float x[Codec::kSub];
          double hw[Codec::kSub];
          for (int k = 0; k < Codec::kSub; ++k) hw[k] = H(col + k, col + k);
          const std::int64_t b = orig / N;
          const int j = static_cast<int>((orig % N) / Codec::kSub);
          for (std::int64_t r = 0; r < rows; ++r) {
            for (int k = 0; k < Codec::kSub; ++k) x[k] = static_cast<float>(W1(r, i + k));
            Codec::refit_sub(x, hw, blocks[static_cast<std::size_t>(r * nb + b)], j, &grid[static_cast<std::size_t>(r * cols + orig)]);
          }
        }
      }
      const double d = U(col, col);
      for (std::int64_t r = 0; r < rows; ++r) {
        const GridPoint& gp = grid[static_cast<std::size_t>(r * cols + orig)];
        const int q = gp.nearest(static_cast<float>(W1(r, i)));
        quants[static_cast<std::size_t>(r * cols + orig)] = q;
        const double v = gp.value(q);
        Q(r, col) = v;
        Err1(r, i) = (W1(r, i) - v) / d;
      }
      if (i + 1 < count) W1.rightCols(count - i - 1).noalias() -= Err1.col(i) * U.row(col).segment(col + 1, count - i - 1);
    }
    if (i1 + count < cols) {
      W.rightCols(cols - i1 - count).noalias() -= Err1 * U.block(i1, i1 + count, count, cols - i1 - count);
    }
  }

  GptqResult res;
  res.values.resize(static_cast<std::size_t>(rows * cols));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) {
      const std::int64_t orig = perm[static_cast<std::size_t>(c)];
      res.values[static_cast<std::size_t>(r * cols + orig)] = static_cast<float>(Q(r, c));
    }
  res.data.resize(static_cast<std::size_t>(rows * nb) * sizeof(Block));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t b = 0; b < nb; ++b) {
      Block& blk = blocks[static_cast<std::size_t>(r * nb + b)];
      Codec::pack(&quants[static_cast<std::size_t>(r * cols + b * N)], blk);
      std::memcpy(res.data.data() + static_cast<std::size_t>(r * nb + b) * sizeof(Block), &blk, sizeof(Block));
    }
  return res;
}

}  // namespace detail

/// Quantizes the row-major (rows, cols) matrix `w` into block type `type` with GPTQ, given the
/// layer's Hessian H (cols x cols, e.g. from HessianAccumulator). Throws InvalidArgument for
/// mismatched sizes or a row length that is not a multiple of the group, UnsupportedError for a
/// type that is not one of the ten block types.
inline GptqResult gptq_quantize(DType type, std::span<const float> w, std::int64_t rows, std::int64_t cols, const Eigen::MatrixXd& H,
                                const GptqOptions& opt = {}) {
  if (rows <= 0 || cols <= 0 || static_cast<std::uint64_t>(rows) * static_cast<std::uint64_t>(cols) != w.size()) {
    throw InvalidArgument(tinfer::detail::str_cat("GPTQ: ", w.size(), " weights do not form a (", rows, ", ", cols, ") matrix"));
  }
  if (H.rows() != cols || H.cols() != cols) {
    throw InvalidArgument(tinfer::detail::str_cat("GPTQ: the Hessian is ", H.rows(), "x", H.cols(), ", expected ", cols, "x", cols));
  }
  if (!(opt.damp >= 0) || opt.block_size <= 0) throw InvalidArgument("GPTQ: dampening must be >= 0 and the block size positive");
  return visit_codec(type, [&](auto codec) { return detail::gptq_impl<decltype(codec)>(w, rows, cols, H, opt); });
}

}  // namespace tinfer::quant
