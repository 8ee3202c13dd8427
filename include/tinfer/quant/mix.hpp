// tinfer/quant/mix.hpp: quantization presets (llama.cpp's file types such as Q4_K_M) and the
// rules that choose each tensor's type, as llama-quantize applies them.
//
// A preset has a default block type; unless `pure`, some tensors get more bits (the output /
// tied embedding Q6_K, attention V and FFN down in chosen layers, ...). A tensor whose row
// length is not a multiple of its type's block size falls back: Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0,
// Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when even that does not divide the row. Where llama.cpp
// refuses a legacy type (Q4_0..Q8_0) for such a row, tinfer also falls back to F16.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"

namespace tinfer::quant {

/// llama.cpp's llama_ftype values (written to general.file_type).
enum class FileType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q8_0 = 7,
  Q5_0 = 8,
  Q5_1 = 9,
  Q2_K = 10,
  Q3_K_S = 11,
  Q3_K_M = 12,
  Q3_K_L = 13,
  Q4_K_S = 14,
  Q4_K_M = 15,
  Q5_K_S = 16,
  Q5_K_M = 17,
  Q6_K = 18,
  BF16 = 32,
};

struct FileTypeName {
  std::string_view name;
  FileType type;
};

/// The TYPE names tinfer-quantize accepts, as llama-quantize spells them (Q3_K, Q4_K, Q5_K are
/// aliases of the _M mixes).
inline constexpr FileTypeName kFileTypeNames[] = {
    {"Q4_0", FileType::Q4_0},     {"Q4_1", FileType::Q4_1},     {"Q5_0", FileType::Q5_0},     {"Q5_1", FileType::Q5_1},
    {"Q2_K", FileType::Q2_K},     {"Q3_K", FileType::Q3_K_M},   {"Q3_K_S", FileType::Q3_K_S}, {"Q3_K_M", FileType::Q3_K_M},
    {"Q3_K_L", FileType::Q3_K_L}, {"Q4_K", FileType::Q4_K_M},   {"Q4_K_S", FileType::Q4_K_S}, {"Q4_K_M", FileType::Q4_K_M},
    {"Q5_K", FileType::Q5_K_M},   {"Q5_K_S", FileType::Q5_K_S}, {"Q5_K_M", FileType::Q5_K_M}, {"Q6_K", FileType::Q6_K},
    {"Q8_0", FileType::Q8_0},     {"F16", FileType::F16},       {"BF16", FileType::BF16},     {"F32", FileType::F32},
};

/// The preset named `name` (case-sensitive, e.g. "Q4_K_M"), or nullopt.
inline std::optional<FileType> parse_file_type(std::string_view name) {
  for (const auto& e : kFileTypeNames)
    if (e.name == name) return e.type;
  return std::nullopt;
}

/// The canonical name of a preset ("Q4_K_M" for FileType::Q4_K_M).
inline std::string_view file_type_name(FileType t) {
  for (const auto& e : kFileTypeNames)
    if (e.type == t && e.name != "Q3_K" && e.name != "Q4_K" && e.name != "Q5_K") return e.name;
  return "unknown";
}

/// The block or element type most tensors of a preset get.
inline DType default_type(FileType t) {
  switch (t) {
    case FileType::F32: return DType::F32;
    case FileType::F16: return DType::F16;
    case FileType::BF16: return DType::BF16;
    case FileType::Q4_0: return DType::Q4_0;
    case FileType::Q4_1: return DType::Q4_1;
    case FileType::Q5_0: return DType::Q5_0;
    case FileType::Q5_1: return DType::Q5_1;
    case FileType::Q8_0: return DType::Q8_0;
    case FileType::Q2_K: return DType::Q2_K;
    case FileType::Q3_K_S: case FileType::Q3_K_M: case FileType::Q3_K_L: return DType::Q3_K;
    case FileType::Q4_K_S: case FileType::Q4_K_M: return DType::Q4_K;
    case FileType::Q5_K_S: case FileType::Q5_K_M: return DType::Q5_K;
    case FileType::Q6_K: return DType::Q6_K;
  }
  throw InvalidArgument(tinfer::detail::str_cat("unknown file type ", static_cast<std::uint32_t>(t)));
}

inline bool is_block_type(DType t) { return dtype_info(t) && dtype_info(t)->block_size > 1; }

/// What the type planner needs to know about a tensor.
struct TensorDesc {
  std::string name;
  std::vector<std::int64_t> dims;  // innermost first (dims[0] = row length)
  DType type = DType::F32;
};

/// The model facts the rules use.
struct ModelDesc {
  int n_layers = 0;
  int n_heads = 1;
  int n_kv_heads = 1;
};

/// Sorts tensors as llama.cpp's loader visits them: tensors outside blocks first, then block 0,
/// 1, ... (numerically), each group by name. The rules count layers in this order.
inline bool llama_tensor_order_less(const std::string& a, const std::string& b) {
  auto layer = [](const std::string& s) {
    if (s.rfind("blk.", 0) != 0) return -1;
    int v = 0;
    std::size_t i = 4;
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return -1;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
    return (i < s.size() && s[i] == '.') ? v : -1;
  };
  const int la = layer(a), lb = layer(b);
  if (la != lb) return la < lb;
  return a < b;
}

/// Chooses each tensor's type for a preset. Call choose() once per tensor in
/// llama_tensor_order_less order (the rules count attention-V and FFN-down tensors as they go).
class TypePlanner {
 public:
  enum class Category { Output, TokenEmbd, AttnQKV, AttnV, AttnK, AttnQ, AttnOutput, FfnUp, FfnGate, FfnDown, Other };

  TypePlanner(FileType ftype, bool pure, ModelDesc model, const std::vector<std::string>& all_names)
      : ftype_(ftype), pure_(pure), model_(model) {
    for (const auto& n : all_names) {
      const Category c = category(n);
      if (c == Category::AttnV || c == Category::AttnQKV) ++n_attention_wv_;
      if (c == Category::Output) tied_ = false;
    }
  }

  static Category category(const std::string& n) {
    if (n == "output.weight") return Category::Output;
    if (n == "token_embd.weight") return Category::TokenEmbd;
    auto has = [&](const char* s) { return n.find(s) != std::string::npos; };
    if (has("attn_qkv.weight")) return Category::AttnQKV;
    if (has("attn_v.weight")) return Category::AttnV;
    if (has("attn_k.weight")) return Category::AttnK;
    if (has("attn_q.weight")) return Category::AttnQ;
    if (has("attn_output.weight")) return Category::AttnOutput;
    if (has("ffn_up")) return Category::FfnUp;
    if (has("ffn_gate")) return Category::FfnGate;
    if (has("ffn_down")) return Category::FfnDown;
    return Category::Other;
  }

  /// Whether llama.cpp quantizes this tensor at all (2-D+ weights except norms and positions).
  static bool allows_quantization(const TensorDesc& t) {
    if (t.dims.size() < 2) return false;
    const std::string& n = t.name;
    if (n.size() < 6 || n.compare(n.size() - 6, 6, "weight") != 0) return false;
    if (n.find("_norm.weight") != std::string::npos) return false;
    if (n.find("ffn_gate_inp.weight") != std::string::npos) return false;
    if (n == "position_embd.weight" || n == "token_types.weight") return false;
    return true;
  }

  /// The type `t` is written in. Tensors not quantized keep their type.
  DType choose(const TensorDesc& t) {
    if (!allows_quantization(t)) return t.type;
    const DType def = default_type(ftype_);
    if (!is_block_type(def)) return def;
    DType type = def;
    if (!pure_) type = mix_rule(t, type);
    return fallback(t, type);
  }

  /// Number of tensors that needed a fallback type so far.
  int n_fallback() const noexcept { return n_fallback_; }

 private:
  static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

  DType mix_rule(const TensorDesc& t, DType type) {
    const Category cat = category(t.name);
    const FileType f = ftype_;
    const int n_gqa = model_.n_kv_heads > 0 ? model_.n_heads / model_.n_kv_heads : 1;
    if (cat == Category::Output || (tied_ && cat == Category::TokenEmbd)) {
      const auto bs = static_cast<std::int64_t>(dtype_info(type)->block_size);
      if (t.dims[0] % bs != 0) {
        type = DType::Q8_0;
      } else if (type != DType::Q8_0) {
        type = DType::Q6_K;
      }
    } else if (cat == Category::TokenEmbd) {
      // No rule for the presets tinfer offers.
    } else if (cat == Category::AttnV || cat == Category::AttnQKV) {
      if (f == FileType::Q2_K) {
        type = n_gqa >= 4 ? DType::Q4_K : DType::Q3_K;
      } else if (f == FileType::Q3_K_M) {
        type = i_attention_wv_ < 2 ? DType::Q5_K : DType::Q4_K;
      } else if (f == FileType::Q3_K_L) {
        type = DType::Q5_K;
      } else if ((f == FileType::Q4_K_M || f == FileType::Q5_K_M) && use_more_bits(i_attention_wv_, n_attention_wv_)) {
        type = DType::Q6_K;
      } else if (f == FileType::Q4_K_S && i_attention_wv_ < 4) {
        type = DType::Q5_K;
      }
      ++i_attention_wv_;
    } else if (cat == Category::FfnDown) {
      const int i = i_ffn_down_, n = model_.n_layers;
      if (f == FileType::Q2_K) {
        type = DType::Q3_K;
      } else if (f == FileType::Q3_K_M) {
        type = i < n / 16 ? DType::Q5_K : DType::Q4_K;
      } else if (f == FileType::Q3_K_L) {
        type = DType::Q5_K;
      } else if (f == FileType::Q4_K_M) {
        if (use_more_bits(i, n)) type = DType::Q6_K;
      } else if (f == FileType::Q5_K_M && use_more_bits(i, n)) {
        type = DType::Q6_K;
      } else if (f == FileType::Q4_K_S && i < n / 8) {
        type = DType::Q5_K;
      }
      ++i_ffn_down_;
    } else if (cat == Category::AttnOutput) {
      if (f == FileType::Q2_K) type = DType::Q3_K;
      else if (f == FileType::Q3_K_M) type = DType::Q4_K;
      else if (f == FileType::Q3_K_L) type = DType::Q5_K;
    }
    return type;
  }

  DType fallback(const TensorDesc& t, DType type) {
    const std::int64_t ncols = t.dims[0];
    if (ncols % static_cast<std::int64_t>(dtype_info(type)->block_size) == 0) return type;
    ++n_fallback_;
    switch (type) {
      case DType::Q2_K: case DType::Q3_K: type = DType::Q4_0; break;
      case DType::Q4_K: type = DType::Q5_0; break;
      case DType::Q5_K: type = DType::Q5_1; break;
      case DType::Q6_K: type = DType::Q8_0; break;
      default: type = DType::F16; break;  // legacy types: llama.cpp stops here; tinfer keeps F16
    }
    if (ncols % static_cast<std::int64_t>(dtype_info(type)->block_size) != 0) type = DType::F16;
    return type;
  }

  FileType ftype_;
  bool pure_;
  ModelDesc model_;
  bool tied_ = true;
  int n_attention_wv_ = 0, i_attention_wv_ = 0, i_ffn_down_ = 0;
  int n_fallback_ = 0;
};

}  // namespace tinfer::quant
