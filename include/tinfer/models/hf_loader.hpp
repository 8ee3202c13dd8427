// tinfer/models/hf_loader.hpp: Llama and GPT-2 models from Hugging Face folders
// (config.json + model.safetensors or shards).
//
// Conventions that differ from GGUF:
//  - Llama checkpoints keep Q and K in Hugging Face's "rotate half" RoPE layout, which the
//    model runs as RopeLayout::RotateHalf (no permutation needed).
//  - GPT-2 stores its projections as Conv1D weights, shape (in, out): they are transposed once
//    at load into owned (out, in) matrices of the same type (memory: one copy of those weights).
#pragma once

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/mapped_file.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/io/safetensors.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/models/gpt2.hpp"
#include "tinfer/models/llama.hpp"

namespace tinfer {

namespace hf_loading {

struct Storage {
  std::unique_ptr<io::SafetensorsModel> tensors;
  std::vector<AlignedBuffer<std::byte>> owned;
};

inline nlohmann::json read_config(const std::filesystem::path& folder) {
  const auto path = folder / "config.json";
  MappedFile f(path.string());
  try {
    auto j = nlohmann::json::parse(reinterpret_cast<const char*>(f.data()), reinterpret_cast<const char*>(f.data()) + f.size());
    if (!j.is_object()) throw FormatError(path.string(), "is not a JSON object");
    return j;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path.string(), detail::str_cat("not valid JSON: ", e.what()));
  }
}

class Config {
 public:
  Config(nlohmann::json j, std::string path) : j_(std::move(j)), path_(std::move(path)) {}
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  int integer(const char* key, std::int64_t lo, std::int64_t hi) const {
    if (!has(key)) throw FormatError(path_, detail::str_cat("field \"", key, "\" is missing"));
    const auto& v = j_[key];
    if (!v.is_number_integer()) throw FormatError(path_, detail::str_cat("field \"", key, "\" is not an integer"));
    const std::int64_t x = v.get<std::int64_t>();
    if (x < lo || x > hi) throw FormatError(path_, detail::str_cat("field \"", key, "\" = ", x, " is outside [", lo, ", ", hi, "]"));
    return static_cast<int>(x);
  }
  int integer_or(const char* key, std::int64_t lo, std::int64_t hi, int fallback) const {
    return has(key) ? integer(key, lo, hi) : fallback;
  }
  float real_or(const char* key, float fallback) const {
    if (!has(key)) return fallback;
    const auto& v = j_[key];
    if (!v.is_number()) throw FormatError(path_, detail::str_cat("field \"", key, "\" is not a number"));
    const double x = v.get<double>();
    if (!std::isfinite(x) || x <= 0) throw FormatError(path_, detail::str_cat("field \"", key, "\" = ", x, " must be positive"));
    return static_cast<float>(x);
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_[key].is_boolean()) throw FormatError(path_, detail::str_cat("field \"", key, "\" is not true/false"));
    return j_[key].get<bool>();
  }
  std::int32_t token_or(const char* key, std::int32_t fallback) const {
    if (!has(key)) return fallback;
    const auto& v = j_[key];
    if (v.is_number_integer()) return v.get<std::int32_t>();
    if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<std::int32_t>();  // list of EOS ids
    return fallback;
  }
  const nlohmann::json& json() const { return j_; }
  const std::string& path() const { return path_; }

 private:
  nlohmann::json j_;
  std::string path_;
};

class Binder {
 public:
  explicit Binder(const std::filesystem::path& folder) : storage_(std::make_shared<Storage>()) {
    storage_->tensors = std::make_unique<io::SafetensorsModel>(folder);
  }
  std::shared_ptr<const void> storage() const { return storage_; }
  bool has(const std::string& name) const { return storage_->tensors->find(name) != nullptr; }

  const io::SafetensorsTensor& tensor(const std::string& name, std::vector<std::int64_t> shape) const {
    const auto& t = storage_->tensors->get(name);
    if (t.shape != shape) {
      throw FormatError(t.file, detail::str_cat("tensor '", name, "' has shape ", shape_string(t.shape), ", expected ",
                                                shape_string(shape), " from config.json"));
    }
    return t;
  }
  /// A (rows, cols) matrix stored as such.
  WeightView matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const {
    const auto& t = tensor(name, {rows, cols});
    return WeightView::dense(t.type, t.data.data(), rows, cols);
  }
  /// A (rows, cols) matrix stored transposed, as (cols, rows) (GPT-2's Conv1D): copied out.
  WeightView transposed_matrix(const std::string& name, std::int64_t rows, std::int64_t cols) const {
    const auto& t = tensor(name, {cols, rows});
    const std::size_t elem = t.type == DType::F32 ? 4 : 2;
    AlignedBuffer<std::byte> buf(static_cast<std::size_t>(rows * cols) * elem);
    for (std::int64_t i = 0; i < cols; ++i)
      for (std::int64_t o = 0; o < rows; ++o)
        std::memcpy(buf.data() + static_cast<std::size_t>(o * cols + i) * elem, t.data.data() + static_cast<std::size_t>(i * rows + o) * elem, elem);
    storage_->owned.push_back(std::move(buf));
    return WeightView::dense(t.type, storage_->owned.back().data(), rows, cols);
  }
  /// A float32 vector (converted from F16/BF16 if stored so).
  const float* vector(const std::string& name, std::int64_t n) const {
    const auto& t = tensor(name, {n});
    if (t.type == DType::F32 && reinterpret_cast<std::uintptr_t>(t.data.data()) % alignof(float) == 0) {
      return reinterpret_cast<const float*>(t.data.data());
    }
    AlignedBuffer<std::byte> buf(static_cast<std::size_t>(n) * sizeof(float));
    quant::dequantize_row(t.type, t.data.data(), reinterpret_cast<float*>(buf.data()), n);
    storage_->owned.push_back(std::move(buf));
    return reinterpret_cast<const float*>(storage_->owned.back().data());
  }
  const float* optional_vector(const std::string& name, std::int64_t n) const { return has(name) ? vector(name, n) : nullptr; }

  static std::string shape_string(const std::vector<std::int64_t>& s) {
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
  }

 private:
  std::shared_ptr<Storage> storage_;
};

}  // namespace hf_loading

/// The "model_type" of a Hugging Face folder's config.json.
inline std::string hf_model_type(const std::filesystem::path& folder) {
  const auto j = hf_loading::read_config(folder);
  if (!j.contains("model_type") || !j["model_type"].is_string()) {
    throw FormatError((folder / "config.json").string(), "field \"model_type\" is missing");
  }
  return j["model_type"].get<std::string>();
}

/// A Llama model from a Hugging Face folder (model_type "llama").
inline LlamaModel load_llama_hf(const std::filesystem::path& folder) {
  const hf_loading::Config cfg(hf_loading::read_config(folder), (folder / "config.json").string());
  constexpr std::int64_t kBig = 1 << 20;
  LlamaConfig c;
  c.dim = cfg.integer("hidden_size", 1, kBig);
  c.hidden_dim = cfg.integer("intermediate_size", 1, 4 * kBig);
  c.n_layers = cfg.integer("num_hidden_layers", 1, 4096);
  c.n_heads = cfg.integer("num_attention_heads", 1, c.dim);
  c.n_kv_heads = cfg.integer_or("num_key_value_heads", 1, c.n_heads, c.n_heads);
  c.vocab_size = cfg.integer("vocab_size", 1, 1 << 24);
  c.max_seq_len = cfg.integer("max_position_embeddings", 1, 1 << 24);
  c.norm_eps = cfg.real_or("rms_norm_eps", 1e-6f);
  c.rope_theta = cfg.real_or("rope_theta", 10000.0f);
  c.rope_layout = kernels::RopeLayout::RotateHalf;
  c.bos_id = cfg.token_or("bos_token_id", 1);
  c.eos_id = cfg.token_or("eos_token_id", 2);
  if (cfg.has("rope_scaling")) {
    const auto& rs = cfg.json()["rope_scaling"];
    const std::string type = rs.value("rope_type", rs.value("type", std::string("none")));
    if (type == "linear") {
      const double factor = rs.value("factor", 1.0);
      if (!(factor > 0)) throw FormatError(cfg.path(), "rope_scaling.factor must be positive");
      c.rope_freq_scale = static_cast<float>(1.0 / factor);
    } else if (type != "none" && type != "default") {
      throw UnsupportedError(detail::str_cat(cfg.path(), ": rope_scaling type '", type, "' is not supported (supported: linear)"));
    }
  }
  try {
    c.validate();
  } catch (const InvalidArgument& e) {
    throw FormatError(cfg.path(), e.what());
  }
  hf_loading::Binder b(folder);
  const std::int64_t dim = c.dim, q_dim = static_cast<std::int64_t>(c.head_dim()) * c.n_heads, kv = c.kv_dim(), hid = c.hidden_dim;
  LlamaWeights w;
  w.token_embedding = b.matrix("model.embed_tokens.weight", c.vocab_size, dim);
  w.final_norm = b.vector("model.norm.weight", dim);
  const bool tied = cfg.boolean_or("tie_word_embeddings", false) || !b.has("lm_head.weight");
  w.classifier = tied ? w.token_embedding : b.matrix("lm_head.weight", c.vocab_size, dim);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LlamaLayerWeights L;
    L.attn_norm = b.vector(p + "input_layernorm.weight", dim);
    L.wq = b.matrix(p + "self_attn.q_proj.weight", q_dim, dim);
    L.wk = b.matrix(p + "self_attn.k_proj.weight", kv, dim);
    L.wv = b.matrix(p + "self_attn.v_proj.weight", kv, dim);
    L.wo = b.matrix(p + "self_attn.o_proj.weight", dim, q_dim);
    L.ffn_norm = b.vector(p + "post_attention_layernorm.weight", dim);
    L.w_gate = b.matrix(p + "mlp.gate_proj.weight", hid, dim);
    L.w_down = b.matrix(p + "mlp.down_proj.weight", dim, hid);
    L.w_up = b.matrix(p + "mlp.up_proj.weight", hid, dim);
    w.layers.push_back(L);
  }
  return LlamaModel(c, std::move(w), b.storage());
}

/// A GPT-2 model from a Hugging Face folder (model_type "gpt2").
inline Gpt2Model load_gpt2_hf(const std::filesystem::path& folder) {
  const hf_loading::Config cfg(hf_loading::read_config(folder), (folder / "config.json").string());
  constexpr std::int64_t kBig = 1 << 20;
  Gpt2Config c;
  c.dim = cfg.integer("n_embd", 1, kBig);
  c.n_layers = cfg.integer("n_layer", 1, 4096);
  c.n_heads = cfg.integer("n_head", 1, c.dim);
  c.hidden_dim = cfg.integer_or("n_inner", 1, 4 * kBig, 4 * c.dim);
  c.vocab_size = cfg.integer("vocab_size", 1, 1 << 24);
  c.max_seq_len = cfg.integer_or("n_positions", 1, 1 << 24, cfg.integer_or("n_ctx", 1, 1 << 24, 1024));
  c.norm_eps = cfg.real_or("layer_norm_epsilon", 1e-5f);
  c.bos_id = cfg.token_or("bos_token_id", -1);
  c.eos_id = cfg.token_or("eos_token_id", -1);
  if (cfg.has("activation_function")) {
    const std::string act = cfg.json()["activation_function"].is_string() ? cfg.json()["activation_function"].get<std::string>() : "";
    if (act != "gelu_new" && act != "gelu_pytorch_tanh" && act != "gelu_fast") {
      throw UnsupportedError(detail::str_cat(cfg.path(), ": activation_function '", act, "' is not supported (GPT-2 uses gelu_new)"));
    }
  }
  try {
    c.validate();
  } catch (const InvalidArgument& e) {
    throw FormatError(cfg.path(), e.what());
  }
  hf_loading::Binder b(folder);
  // Some exports drop the "transformer." prefix.
  const std::string root = b.has("transformer.wte.weight") ? "transformer." : "";
  const std::int64_t dim = c.dim, hid = c.hidden_dim;
  Gpt2Weights w;
  w.token_embedding = b.matrix(root + "wte.weight", c.vocab_size, dim);
  w.position_embedding = b.matrix(root + "wpe.weight", c.max_seq_len, dim);
  w.final_norm_w = b.vector(root + "ln_f.weight", dim);
  w.final_norm_b = b.optional_vector(root + "ln_f.bias", dim);
  const bool tied = cfg.boolean_or("tie_word_embeddings", true) || !b.has("lm_head.weight");
  w.classifier = tied ? w.token_embedding : b.matrix("lm_head.weight", c.vocab_size, dim);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = root + "h." + std::to_string(l) + ".";
    Gpt2LayerWeights L;
    L.ln1_w = b.vector(p + "ln_1.weight", dim);
    L.ln1_b = b.optional_vector(p + "ln_1.bias", dim);
    L.qkv = b.transposed_matrix(p + "attn.c_attn.weight", 3 * dim, dim);
    L.qkv_b = b.optional_vector(p + "attn.c_attn.bias", 3 * dim);
    L.out = b.transposed_matrix(p + "attn.c_proj.weight", dim, dim);
    L.out_b = b.optional_vector(p + "attn.c_proj.bias", dim);
    L.ln2_w = b.vector(p + "ln_2.weight", dim);
    L.ln2_b = b.optional_vector(p + "ln_2.bias", dim);
    L.up = b.transposed_matrix(p + "mlp.c_fc.weight", hid, dim);
    L.up_b = b.optional_vector(p + "mlp.c_fc.bias", hid);
    L.down = b.transposed_matrix(p + "mlp.c_proj.weight", dim, hid);
    L.down_b = b.optional_vector(p + "mlp.c_proj.bias", dim);
    w.layers.push_back(L);
  }
  return Gpt2Model(c, std::move(w), b.storage());
}

}  // namespace tinfer
