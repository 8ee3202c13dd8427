// Shared by tinfer-convert and tinfer-quantize: a Hugging Face folder (config.json +
// safetensors, model_type llama or gpt2) as a GGUF image in llama.cpp's conventions.
//
// Conventions applied: Llama's Q and K rows go from Hugging Face's rotate-half RoPE layout to
// GGUF's interleaved pairs; GPT-2's Conv1D weights (stored [in, out]) are transposed to rows of
// outputs. Norm weights and biases stay F32; matrices take the output type.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <tinfer/tinfer.hpp>

namespace tinfer_examples {

namespace fs = std::filesystem;
using tinfer::DType;
using tinfer::io::GgufArray;
using tinfer::io::GgufValue;
using tinfer::io::GgufWriter;

struct HfConvertOptions {
  std::string input;      // the Hugging Face folder
  std::string tokenizer;  // tokenizer to embed (empty: the folder's own, if any)
  DType outtype = DType::F16;
  std::string program = "tinfer-convert";  // for notes on stderr
};

// A tensor of the source as float32, row-major with the given shape.
inline std::vector<float> load_f32(const tinfer::io::SafetensorsModel& st, const std::string& name, std::vector<std::int64_t> shape) {
  const auto& t = st.get(name);
  if (t.shape != shape) {
    throw tinfer::FormatError(t.file, "tensor '" + name + "' has an unexpected shape");
  }
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<float> out(static_cast<std::size_t>(n));
  tinfer::quant::dequantize_row(t.type, t.data.data(), out.data(), n);
  return out;
}

inline std::vector<std::byte> encode_as(const std::vector<float>& v, DType type) {
  std::vector<std::byte> out;
  if (type == DType::F32) {
    out.resize(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
  }
  out.resize(v.size() * 2);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::uint16_t b = type == DType::F16 ? tinfer::f16::from_float(v[i]) : tinfer::bf16::from_float(v[i]);
    std::memcpy(out.data() + 2 * i, &b, 2);
  }
  return out;
}

// (rows, cols) row-major -> GGUF dims {cols, rows}.
inline void add_matrix(GgufWriter& w, const std::string& name, const std::vector<float>& v, std::int64_t rows, std::int64_t cols, DType type) {
  w.add_tensor(name, {cols, rows}, type, encode_as(v, type));
}
inline void add_vector(GgufWriter& w, const std::string& name, const std::vector<float>& v) {
  w.add_tensor(name, {static_cast<std::int64_t>(v.size())}, DType::F32, encode_as(v, DType::F32));
}

inline std::vector<float> transpose(const std::vector<float>& v, std::int64_t rows, std::int64_t cols) {  // (rows, cols) -> (cols, rows)
  std::vector<float> t(v.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) t[static_cast<std::size_t>(c * rows + r)] = v[static_cast<std::size_t>(r * cols + c)];
  return t;
}

// Hugging Face rotate-half rows -> interleaved pairs: within each head, GGUF row 2i + s is HF
// row s * head_dim/2 + i (the inverse of the permutation Hugging Face's converter applies).
inline std::vector<float> rotate_half_to_interleaved(const std::vector<float>& v, std::int64_t n_heads, std::int64_t head_dim, std::int64_t cols) {
  std::vector<float> out(v.size());
  for (std::int64_t h = 0; h < n_heads; ++h)
    for (std::int64_t i = 0; i < head_dim / 2; ++i)
      for (std::int64_t s = 0; s < 2; ++s) {
        const std::int64_t src = h * head_dim + s * (head_dim / 2) + i, dst = h * head_dim + 2 * i + s;
        std::memcpy(&out[static_cast<std::size_t>(dst * cols)], &v[static_cast<std::size_t>(src * cols)], static_cast<std::size_t>(cols) * 4);
      }
  return out;
}

inline nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw tinfer::FormatError(p.string(), std::string("not valid JSON: ") + e.what());
  }
}

// The tokenizer metadata, written as llama.cpp's converters write it.
inline void add_tokenizer(GgufWriter& w, const HfConvertOptions& o, const std::string& arch) {
  fs::path src = o.tokenizer.empty() ? fs::path(o.input) : fs::path(o.tokenizer);
  if (arch == "gpt2") {
    // Byte-level BPE: tokens and merges exactly as the source files write them.
    std::vector<std::string> tokens, merges;
    std::vector<std::int32_t> types;
    nlohmann::json vocab, merge_list;
    std::vector<std::string> specials;
    fs::path tj = fs::is_directory(src) ? src / "tokenizer.json" : src;
    if (fs::is_regular_file(tj) && tj.filename() == "tokenizer.json") {
      const auto j = read_json(tj);
      vocab = j.at("model").at("vocab");
      merge_list = j.at("model").at("merges");
      for (const auto& a : j.value("added_tokens", nlohmann::json::array())) specials.push_back(a.at("content").get<std::string>());
    } else if (fs::is_directory(src) && fs::exists(src / "vocab.json") && fs::exists(src / "merges.txt")) {
      vocab = read_json(src / "vocab.json");
      std::ifstream m(src / "merges.txt");
      merge_list = nlohmann::json::array();
      for (std::string line; std::getline(m, line);) {
        if (line.empty() || line.rfind("#version", 0) == 0) continue;
        merge_list.push_back(line);
      }
    } else {
      std::fprintf(stderr, "%s: note: no tokenizer found; the GGUF file will have none\n", o.program.c_str());
      return;
    }
    tokens.assign(vocab.size(), "");
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const auto id = it.value().get<std::size_t>();
      if (id >= tokens.size()) throw tinfer::FormatError(src.string(), "vocabulary ids are not dense");
      tokens[id] = it.key();
    }
    for (const auto& m : merge_list) merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
    std::int32_t eot = -1;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const bool special = std::find(specials.begin(), specials.end(), tokens[i]) != specials.end() || tokens[i] == "<|endoftext|>";
      types.push_back(special ? 3 : 1);
      if (tokens[i] == "<|endoftext|>") eot = static_cast<std::int32_t>(i);
    }
    w.set("tokenizer.ggml.model", GgufValue(std::string("gpt2")));
    w.set("tokenizer.ggml.pre", GgufValue(std::string("gpt-2")));
    w.set("tokenizer.ggml.tokens", GgufValue(GgufArray::of(tokens)));
    w.set("tokenizer.ggml.token_type", GgufValue(GgufArray::of(types)));
    w.set("tokenizer.ggml.merges", GgufValue(GgufArray::of(merges)));
    if (eot >= 0) {
      w.set("tokenizer.ggml.bos_token_id", GgufValue(static_cast<std::uint32_t>(eot)));
      w.set("tokenizer.ggml.eos_token_id", GgufValue(static_cast<std::uint32_t>(eot)));
    }
    return;
  }
  // Llama: a SentencePiece-style vocabulary (tokenizer.model, tokenizer.json or tokenizer.bin).
  std::unique_ptr<tinfer::Tokenizer> tok;
  try {
    tok = tinfer::load_tokenizer(src);
  } catch (const tinfer::IoError&) {
    std::fprintf(stderr, "%s: note: no tokenizer found; the GGUF file will have none (pass -z)\n", o.program.c_str());
    return;
  }
  const auto* spm = dynamic_cast<const tinfer::SentencePieceBpeTokenizer*>(tok.get());
  if (spm == nullptr) throw tinfer::UnsupportedError(src.string() + ": a Llama model needs a SentencePiece-style tokenizer");
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<std::int32_t> types;
  for (std::int32_t i = 0; i < tok->vocab_size(); ++i) {
    pieces.push_back(tok->token_text(i));
    scores.push_back(spm->score(i));
    types.push_back(static_cast<std::int32_t>(tok->token_type(i)));
  }
  w.set("tokenizer.ggml.model", GgufValue(std::string("llama")));
  w.set("tokenizer.ggml.pre", GgufValue(std::string("default")));
  w.set("tokenizer.ggml.tokens", GgufValue(GgufArray::of(pieces)));
  w.set("tokenizer.ggml.scores", GgufValue(GgufArray::of(scores)));
  w.set("tokenizer.ggml.token_type", GgufValue(GgufArray::of(types)));
  if (tok->bos_id() >= 0) w.set("tokenizer.ggml.bos_token_id", GgufValue(static_cast<std::uint32_t>(tok->bos_id())));
  if (tok->eos_id() >= 0) w.set("tokenizer.ggml.eos_token_id", GgufValue(static_cast<std::uint32_t>(tok->eos_id())));
  if (tok->unk_id() >= 0) w.set("tokenizer.ggml.unknown_token_id", GgufValue(static_cast<std::uint32_t>(tok->unk_id())));
  w.set("tokenizer.ggml.add_bos_token", GgufValue(tok->add_bos_by_default()));
  w.set("tokenizer.ggml.add_space_prefix", GgufValue(spm->options().add_dummy_prefix));
}

inline GgufWriter hf_to_gguf(const HfConvertOptions& o) {
  const fs::path folder = o.input;
  const std::string type = tinfer::hf_model_type(folder);
  // The typed loaders validate config.json and every tensor's shape before anything is written.
  GgufWriter w;
  w.set("general.architecture", GgufValue(type));
  w.set("general.name", GgufValue(folder.filename().string()));
  w.set("general.file_type", GgufValue(static_cast<std::uint32_t>(o.outtype == DType::F32 ? 0 : o.outtype == DType::F16 ? 1 : 32)));
  const tinfer::io::SafetensorsModel st(folder);
  if (type == "llama") {
    const auto model = tinfer::load_llama_hf(folder);
    const auto& c = model.config();
    const std::int64_t dim = c.dim, hd = c.head_dim(), kv = c.kv_dim(), hid = c.hidden_dim, V = c.vocab_size;
    w.set("llama.context_length", GgufValue(static_cast<std::uint32_t>(c.max_seq_len)));
    w.set("llama.embedding_length", GgufValue(static_cast<std::uint32_t>(c.dim)));
    w.set("llama.block_count", GgufValue(static_cast<std::uint32_t>(c.n_layers)));
    w.set("llama.feed_forward_length", GgufValue(static_cast<std::uint32_t>(c.hidden_dim)));
    w.set("llama.rope.dimension_count", GgufValue(static_cast<std::uint32_t>(c.head_dim())));
    w.set("llama.attention.head_count", GgufValue(static_cast<std::uint32_t>(c.n_heads)));
    w.set("llama.attention.head_count_kv", GgufValue(static_cast<std::uint32_t>(c.n_kv_heads)));
    w.set("llama.attention.layer_norm_rms_epsilon", GgufValue(c.norm_eps));
    w.set("llama.rope.freq_base", GgufValue(c.rope_theta));
    if (c.rope_freq_scale != 1.0f) {
      w.set("llama.rope.scaling.type", GgufValue(std::string("linear")));
      w.set("llama.rope.scaling.factor", GgufValue(1.0f / c.rope_freq_scale));
    }
    w.set("llama.vocab_size", GgufValue(static_cast<std::uint32_t>(c.vocab_size)));
    add_tokenizer(w, o, type);
    add_matrix(w, "token_embd.weight", load_f32(st, "model.embed_tokens.weight", {V, dim}), V, dim, o.outtype);
    add_vector(w, "output_norm.weight", load_f32(st, "model.norm.weight", {dim}));
    if (model.weights().classifier.data != model.weights().token_embedding.data) {
      add_matrix(w, "output.weight", load_f32(st, "lm_head.weight", {V, dim}), V, dim, o.outtype);
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string s = "model.layers." + std::to_string(l) + ".", g = "blk." + std::to_string(l) + ".";
      add_vector(w, g + "attn_norm.weight", load_f32(st, s + "input_layernorm.weight", {dim}));
      add_matrix(w, g + "attn_q.weight", rotate_half_to_interleaved(load_f32(st, s + "self_attn.q_proj.weight", {c.n_heads * hd, dim}), c.n_heads, hd, dim),
                 c.n_heads * hd, dim, o.outtype);
      add_matrix(w, g + "attn_k.weight", rotate_half_to_interleaved(load_f32(st, s + "self_attn.k_proj.weight", {kv, dim}), c.n_kv_heads, hd, dim), kv,
                 dim, o.outtype);
      add_matrix(w, g + "attn_v.weight", load_f32(st, s + "self_attn.v_proj.weight", {kv, dim}), kv, dim, o.outtype);
      add_matrix(w, g + "attn_output.weight", load_f32(st, s + "self_attn.o_proj.weight", {dim, c.n_heads * hd}), dim, c.n_heads * hd, o.outtype);
      add_vector(w, g + "ffn_norm.weight", load_f32(st, s + "post_attention_layernorm.weight", {dim}));
      add_matrix(w, g + "ffn_gate.weight", load_f32(st, s + "mlp.gate_proj.weight", {hid, dim}), hid, dim, o.outtype);
      add_matrix(w, g + "ffn_down.weight", load_f32(st, s + "mlp.down_proj.weight", {dim, hid}), dim, hid, o.outtype);
      add_matrix(w, g + "ffn_up.weight", load_f32(st, s + "mlp.up_proj.weight", {hid, dim}), hid, dim, o.outtype);
    }
  } else if (type == "gpt2") {
    const auto model = tinfer::load_gpt2_hf(folder);
    const auto& c = model.config();
    const std::int64_t dim = c.dim, hid = c.hidden_dim, V = c.vocab_size, P = c.max_seq_len;
    const std::string root = st.find("transformer.wte.weight") ? "transformer." : "";
    w.set("gpt2.context_length", GgufValue(static_cast<std::uint32_t>(c.max_seq_len)));
    w.set("gpt2.embedding_length", GgufValue(static_cast<std::uint32_t>(c.dim)));
    w.set("gpt2.feed_forward_length", GgufValue(static_cast<std::uint32_t>(c.hidden_dim)));
    w.set("gpt2.block_count", GgufValue(static_cast<std::uint32_t>(c.n_layers)));
    w.set("gpt2.attention.head_count", GgufValue(static_cast<std::uint32_t>(c.n_heads)));
    w.set("gpt2.attention.layer_norm_epsilon", GgufValue(c.norm_eps));
    add_tokenizer(w, o, type);
    add_matrix(w, "token_embd.weight", load_f32(st, root + "wte.weight", {V, dim}), V, dim, o.outtype);
    add_matrix(w, "position_embd.weight", load_f32(st, root + "wpe.weight", {P, dim}), P, dim, DType::F32);
    add_vector(w, "output_norm.weight", load_f32(st, root + "ln_f.weight", {dim}));
    add_vector(w, "output_norm.bias", load_f32(st, root + "ln_f.bias", {dim}));
    if (model.weights().classifier.data != model.weights().token_embedding.data) {
      add_matrix(w, "output.weight", load_f32(st, "lm_head.weight", {V, dim}), V, dim, o.outtype);
    }
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string s = root + "h." + std::to_string(l) + ".", g = "blk." + std::to_string(l) + ".";
      add_vector(w, g + "attn_norm.weight", load_f32(st, s + "ln_1.weight", {dim}));
      add_vector(w, g + "attn_norm.bias", load_f32(st, s + "ln_1.bias", {dim}));
      add_matrix(w, g + "attn_qkv.weight", transpose(load_f32(st, s + "attn.c_attn.weight", {dim, 3 * dim}), dim, 3 * dim), 3 * dim, dim, o.outtype);
      add_vector(w, g + "attn_qkv.bias", load_f32(st, s + "attn.c_attn.bias", {3 * dim}));
      add_matrix(w, g + "attn_output.weight", transpose(load_f32(st, s + "attn.c_proj.weight", {dim, dim}), dim, dim), dim, dim, o.outtype);
      add_vector(w, g + "attn_output.bias", load_f32(st, s + "attn.c_proj.bias", {dim}));
      add_vector(w, g + "ffn_norm.weight", load_f32(st, s + "ln_2.weight", {dim}));
      add_vector(w, g + "ffn_norm.bias", load_f32(st, s + "ln_2.bias", {dim}));
      add_matrix(w, g + "ffn_up.weight", transpose(load_f32(st, s + "mlp.c_fc.weight", {dim, hid}), dim, hid), hid, dim, o.outtype);
      add_vector(w, g + "ffn_up.bias", load_f32(st, s + "mlp.c_fc.bias", {hid}));
      add_matrix(w, g + "ffn_down.weight", transpose(load_f32(st, s + "mlp.c_proj.weight", {hid, dim}), hid, dim), dim, hid, o.outtype);
      add_vector(w, g + "ffn_down.bias", load_f32(st, s + "mlp.c_proj.bias", {dim}));
    }
  } else {
    throw tinfer::UnsupportedError(folder.string() + ": model_type '" + type + "' is not supported (supported: llama, gpt2)");
  }
  return w;
}

}  // namespace tinfer_examples
