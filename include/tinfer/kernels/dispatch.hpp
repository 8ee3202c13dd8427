// tinfer/kernels/dispatch.hpp: run-time choice of kernels.
//
// One table of function pointers per instruction-set level, chosen once (default_isa(): the
// best the CPU supports, lowered by TINFER_ISA) and looked up once per operation, never per
// element. Each entry works on a range of rows so the inner loops inline.
//
// Quantized weight types have two paths. `dot_rows` (float activations; the scalar one
// dequantizes each row bit-exactly and is the reference) and `quant_dot`: x is quantized once
// per matvec call to 8-bit blocks (quantize_activations.hpp, in a per-thread scratch buffer of
// the calling thread) and every row is an integer dot product with it (scalar/quant_dot.hpp and
// its SIMD twins). matvec uses `quant_dot` when the table has one for the type.
#pragma once

#include <array>
#include <cstdlib>
#include <string_view>
#include <cstdint>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/avx2/dot_rows.hpp"
#include "tinfer/kernels/avx2/quant_dot.hpp"
#include "tinfer/kernels/avx512/dot_rows.hpp"
#include "tinfer/kernels/avx512/quant_dot.hpp"
#include "tinfer/kernels/cpu_features.hpp"
#include "tinfer/kernels/quantize_activations.hpp"
#include "tinfer/kernels/scalar/dot_rows.hpp"
#include "tinfer/kernels/scalar/quant_dot.hpp"

namespace tinfer::kernels {

/// y[r] = dot(W[r, :], x) for r in [r0, r1).
using DotRowsFn = void (*)(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1);

/// y[r] = dot(W[r, :], x) for r in [r0, r1), with x already quantized (`xq`, in the entry's
/// ActFormat).
using QuantDotRowsFn = void (*)(const WeightView& w, const void* xq, float* y, std::int64_t r0, std::int64_t r1);

/// The quantized-activation path of one weight type: how to prepare x, and the row kernel.
struct QuantDot {
  ActFormat act = ActFormat::None;
  QuantDotRowsFn rows = nullptr;
};

struct KernelTable {
  Isa isa = Isa::Scalar;
  std::array<DotRowsFn, 32> dot_rows{};  // indexed by DType value; null: type not supported
  std::array<QuantDot, 32> quant_dot{};  // indexed by DType value; rows null: use dot_rows

  QuantDot quant_dot_for(DType t) const noexcept {
    const auto i = static_cast<std::uint32_t>(t);
    return i < quant_dot.size() ? quant_dot[i] : QuantDot{};
  }

  DotRowsFn dot_rows_for(DType t) const {
    const auto i = static_cast<std::uint32_t>(t);
    DotRowsFn f = i < dot_rows.size() ? dot_rows[i] : nullptr;
    if (f == nullptr) {
      throw UnsupportedError(tinfer::detail::str_cat("no matrix-vector kernel for weight type ", dtype_name(t), " (",
                                             static_cast<std::uint32_t>(t), ")"));
    }
    return f;
  }
};

namespace detail {
inline void set(KernelTable& t, DType type, DotRowsFn f) { t.dot_rows[static_cast<std::size_t>(type)] = f; }

inline void set_q(KernelTable& t, DType type, ActFormat act, QuantDotRowsFn f) {
  t.quant_dot[static_cast<std::size_t>(type)] = {act, f};
}

/// The integer kernels of one implementation namespace (scalar, avx2, avx2vnni, avx512).
#define TINFER_SET_QUANT_DOT(table, ns)                                                        \
  do {                                                                                         \
    set_q(table, DType::Q4_0, ActFormat::Q8_32, ns::quant_dot_rows<DType::Q4_0>);              \
    set_q(table, DType::Q4_1, ActFormat::Q8_32, ns::quant_dot_rows<DType::Q4_1>);              \
    set_q(table, DType::Q5_0, ActFormat::Q8_32, ns::quant_dot_rows<DType::Q5_0>);              \
    set_q(table, DType::Q5_1, ActFormat::Q8_32, ns::quant_dot_rows<DType::Q5_1>);              \
    set_q(table, DType::Q8_0, ActFormat::Q8_32, ns::quant_dot_rows<DType::Q8_0>);              \
    set_q(table, DType::Q2_K, ActFormat::Q8_K, ns::quant_dot_rows<DType::Q2_K>);               \
    set_q(table, DType::Q3_K, ActFormat::Q8_K, ns::quant_dot_rows<DType::Q3_K>);               \
    set_q(table, DType::Q4_K, ActFormat::Q8_K, ns::quant_dot_rows<DType::Q4_K>);               \
    set_q(table, DType::Q5_K, ActFormat::Q8_K, ns::quant_dot_rows<DType::Q5_K>);               \
    set_q(table, DType::Q6_K, ActFormat::Q8_K, ns::quant_dot_rows<DType::Q6_K>);               \
  } while (0)

inline KernelTable make_table(Isa isa) {
  KernelTable t;
  t.isa = isa;
  set(t, DType::F32, scalar::dot_rows_f32);
  set(t, DType::F16, scalar::dot_rows_f16);
  set(t, DType::BF16, scalar::dot_rows_bf16);
  for (DType q : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K,
                  DType::Q5_K, DType::Q6_K}) {
    set(t, q, scalar::dot_rows_dequantized);
  }
  TINFER_SET_QUANT_DOT(t, scalar);
  if (isa >= Isa::Avx2) {
    set(t, DType::F32, avx2::dot_rows<float>);
    set(t, DType::F16, avx2::dot_rows<f16>);
    set(t, DType::BF16, avx2::dot_rows<bf16>);
    if (cpu_features().avx_vnni) TINFER_SET_QUANT_DOT(t, avx2vnni);
    else TINFER_SET_QUANT_DOT(t, avx2);
  }
  if (isa >= Isa::Avx512) {
    set(t, DType::F32, avx512::dot_rows<float>);
    set(t, DType::F16, avx512::dot_rows<f16>);
    set(t, DType::BF16, avx512::dot_rows<bf16>);
    if (cpu_features().avx512_vnni) {
      TINFER_SET_QUANT_DOT(t, avx512);
      set_q(t, DType::Q8_0, ActFormat::Q8_32, avx512::quant_dot_rows_zmm<DType::Q8_0>);
      set_q(t, DType::Q4_0, ActFormat::Q8_32, avx512::quant_dot_rows_zmm<DType::Q4_0>);
    }
  }
  return t;
}
#undef TINFER_SET_QUANT_DOT
}  // namespace detail

/// How matrix-vector products treat the activations of quantized weight types.
///  - Float: each weight row is dequantized bit-exactly and multiplied with float32 activations.
///    Logits stay within ~1e-6 (relative) of the exact forward pass; the default.
///  - Q8: activations are quantized once per product to 8-bit blocks and integer dot products
///    (VNNI where available) do the work, as llama.cpp does: several times faster for decode, and
///    logits move by ~2-3% of their spread, as llama.cpp's do. Chosen with TINFER_ACTIVATIONS=q8.
enum class Activations { Float, Q8 };

/// The mode TINFER_ACTIVATIONS asks for ("q8"; anything else: Float), read once.
inline Activations default_activations() noexcept {
  static const Activations a = [] {
    const char* env = std::getenv("TINFER_ACTIVATIONS");
    return env != nullptr && std::string_view(env) == "q8" ? Activations::Q8 : Activations::Float;
  }();
  return a;
}

/// The table for `isa` (clamped to what this machine supports, so a test may ask for any level)
/// and activation mode. Without a mode: the full table, integer kernels included.
inline const KernelTable& kernel_table(Isa isa, Activations act) {
  static const std::array<std::array<KernelTable, 3>, 2> tables = [] {
    std::array<std::array<KernelTable, 3>, 2> t;
    for (int i = 0; i < 3; ++i) {
      t[1][static_cast<std::size_t>(i)] = detail::make_table(static_cast<Isa>(i));
      t[0][static_cast<std::size_t>(i)] = t[1][static_cast<std::size_t>(i)];
      t[0][static_cast<std::size_t>(i)].quant_dot = {};  // Float: the dequantizing row kernels
    }
    return t;
  }();
  const Isa max = max_supported_isa();
  if (static_cast<int>(isa) > static_cast<int>(max)) isa = max;
  return tables[act == Activations::Q8 ? 1 : 0][static_cast<std::size_t>(isa)];
}
inline const KernelTable& kernel_table(Isa isa) { return kernel_table(isa, Activations::Q8); }

/// The table models use: default_isa() and default_activations().
inline const KernelTable& kernel_table() { return kernel_table(default_isa(), default_activations()); }

/// y = W x for a weight matrix of any supported type; rows split across `pool` (nullptr: this
/// thread). x has W.cols floats, y has W.rows.
/// Quantized types with a `quant_dot` entry quantize x once (into a scratch buffer of the
/// calling thread, grown as needed, never allocated per row) and share it with all threads.
inline void matvec(const WeightView& w, const float* x, float* y, ThreadPool* pool, const KernelTable& k = kernel_table()) {
  // At least ~64 KiB of weights per chunk, or waking threads costs more than it saves.
  const std::int64_t min_rows = w.row_bytes > 0 ? static_cast<std::int64_t>((65536 + w.row_bytes - 1) / w.row_bytes) : w.rows;
  const QuantDot q = k.quant_dot_for(w.type);
  if (q.rows != nullptr) {
    thread_local std::vector<std::uint32_t> scratch;  // 4-byte units: the blocks hold floats
    scratch.resize((activation_bytes(q.act, w.cols) + 3) / 4 + 1);
    quantize_activations(q.act, x, w.cols, scratch.data());
    const void* xq = scratch.data();
    const QuantDotRowsFn f = q.rows;
    if (pool == nullptr || w.rows == 0) {
      f(w, xq, y, 0, w.rows);
      return;
    }
    pool->parallel_for(w.rows, [&](std::int64_t r0, std::int64_t r1) { f(w, xq, y, r0, r1); }, min_rows);
    return;
  }
  const DotRowsFn f = k.dot_rows_for(w.type);
  if (pool == nullptr || w.rows == 0) {
    f(w, x, y, 0, w.rows);
    return;
  }
  pool->parallel_for(w.rows, [&](std::int64_t r0, std::int64_t r1) { f(w, x, y, r0, r1); }, min_rows);
}

/// Y = X W^T for a batch of n activation rows: Y[i, :] = W X[i, :] for i in [0, n). X holds n rows
/// of W.cols floats (row stride ldx), Y n rows of W.rows floats (row stride ldy).
/// Prompt processing and batched decoding go through this entry point; it gives the same result
/// for each row as matvec() on that row.
inline void matmul(const WeightView& w, const float* x, std::int64_t n, std::int64_t ldx, float* y, std::int64_t ldy,
                   ThreadPool* pool, const KernelTable& k = kernel_table()) {
  for (std::int64_t i = 0; i < n; ++i) matvec(w, x + i * ldx, y + i * ldy, pool, k);
}

}  // namespace tinfer::kernels
