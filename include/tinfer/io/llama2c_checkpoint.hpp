// tinfer/io/llama2c_checkpoint.hpp: reader for llama2.c model checkpoints (the legacy format
// written by llama2.c's export, read by its run.c).
//
// Layout: seven int32 header fields (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means the classifier is stored separately instead of shared
// with the token embedding), then float32 arrays in this order (shapes row-major):
//   token_embedding (vocab, dim)
//   rms_att         (layer, dim)
//   wq              (layer, n_heads * head_size, dim)
//   wk              (layer, n_kv_heads * head_size, dim)
//   wv              (layer, n_kv_heads * head_size, dim)
//   wo              (layer, dim, n_heads * head_size)
//   rms_ffn         (layer, dim)
//   w1              (layer, hidden_dim, dim)
//   w2              (layer, dim, hidden_dim)
//   w3              (layer, hidden_dim, dim)
//   rms_final       (dim)
//   freq_cis_real, freq_cis_imag  (seq_len, head_size / 2) each, unused (RoPE is recomputed)
//   wcls            (vocab, dim), only when vocab_size < 0
// The weights are used in place from the memory-mapped file.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "tinfer/core/error.hpp"
#include "tinfer/core/mapped_file.hpp"
#include "tinfer/io/byte_reader.hpp"

namespace tinfer::io {

/// The header of a llama2.c checkpoint, validated.
struct Llama2cHeader {
  std::int32_t dim = 0;
  std::int32_t hidden_dim = 0;
  std::int32_t n_layers = 0;
  std::int32_t n_heads = 0;
  std::int32_t n_kv_heads = 0;
  std::int32_t vocab_size = 0;  // always positive here; see shared_classifier
  std::int32_t seq_len = 0;
  bool shared_classifier = true;
  std::int32_t head_size() const noexcept { return dim / n_heads; }
  std::int32_t kv_dim() const noexcept { return head_size() * n_kv_heads; }
};

/// Pointers to each weight array inside the mapped checkpoint (see the layout above).
struct Llama2cWeights {
  const float* token_embedding = nullptr;
  const float* rms_att = nullptr;
  const float* wq = nullptr;
  const float* wk = nullptr;
  const float* wv = nullptr;
  const float* wo = nullptr;
  const float* rms_ffn = nullptr;
  const float* w1 = nullptr;
  const float* w2 = nullptr;
  const float* w3 = nullptr;
  const float* rms_final = nullptr;
  const float* wcls = nullptr;
};

/// An opened llama2.c checkpoint: the mapping, its validated header, and weight pointers.
class Llama2cCheckpoint {
 public:
  /// Opens and validates `path`. Throws IoError if it cannot be read and FormatError (naming the
  /// field and offset) for absurd header values or a file too short for the weights it declares.
  explicit Llama2cCheckpoint(const std::string& path) : file_(path) {
    ByteReader r(file_.bytes(), path);
    auto field = [&](const char* name, std::int32_t lo, std::int32_t hi) {
      const std::size_t at = r.offset();
      const auto v = r.read<std::int32_t>(name);
      if (v < lo || v > hi) {
        throw FormatError(path, at, detail::str_cat("header field ", name, " = ", v, " is outside [", lo, ", ", hi,
                                                    "]; is this a llama2.c checkpoint (legacy format)?"));
      }
      return v;
    };
    constexpr std::int32_t kBig = 1 << 20;
    h_.dim = field("dim", 1, kBig);
    h_.hidden_dim = field("hidden_dim", 1, 4 * kBig);
    h_.n_layers = field("n_layers", 1, 4096);
    h_.n_heads = field("n_heads", 1, h_.dim);
    h_.n_kv_heads = field("n_kv_heads", 1, h_.n_heads);
    const std::size_t vocab_at = r.offset();
    const std::int32_t vocab = r.read<std::int32_t>("vocab_size");
    if (vocab == 0 || vocab < -(1 << 24) || vocab > (1 << 24)) {
      throw FormatError(path, vocab_at, detail::str_cat("header field vocab_size = ", vocab, " is absurd"));
    }
    h_.shared_classifier = vocab > 0;
    h_.vocab_size = vocab > 0 ? vocab : -vocab;
    h_.seq_len = field("seq_len", 1, 1 << 24);
    if (h_.dim % h_.n_heads != 0) {
      throw FormatError(path, 12, detail::str_cat("n_heads = ", h_.n_heads, " does not divide dim = ", h_.dim));
    }
    if (h_.n_heads % h_.n_kv_heads != 0) {
      throw FormatError(path, 16, detail::str_cat("n_kv_heads = ", h_.n_kv_heads, " does not divide n_heads = ", h_.n_heads));
    }
    if (h_.head_size() % 2 != 0) {
      throw FormatError(path, 12, detail::str_cat("head size ", h_.head_size(), " is odd; rotary embedding needs pairs"));
    }

    // Count the floats the header promises, in 64-bit arithmetic (every factor is < 2^25, every
    // product < 2^62, so nothing here overflows), and compare with the file's size.
    const std::uint64_t dim = static_cast<std::uint64_t>(h_.dim), hid = static_cast<std::uint64_t>(h_.hidden_dim);
    const std::uint64_t L = static_cast<std::uint64_t>(h_.n_layers), V = static_cast<std::uint64_t>(h_.vocab_size);
    const std::uint64_t q_dim = static_cast<std::uint64_t>(h_.n_heads) * static_cast<std::uint64_t>(h_.head_size());
    const std::uint64_t kv_dim = static_cast<std::uint64_t>(h_.kv_dim());
    const std::uint64_t rope = static_cast<std::uint64_t>(h_.seq_len) * static_cast<std::uint64_t>(h_.head_size());

    const std::uint64_t header_bytes = r.offset();
    std::uint64_t cursor = 0;  // in floats
    auto take = [&](std::uint64_t count) {
      const std::uint64_t at = cursor;
      cursor += count;
      return at;
    };
    const auto o_emb = take(V * dim);
    const auto o_rms_att = take(L * dim);
    const auto o_wq = take(L * q_dim * dim);
    const auto o_wk = take(L * kv_dim * dim);
    const auto o_wv = take(L * kv_dim * dim);
    const auto o_wo = take(L * dim * q_dim);
    const auto o_rms_ffn = take(L * dim);
    const auto o_w1 = take(L * hid * dim);
    const auto o_w2 = take(L * dim * hid);
    const auto o_w3 = take(L * hid * dim);
    const auto o_rms_final = take(dim);
    take(rope);  // freq_cis_real and freq_cis_imag: (seq_len, head_size/2) each
    const auto o_wcls = h_.shared_classifier ? o_emb : take(V * dim);
    const std::uint64_t need = header_bytes + cursor * sizeof(float);
    if (need > file_.size()) {
      throw FormatError(path, file_.size(),
                        detail::str_cat("file is ", file_.size(), " bytes but its header (dim ", h_.dim, ", hidden_dim ",
                                        h_.hidden_dim, ", ", h_.n_layers, " layers, vocab ", h_.vocab_size,
                                        ") needs ", need, " bytes: truncated download, or not a llama2.c checkpoint"));
    }
    // Weights start at byte 28, so float arrays are 4-byte aligned (mmap gives page alignment).
    const float* base = reinterpret_cast<const float*>(file_.data() + header_bytes);
    w_.token_embedding = base + o_emb;
    w_.rms_att = base + o_rms_att;
    w_.wq = base + o_wq;
    w_.wk = base + o_wk;
    w_.wv = base + o_wv;
    w_.wo = base + o_wo;
    w_.rms_ffn = base + o_rms_ffn;
    w_.w1 = base + o_w1;
    w_.w2 = base + o_w2;
    w_.w3 = base + o_w3;
    w_.rms_final = base + o_rms_final;
    w_.wcls = base + o_wcls;
  }

  const Llama2cHeader& header() const noexcept { return h_; }
  const Llama2cWeights& weights() const noexcept { return w_; }
  const std::string& path() const noexcept { return file_.path(); }

 private:
  MappedFile file_;
  Llama2cHeader h_;
  Llama2cWeights w_;
};

}  // namespace tinfer::io
