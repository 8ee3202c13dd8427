// tinfer/models/gptq_calibration.hpp: sequential GPTQ over a whole model (the calibration driver
// behind `tinfer-quantize --gptq`).
//
// quant/gptq.hpp quantizes one matrix given its Hessian; this header supplies the Hessians. For
// each layer, and each input slot of the layer in forward order (QKV, attention output, FFN up,
// FFN down; then the classifier when it is a separate tensor), the calibration chunks run through
// the model whose earlier matrices already hold their quantized values, a LinearObserver collects
// the slot's inputs (the pass stops right after them), GPTQ quantizes the slot's matrices, and
// their chosen values replace the float weights, so every later layer is calibrated on what the
// quantized model computes (the paper's sequential mode). The token embedding is rounded to its
// target type up front for the same reason.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/io/gguf.hpp"
#include "tinfer/models/gguf_loader.hpp"
#include "tinfer/models/gpt2.hpp"
#include "tinfer/models/linear_observer.hpp"
#include "tinfer/models/llama.hpp"
#include "tinfer/quant/gptq.hpp"
#include "tinfer/quant/mix.hpp"
#include "tinfer/quant/quantize.hpp"
#include "tinfer/tokenizer/tokenizer.hpp"

namespace tinfer {

/// Calibration chunks as llama-perplexity cuts its text: `text` tokenized (BOS replacing the
/// first token of each chunk when the tokenizer adds one), cut into chunks of `ctx` tokens, and
/// `n_chunks` of them (at most as many as the text holds) spread evenly over it. Throws
/// InvalidArgument when the text is shorter than one chunk.
inline std::vector<std::vector<std::int32_t>> gptq_calibration_chunks(const Tokenizer& tok, std::string_view text, int n_chunks, int ctx) {
  if (n_chunks <= 0 || ctx < 2) throw InvalidArgument("GPTQ calibration: need at least one chunk of at least 2 tokens");
  const std::vector<std::int32_t> tokens = tok.encode(text);
  const std::size_t avail = tokens.size() / static_cast<std::size_t>(ctx);
  if (avail == 0) {
    throw InvalidArgument(detail::str_cat("GPTQ calibration: the text has ", tokens.size(), " tokens, fewer than one chunk of ", ctx,
                                          ": use a longer text or a smaller context"));
  }
  const std::size_t n = std::min<std::size_t>(avail, static_cast<std::size_t>(n_chunks));
  const std::int32_t bos = tok.add_bos_by_default() ? tok.bos_id() : -1;
  std::vector<std::vector<std::int32_t>> chunks;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t c = k * avail / n;
    std::vector<std::int32_t> chunk(tokens.begin() + static_cast<std::ptrdiff_t>(c * ctx),
                                    tokens.begin() + static_cast<std::ptrdiff_t>((c + 1) * ctx));
    if (bos >= 0) chunk[0] = bos;
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

struct GptqModelOptions {
  quant::GptqOptions gptq;  // gptq.group_size is used for a matrix only where it is a multiple of
                            // the type's block dividing the row; elsewhere one block per group
  bool gptq_tied_embedding = true;  // a token embedding that is also the classifier (tied) and
                                    // gets a block type: GPTQ as the classifier; false: RTN
  ThreadPool* pool = nullptr;
  /// Called before each step (done counts from 1) with the name of the step's first matrix.
  std::function<void(std::size_t done, std::size_t total, const std::string& what)> progress;
};

namespace detail {

// Stops a calibration pass once the collected slot has seen all of its inputs.
struct GptqStopForward {};

// Collects the inputs of one (layer, slot); throws GptqStopForward at the first later slot once
// the whole chunk's rows arrived (forward_batch may run a chunk in several row groups).
class GptqCollector : public LinearObserver {
 public:
  GptqCollector(int layer, LinearSlot slot, quant::HessianAccumulator& acc) : target_(rank(layer, slot)), acc_(acc) {}
  void start_chunk(std::int64_t rows) {
    want_ = rows;
    seen_ = 0;
  }
  void on_input(int layer, LinearSlot slot, const float* x, std::int64_t n_rows, std::int64_t /*n_cols*/) override {
    const int r = rank(layer, slot);
    if (r == target_) {
      acc_.add(x, n_rows);
      seen_ += n_rows;
    }
    if (r > target_ && seen_ >= want_) throw GptqStopForward{};
  }

 private:
  static int rank(int layer, LinearSlot slot) { return layer < 0 ? 1 << 30 : layer * 8 + static_cast<int>(slot); }
  int target_;
  quant::HessianAccumulator& acc_;
  std::int64_t want_ = 0, seen_ = 0;
};

struct GptqMatrix {
  std::string name;
  int layer = 0;
  LinearSlot slot = LinearSlot::AttnQKV;
  std::int64_t rows = 0, cols = 0;
  std::vector<float> buf;  // the float weights the model reads; overwritten with GPTQ's values
};

inline std::vector<float> gguf_tensor_as_f32(const io::GgufFile& f, const std::string& name) {
  const io::GgufTensorInfo& t = f.tensor(name);
  std::vector<float> v(static_cast<std::size_t>(t.row_length() * t.n_rows()));
  quant::dequantize_row(t.type, f.tensor_data(t).data(), v.data(), static_cast<std::int64_t>(v.size()));
  return v;
}

template <class ModelT, class SessionT>
void gptq_sequential(const ModelT& model, std::vector<std::unique_ptr<GptqMatrix>>& mats, const std::map<std::string, DType>& target,
                     const std::vector<std::vector<std::int32_t>>& chunks, int n_layers, const GptqModelOptions& opt,
                     std::map<std::string, std::vector<std::byte>>& out) {
  int ctx = 0;
  for (const auto& c : chunks) ctx = std::max(ctx, static_cast<int>(c.size()));
  SessionT session(model, SessionOptions{.context = ctx});
  const LinearSlot slots[] = {LinearSlot::AttnQKV, LinearSlot::AttnOut, LinearSlot::FfnUp, LinearSlot::FfnDown};
  std::vector<std::pair<int, LinearSlot>> steps;
  steps.emplace_back(-2, LinearSlot::Output);  // a tied embedding, calibrated as the classifier first
  for (int l = 0; l < n_layers; ++l)
    for (const auto s : slots) steps.emplace_back(l, s);
  steps.emplace_back(-1, LinearSlot::Output);
  std::size_t done = 0;
  for (const auto& [layer, slot] : steps) {
    std::vector<GptqMatrix*> group;
    for (auto& m : mats)
      if (m->layer == layer && m->slot == slot) group.push_back(m.get());
    ++done;
    if (group.empty()) continue;
    if (opt.progress) opt.progress(done, steps.size(), group.front()->name);
    quant::HessianAccumulator acc(group.front()->cols);
    GptqCollector col(layer < 0 ? -1 : layer, slot, acc);
    session.set_linear_observer(&col);
    for (const auto& chunk : chunks) {
      col.start_chunk(static_cast<std::int64_t>(chunk.size()));
      session.truncate(0);
      try {
        // The classifier sees every row only when every row's logits are asked for.
        model.forward_batch(session, chunk, 0, opt.pool, slot == LinearSlot::Output);
      } catch (const GptqStopForward&) {
      }
    }
    session.set_linear_observer(nullptr);
    session.truncate(0);
    const Eigen::MatrixXd H = acc.hessian();
    for (GptqMatrix* m : group) {
      const DType type = target.at(m->name);
      std::vector<std::byte> data;
      if (quant::is_block_type(type)) {
        quant::GptqOptions g = opt.gptq;
        const auto N = static_cast<int>(dtype_info(type)->block_size);
        g.group_size = (g.group_size > 0 && g.group_size % N == 0 && m->cols % g.group_size == 0) ? g.group_size : 0;
        auto res = quant::gptq_quantize(type, m->buf, m->rows, m->cols, H, g);
        data = std::move(res.data);
        std::copy(res.values.begin(), res.values.end(), m->buf.begin());  // the model reads this buffer
      } else {
        // A fallback to F16 (or F32): nothing to calibrate; later layers see the rounded values.
        data = quant::quantize_matrix(type, m->buf, m->rows, m->cols);
        quant::dequantize_row(type, data.data(), m->buf.data(), static_cast<std::int64_t>(m->buf.size()));
      }
      out[m->name] = std::move(data);
    }
  }
}

}  // namespace detail

/// Sequential GPTQ over the linear weights of the llama or gpt2 model in `file`. `target` maps
/// every tensor name to its output type (e.g. from quant::TypePlanner); `chunks` are token
/// sequences of at most the model's context (gptq_calibration_chunks). Returns the quantized
/// data of every layer matrix (and of a separate classifier whose type changes), by tensor
/// name; tensors not returned are to be copied or rounded as usual. Throws UnsupportedError for
/// other architectures, InvalidArgument for empty or too long chunks.
inline std::map<std::string, std::vector<std::byte>> gptq_quantize_model(const std::shared_ptr<const io::GgufFile>& file,
                                                                         const std::map<std::string, DType>& target,
                                                                         const std::vector<std::vector<std::int32_t>>& chunks,
                                                                         const GptqModelOptions& opt = {}) {
  if (chunks.empty()) throw InvalidArgument("GPTQ: no calibration chunks");
  for (const auto& c : chunks)
    if (c.empty()) throw InvalidArgument("GPTQ: an empty calibration chunk");
  const io::GgufFile& f = *file;
  const std::string arch = gguf_architecture(f);
  std::vector<std::unique_ptr<detail::GptqMatrix>> mats;
  auto add = [&](const std::string& name, int layer, LinearSlot slot, WeightView& view) {
    auto m = std::make_unique<detail::GptqMatrix>();
    m->name = name;
    m->layer = layer;
    m->slot = slot;
    m->rows = view.rows;
    m->cols = view.cols;
    m->buf = detail::gguf_tensor_as_f32(f, name);
    view = WeightView::f32(m->buf.data(), m->rows, m->cols);
    mats.push_back(std::move(m));
  };
  const bool has_output = f.find_tensor("output.weight") != nullptr;
  auto add_output = [&](WeightView& cls) {
    if (has_output && target.at("output.weight") != f.tensor("output.weight").type) add("output.weight", -1, LinearSlot::Output, cls);
  };
  // The token embedding as the quantized file will hold it. When it is also the classifier (tied)
  // and gets a block type, GPTQ quantizes it as the classifier, before the layers (its Hessian
  // from the unquantized model, as for any first matrix) so that they are calibrated on it.
  const auto& et_info = f.tensor("token_embd.weight");
  const DType et = target.at("token_embd.weight");
  auto emb_m = std::make_unique<detail::GptqMatrix>();
  emb_m->name = "token_embd.weight";
  emb_m->layer = -2;
  emb_m->slot = LinearSlot::Output;
  emb_m->rows = et_info.n_rows();
  emb_m->cols = et_info.row_length();
  emb_m->buf = detail::gguf_tensor_as_f32(f, "token_embd.weight");
  std::vector<float>& emb = emb_m->buf;
  auto embedding_view = [&](bool tied) {
    if (tied && opt.gptq_tied_embedding && quant::is_block_type(et) && et != et_info.type) {
      mats.push_back(std::move(emb_m));
    } else if (et != et_info.type) {
      const auto data = quant::quantize_matrix(et, emb, et_info.n_rows(), et_info.row_length());
      quant::dequantize_row(et, data.data(), emb.data(), static_cast<std::int64_t>(emb.size()));
    }
  };
  std::map<std::string, std::vector<std::byte>> out;
  auto check_ctx = [&](int max_ctx) {
    for (const auto& c : chunks)
      if (static_cast<int>(c.size()) > max_ctx)
        throw InvalidArgument(detail::str_cat("GPTQ: a calibration chunk of ", c.size(), " tokens exceeds the model's context of ", max_ctx));
  };
  // Both families: the embedding (GPTQ'd as the classifier when tied) becomes float, every
  // layer's linear weights are registered by `add_layer`, then the layers are calibrated in order.
  auto run = [&](const auto& base, auto* session_tag, auto&& add_layer) {
    using Model = std::remove_cvref_t<decltype(base)>;
    using Session = std::remove_pointer_t<decltype(session_tag)>;
    auto w = base.weights();
    const bool tied = w.classifier.data == w.token_embedding.data;
    embedding_view(tied);
    w.token_embedding = WeightView::f32(emb.data(), w.token_embedding.rows, w.token_embedding.cols);
    if (tied) w.classifier = w.token_embedding;
    for (int l = 0; l < base.config().n_layers; ++l) add_layer(w.layers[static_cast<std::size_t>(l)], "blk." + std::to_string(l) + ".", l);
    if (!tied) add_output(w.classifier);
    const Model model(base.config(), std::move(w), nullptr);
    check_ctx(model.config().max_seq_len);
    detail::gptq_sequential<Model, Session>(model, mats, target, chunks, model.config().n_layers, opt, out);
  };
  if (arch == "llama") {
    run(load_llama_gguf(file), static_cast<LlamaSession*>(nullptr), [&](LlamaLayerWeights& L, const std::string& p, int l) {
      add(p + "attn_q.weight", l, LinearSlot::AttnQKV, L.wq);
      add(p + "attn_k.weight", l, LinearSlot::AttnQKV, L.wk);
      add(p + "attn_v.weight", l, LinearSlot::AttnQKV, L.wv);
      add(p + "attn_output.weight", l, LinearSlot::AttnOut, L.wo);
      add(p + "ffn_gate.weight", l, LinearSlot::FfnUp, L.w_gate);
      add(p + "ffn_up.weight", l, LinearSlot::FfnUp, L.w_up);
      add(p + "ffn_down.weight", l, LinearSlot::FfnDown, L.w_down);
    });
  } else if (arch == "gpt2") {
    run(load_gpt2_gguf(file), static_cast<Gpt2Session*>(nullptr), [&](Gpt2LayerWeights& L, const std::string& p, int l) {
      add(p + "attn_qkv.weight", l, LinearSlot::AttnQKV, L.qkv);
      add(p + "attn_output.weight", l, LinearSlot::AttnOut, L.out);
      add(p + "ffn_up.weight", l, LinearSlot::FfnUp, L.up);
      add(p + "ffn_down.weight", l, LinearSlot::FfnDown, L.down);
    });
  } else {
    throw UnsupportedError(file->path() + ": GPTQ supports the architectures llama and gpt2, not '" + arch + "'");
  }
  return out;
}

}  // namespace tinfer
