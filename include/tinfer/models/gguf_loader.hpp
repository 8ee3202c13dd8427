// tinfer/models/gguf_loader.hpp: building Llama and GPT-2 models from GGUF files as llama.cpp
// writes them (architectures "llama" and "gpt2").
//
// Weight matrices are used in place from the mapped file in their stored type. GGUF lists
// dimensions innermost first, so a (rows, cols) matrix has dims {cols, rows}. Llama files store
// Q and K with rotary pairs interleaved (llama.cpp's converter permutes Hugging Face's
// rotate-half layout), which is RopeLayout::Interleaved here.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/interleave.hpp"
#include "tinfer/models/gpt2.hpp"
#include "tinfer/models/llama.hpp"

namespace tinfer {

namespace gguf_loading {

/// Keeps the file mapped, plus any small tensors converted to float32 (e.g. F16 norm weights).
struct Storage {
  std::shared_ptr<const io::GgufFile> file;
  std::vector<AlignedBuffer<float>> converted;
};

class Binder {
 public:
  explicit Binder(std::shared_ptr<const io::GgufFile> file) : storage_(std::make_shared<Storage>()) { storage_->file = std::move(file); }

  const io::GgufFile& file() const { return *storage_->file; }
  std::shared_ptr<const void> storage() const { return storage_; }

  /// An integer hyperparameter in [lo, hi]; FormatError naming the key otherwise.
  int hparam(const std::string& key, std::int64_t lo, std::int64_t hi) const {
    const std::int64_t v = file().get_int(key);
    if (v < lo || v > hi) {
      throw FormatError(file().path(), detail::str_cat("metadata key '", key, "' = ", v, " is outside [", lo, ", ", hi, "]"));
    }
    return static_cast<int>(v);
  }
  int hparam_or(const std::string& key, std::int64_t lo, std::int64_t hi, int fallback) const {
    return file().contains(key) ? hparam(key, lo, hi) : fallback;
  }
  float fparam_or(const std::string& key, float fallback) const {
    if (!file().contains(key)) return fallback;
    const double v = file().get_float(key);
    if (!std::isfinite(v)) throw FormatError(file().path(), detail::str_cat("metadata key '", key, "' is not finite"));
    return static_cast<float>(v);
  }

  /// The (rows, cols) matrix `name`, checked against the shape the hyperparameters imply.
  WeightView matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const {
    const io::GgufTensorInfo& t = file().tensor(name);
    if (t.dims.size() != 2 || t.dims[0] != cols || t.dims[1] != rows) {
      throw FormatError(file().path(), t.info_offset,
                        detail::str_cat("tensor '", name, "' has dims ", dims_string(t.dims), ", expected [", cols, ", ", rows,
                                        "] from the model's hyperparameters"));
    }
    return WeightView::dense(t.type, file().tensor_data(t).data(), rows, cols);
  }
  bool has(const std::string& name) const { return file().find_tensor(name) != nullptr; }

  /// Repacks the Q8_0 / Q4_0 / Q4_K / Q6_K and float matrices among `views` in place into the
  /// interleaved layout of kernels/interleave.hpp (same bytes, rows in groups of 16: quantized
  /// prompt processing several times faster, decoding faster for every type), when that is safe
  /// and pays: for quantized types, the default activation mode is the 16-bit one the
  /// interleaved kernels implement; the file was read into memory (not mapped), and this model
  /// is the only user of the GgufFile (someone else holding it may read the tensors' original
  /// bytes, e.g. the quantizer). Float matrices are grouped only when the AVX-512 kernels will
  /// read them (default_isa()): the AVX2 ones hold 4 rows, not 16, in registers, and on groups
  /// read 2-3x slower than on plain rows (F16 5632 x 2048 matrix-vector product: 0.94 against
  /// 0.34 ms; AVX-512: 0.34 against 0.34 in cache, 0.82 against 1.34 ms for F32 from memory).
  /// The layout never changes a result. Views that share data (a classifier tied to the token
  /// embedding) are repacked once. TINFER_INTERLEAVE=0 turns it off.
  void interleave(const std::vector<WeightView*>& views) const {
    if (!interleave_enabled()) return;
    const bool q16 = kernels::default_activations() == kernels::Activations::Q16;
    const bool group_floats = kernels::default_isa() >= kernels::Isa::Avx512;
    if (storage_->file.use_count() != 1 || !file().can_rewrite()) return;
    file().rewrite_tensor_bytes([&](std::byte* base) {
      std::vector<std::pair<const std::byte*, WeightView>> done;
      for (WeightView* v : views) {
        if (!kernels::can_interleave(v->type, v->cols) || v->rows < kernels::kInterleave || v->interleaved_rows > 0) continue;
        if (kernels::is_float_weight(v->type) ? !group_floats : !q16) continue;
        auto it = std::find_if(done.begin(), done.end(), [&](const auto& d) { return d.first == v->data; });
        if (it != done.end()) {
          *v = it->second;
          continue;
        }
        const std::byte* old = v->data;
        // base is the file's first byte, writable; v->data points into the same bytes.
        *v = kernels::interleave_rows(v->type, base + (old - static_cast<const std::byte*>(base)), v->rows, v->cols);
        done.emplace_back(old, *v);
      }
    });
  }
  static bool interleave_enabled() noexcept {
    static const bool on = [] {
      const char* e = std::getenv("TINFER_INTERLEAVE");
      return e == nullptr || std::string_view(e) != "0";
    }();
    return on;
  }

  /// The float32 vector `name` of length n (converted from another type if stored so).
  const float* vector(const std::string& name, std::int64_t n) const {
    const io::GgufTensorInfo& t = file().tensor(name);
    if (t.dims.size() != 1 || t.dims[0] != n) {
      throw FormatError(file().path(), t.info_offset,
                        detail::str_cat("tensor '", name, "' has dims ", dims_string(t.dims), ", expected [", n, "]"));
    }
    const auto data = file().tensor_data(t);
    if (t.type == DType::F32 && reinterpret_cast<std::uintptr_t>(data.data()) % alignof(float) == 0) {
      return reinterpret_cast<const float*>(data.data());
    }
    AlignedBuffer<float> buf(static_cast<std::size_t>(n));
    quant::dequantize_row(t.type, data.data(), buf.data(), n);
    storage_->converted.push_back(std::move(buf));
    return storage_->converted.back().data();
  }
  const float* optional_vector(const std::string& name, std::int64_t n) const { return has(name) ? vector(name, n) : nullptr; }

  static std::string dims_string(const std::vector<std::int64_t>& d) {
    std::string s = "[";
    for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + "]";
  }

 private:
  std::shared_ptr<Storage> storage_;
};

inline std::int32_t token_id_or(const io::GgufFile& f, const std::string& key, std::int32_t fallback) {
  return f.contains(key) ? static_cast<std::int32_t>(f.get_int(key)) : fallback;
}

}  // namespace gguf_loading

/// The file's general.architecture ("llama", "gpt2", ...).
inline std::string gguf_architecture(const io::GgufFile& f) { return f.get_string("general.architecture"); }

/// A Llama-family model from a GGUF file whose architecture is "llama".
inline LlamaModel load_llama_gguf(std::shared_ptr<const io::GgufFile> file) {
  gguf_loading::Binder b(std::move(file));
  const io::GgufFile& f = b.file();
  constexpr std::int64_t kBig = 1 << 20;
  LlamaConfig c;
  c.dim = b.hparam("llama.embedding_length", 1, kBig);
  c.hidden_dim = b.hparam("llama.feed_forward_length", 1, 4 * kBig);
  c.n_layers = b.hparam("llama.block_count", 1, 4096);
  c.n_heads = b.hparam("llama.attention.head_count", 1, c.dim);
  c.n_kv_heads = b.hparam_or("llama.attention.head_count_kv", 1, c.n_heads, c.n_heads);
  c.max_seq_len = b.hparam("llama.context_length", 1, 1 << 24);
  c.norm_eps = static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon"));
  c.rope_theta = b.fparam_or("llama.rope.freq_base", 10000.0f);
  if (c.dim % c.n_heads != 0) {
    throw FormatError(f.path(), detail::str_cat("llama.attention.head_count = ", c.n_heads, " does not divide llama.embedding_length = ", c.dim));
  }
  c.rope_dims = b.hparam_or("llama.rope.dimension_count", 2, c.dim / c.n_heads, 0);
  if (f.contains("llama.rope.scaling.type")) {
    const std::string type = f.get_string("llama.rope.scaling.type");
    if (type == "linear") {
      const float factor = b.fparam_or("llama.rope.scaling.factor", 1.0f);
      if (!(factor > 0.0f)) throw FormatError(f.path(), "llama.rope.scaling.factor must be positive");
      c.rope_freq_scale = 1.0f / factor;
    } else if (type != "none") {
      throw UnsupportedError(detail::str_cat(f.path(), ": RoPE scaling type '", type, "' is not supported (supported: none, linear)"));
    }
  }
  const auto& emb = f.tensor("token_embd.weight");
  if (emb.dims.size() != 2) throw FormatError(f.path(), emb.info_offset, "tensor 'token_embd.weight' must be 2-D");
  c.vocab_size = static_cast<int>(emb.dims[1]);
  c.bos_id = gguf_loading::token_id_or(f, "tokenizer.ggml.bos_token_id", 1);
  c.eos_id = gguf_loading::token_id_or(f, "tokenizer.ggml.eos_token_id", 2);
  c.rope_layout = kernels::RopeLayout::Interleaved;
  try {
    c.validate();
  } catch (const InvalidArgument& e) {
    throw FormatError(f.path(), e.what());
  }

  const std::int64_t dim = c.dim, q_dim = static_cast<std::int64_t>(c.head_dim()) * c.n_heads, kv = c.kv_dim(), hid = c.hidden_dim;
  LlamaWeights w;
  w.token_embedding = b.matrix("token_embd.weight", c.vocab_size, dim);
  w.final_norm = b.vector("output_norm.weight", dim);
  w.classifier = b.has("output.weight") ? b.matrix("output.weight", c.vocab_size, dim) : w.token_embedding;
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LlamaLayerWeights L;
    L.attn_norm = b.vector(p + "attn_norm.weight", dim);
    L.wq = b.matrix(p + "attn_q.weight", q_dim, dim);
    L.wk = b.matrix(p + "attn_k.weight", kv, dim);
    L.wv = b.matrix(p + "attn_v.weight", kv, dim);
    L.wo = b.matrix(p + "attn_output.weight", dim, q_dim);
    L.ffn_norm = b.vector(p + "ffn_norm.weight", dim);
    L.w_gate = b.matrix(p + "ffn_gate.weight", hid, dim);
    L.w_down = b.matrix(p + "ffn_down.weight", dim, hid);
    L.w_up = b.matrix(p + "ffn_up.weight", hid, dim);
    w.layers.push_back(L);
  }
  {
    std::vector<WeightView*> mats;
    for (auto& L : w.layers) mats.insert(mats.end(), {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_down, &L.w_up});
    mats.push_back(&w.classifier);
    if (w.token_embedding.data == w.classifier.data) mats.push_back(&w.token_embedding);  // tied: one repack serves both
    b.interleave(mats);
  }
  return LlamaModel(c, std::move(w), b.storage());
}

/// A GPT-2-family model from a GGUF file whose architecture is "gpt2".
inline Gpt2Model load_gpt2_gguf(std::shared_ptr<const io::GgufFile> file) {
  gguf_loading::Binder b(std::move(file));
  const io::GgufFile& f = b.file();
  constexpr std::int64_t kBig = 1 << 20;
  Gpt2Config c;
  c.dim = b.hparam("gpt2.embedding_length", 1, kBig);
  c.hidden_dim = b.hparam("gpt2.feed_forward_length", 1, 4 * kBig);
  c.n_layers = b.hparam("gpt2.block_count", 1, 4096);
  c.n_heads = b.hparam("gpt2.attention.head_count", 1, c.dim);
  c.max_seq_len = b.hparam("gpt2.context_length", 1, 1 << 24);
  c.norm_eps = static_cast<float>(f.get_float("gpt2.attention.layer_norm_epsilon"));
  const auto& emb = f.tensor("token_embd.weight");
  if (emb.dims.size() != 2) throw FormatError(f.path(), emb.info_offset, "tensor 'token_embd.weight' must be 2-D");
  c.vocab_size = static_cast<int>(emb.dims[1]);
  c.bos_id = gguf_loading::token_id_or(f, "tokenizer.ggml.bos_token_id", -1);
  c.eos_id = gguf_loading::token_id_or(f, "tokenizer.ggml.eos_token_id", -1);
  try {
    c.validate();
  } catch (const InvalidArgument& e) {
    throw FormatError(f.path(), e.what());
  }
  const std::int64_t dim = c.dim, hid = c.hidden_dim;
  Gpt2Weights w;
  w.token_embedding = b.matrix("token_embd.weight", c.vocab_size, dim);
  w.position_embedding = b.matrix("position_embd.weight", c.max_seq_len, dim);
  w.final_norm_w = b.vector("output_norm.weight", dim);
  w.final_norm_b = b.optional_vector("output_norm.bias", dim);
  w.classifier = b.has("output.weight") ? b.matrix("output.weight", c.vocab_size, dim) : w.token_embedding;
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Gpt2LayerWeights L;
    L.ln1_w = b.vector(p + "attn_norm.weight", dim);
    L.ln1_b = b.optional_vector(p + "attn_norm.bias", dim);
    L.qkv = b.matrix(p + "attn_qkv.weight", 3 * dim, dim);
    L.qkv_b = b.optional_vector(p + "attn_qkv.bias", 3 * dim);
    L.out = b.matrix(p + "attn_output.weight", dim, dim);
    L.out_b = b.optional_vector(p + "attn_output.bias", dim);
    L.ln2_w = b.vector(p + "ffn_norm.weight", dim);
    L.ln2_b = b.optional_vector(p + "ffn_norm.bias", dim);
    L.up = b.matrix(p + "ffn_up.weight", hid, dim);
    L.up_b = b.optional_vector(p + "ffn_up.bias", hid);
    L.down = b.matrix(p + "ffn_down.weight", dim, hid);
    L.down_b = b.optional_vector(p + "ffn_down.bias", dim);
    w.layers.push_back(L);
  }
  {
    std::vector<WeightView*> mats;
    for (auto& L : w.layers) mats.insert(mats.end(), {&L.qkv, &L.out, &L.up, &L.down});
    mats.push_back(&w.classifier);
    if (w.token_embedding.data == w.classifier.data) mats.push_back(&w.token_embedding);  // tied: one repack serves both
    b.interleave(mats);
  }
  return Gpt2Model(c, std::move(w), b.storage());
}

}  // namespace tinfer
