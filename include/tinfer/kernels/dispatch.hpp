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
// its SIMD twins). A third path, the default for Q8_0, Q4_0, Q4_K and Q6_K (the types of the
// common Q8_0 / Q4_0 / Q4_K_M files): `q16`, activations quantized to 16 bits per block
// (error <= amax / 65534 per element, so logits stay within ~1e-5 of the float path) and integer
// dot products of int16 pairs (vpdpwssd), several rows of activations per call for matmul.
//
// matmul (the batch of prompt tokens) quantizes every activation row once, then walks tiles of
// weight rows: each tile (a few KiB to ~100 KiB) stays in cache while every activation row,
// four at a time in registers, is multiplied with it, so weights are read from memory once per
// call instead of once per token.
#pragma once

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string_view>
#include <cstdint>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/avx2/activation.hpp"
#include "tinfer/kernels/avx2/dot_rows.hpp"
#include "tinfer/kernels/avx2/interleaved_dot.hpp"
#include "tinfer/kernels/avx2/norm.hpp"
#include "tinfer/kernels/avx2/q16_dot.hpp"
#include "tinfer/kernels/avx2/quantize_activations.hpp"
#include "tinfer/kernels/avx2/quant_dot.hpp"
#include "tinfer/kernels/avx512/activation.hpp"
#include "tinfer/kernels/avx512/dot_rows.hpp"
#include "tinfer/kernels/avx512/interleaved_dot.hpp"
#include "tinfer/kernels/avx512/norm.hpp"
#include "tinfer/kernels/avx512/quantize_activations.hpp"
#include "tinfer/kernels/avx512/q16_dot.hpp"
#include "tinfer/kernels/avx512/quant_dot.hpp"
#include "tinfer/kernels/cpu_features.hpp"
#include "tinfer/kernels/interleave.hpp"
#include "tinfer/kernels/pack_activations.hpp"
#include "tinfer/kernels/quantize_activations.hpp"
#include "tinfer/kernels/scalar/activation.hpp"
#include "tinfer/kernels/scalar/dot_rows.hpp"
#include "tinfer/kernels/scalar/norm.hpp"
#include "tinfer/kernels/scalar/q16_dot.hpp"
#include "tinfer/kernels/scalar/quant_dot.hpp"

namespace tinfer::kernels {

/// y[r] = dot(W[r, :], x) for r in [r0, r1).
using DotRowsFn = void (*)(const WeightView& w, const float* x, float* y, std::int64_t r0, std::int64_t r1);

/// y[r] = dot(W[r, :], x) for r in [r0, r1), with x already quantized (`xq`, in the entry's
/// ActFormat).
using QuantDotRowsFn = void (*)(const WeightView& w, const void* xq, float* y, std::int64_t r0, std::int64_t r1);

/// y[j * ldy + r] = dot(W[r, :], x + j * ldx) for r in [r0, r1), j in [0, nx): float weights
/// (F32, F16, BF16) times several float activation rows; same result per row as DotRowsFn.
using DotRowsMultiFn = void (*)(const WeightView& w, const float* x, std::int64_t ldx, int nx, float* y,
                                std::int64_t ldy, std::int64_t r0, std::int64_t r1);

/// y[j * ldy + r] = dot(W[r, :], x_j) for r in [r0, r1), j in [0, nx), the nx activation rows
/// packed in groups of the table's `packed_group` tokens (kernels/pack_activations.hpp); same
/// result per row as DotRowsFn.
using DotRowsPackedFn = void (*)(const WeightView& w, const float* xp, int nx, float* y, std::int64_t ldy, std::int64_t r0,
                                 std::int64_t r1);

/// Quantizes n activations (a multiple of the format's block) into dst, as quantize_activations does.
using QuantizeActFn = void (*)(const float* x, std::int64_t n, void* dst);

/// The quantized-activation path of one weight type: how to prepare x, and the row kernel.
struct QuantDot {
  ActFormat act = ActFormat::None;
  QuantDotRowsFn rows = nullptr;
};

struct KernelTable {
  Isa isa = Isa::Scalar;
  std::array<DotRowsFn, 32> dot_rows{};  // indexed by DType value; null: type not supported
  std::array<QuantDot, 32> quant_dot{};  // indexed by DType value; rows null: use dot_rows
  std::array<Q16RowsFn, 32> q16{};       // 16-bit activations (format q16_format(type)); null: none
  std::array<DotRowsMultiFn, 32> dot_rows_multi{};  // several activation rows at once; null: none
  // Several packed activation rows at once (matmul packs them once per product); null: none.
  std::array<DotRowsPackedFn, 32> dot_rows_packed{};
  int packed_group = 0;  // tokens per packed group of dot_rows_packed
  // Interleaved views (WeightView::interleaved_rows > 0; Q8_0 / Q4_0 / Q4_K / Q6_K,
  // kernels/interleave.hpp), 16-bit activations (q16_format(type)); interleaved float views go
  // through dot_rows / dot_rows_multi, which read either layout. The layout decides the kernel, so every activation mode's
  // table has them.
  std::array<Q16RowsFn, 32> q16i{};
  // Elementwise activations (kernels/scalar/activation.hpp defines them; every ISA, the same bits).
  void (*swiglu)(float* gate, const float* up, std::int64_t n) noexcept = scalar::swiglu;
  void (*gelu_tanh)(float* x, std::int64_t n) noexcept = scalar::gelu_tanh;
  // Norms (kernels/scalar/norm.hpp defines them; every ISA, the same bits).
  void (*rmsnorm)(float* out, const float* x, const float* w, std::int64_t n, float eps) noexcept = scalar::rmsnorm;
  void (*layernorm)(float* out, const float* x, const float* w, const float* b, std::int64_t n, float eps) noexcept =
      scalar::layernorm;
  // The 16-bit activation quantizers where SIMD ones exist (the same bits as the scalar ones).
  QuantizeActFn quantize_q16x32 = nullptr;
  QuantizeActFn quantize_q16xK = nullptr;

  /// quantize_activations(f, x, n, dst) through this table's quantizers.
  void quantize(ActFormat f, const float* x, std::int64_t n, void* dst) const noexcept {
    if (f == ActFormat::Q16_32 && quantize_q16x32 != nullptr) quantize_q16x32(x, n, dst);
    else if (f == ActFormat::Q16_K && quantize_q16xK != nullptr) quantize_q16xK(x, n, dst);
    else quantize_activations(f, x, n, dst);
  }

  Q16RowsFn q16i_for(DType t) const noexcept {
    const auto i = static_cast<std::uint32_t>(t);
    return i < q16i.size() ? q16i[i] : nullptr;
  }

  Q16RowsFn q16_for(DType t) const noexcept {
    const auto i = static_cast<std::uint32_t>(t);
    return i < q16.size() ? q16[i] : nullptr;
  }
  DotRowsMultiFn dot_rows_multi_for(DType t) const noexcept {
    const auto i = static_cast<std::uint32_t>(t);
    return i < dot_rows_multi.size() ? dot_rows_multi[i] : nullptr;
  }
  DotRowsPackedFn dot_rows_packed_for(DType t) const noexcept {
    const auto i = static_cast<std::uint32_t>(t);
    return i < dot_rows_packed.size() ? dot_rows_packed[i] : nullptr;
  }

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
  t.q16[static_cast<std::size_t>(DType::Q8_0)] = scalar::q16_rows<DType::Q8_0>;
  t.q16[static_cast<std::size_t>(DType::Q4_0)] = scalar::q16_rows<DType::Q4_0>;
  t.q16[static_cast<std::size_t>(DType::Q4_K)] = scalar::q16_rows<DType::Q4_K>;
  t.q16[static_cast<std::size_t>(DType::Q6_K)] = scalar::q16_rows<DType::Q6_K>;
  t.q16i[static_cast<std::size_t>(DType::Q8_0)] = scalar::q16i_rows<DType::Q8_0>;
  t.q16i[static_cast<std::size_t>(DType::Q4_0)] = scalar::q16i_rows<DType::Q4_0>;
  t.q16i[static_cast<std::size_t>(DType::Q4_K)] = scalar::q16i_rows<DType::Q4_K>;
  t.q16i[static_cast<std::size_t>(DType::Q6_K)] = scalar::q16i_rows<DType::Q6_K>;
  if (isa >= Isa::Avx2) {
    t.q16i[static_cast<std::size_t>(DType::Q8_0)] = avx2::q16i_rows<DType::Q8_0>;
    t.q16i[static_cast<std::size_t>(DType::Q4_0)] = avx2::q16i_rows<DType::Q4_0>;
    t.q16i[static_cast<std::size_t>(DType::Q4_K)] = avx2::q16i_rows<DType::Q4_K>;
    t.q16i[static_cast<std::size_t>(DType::Q6_K)] = avx2::q16i_rows<DType::Q6_K>;
    t.quantize_q16x32 = avx2::quantize_q16x32;
    t.quantize_q16xK = avx2::quantize_q16xK;
    t.swiglu = avx2::swiglu;
    t.gelu_tanh = avx2::gelu_tanh;
    t.rmsnorm = avx2::rmsnorm;
    t.layernorm = avx2::layernorm;
    set(t, DType::F32, avx2::dot_rows<float>);
    set(t, DType::F16, avx2::dot_rows<f16>);
    set(t, DType::BF16, avx2::dot_rows<bf16>);
    t.dot_rows_multi[static_cast<std::size_t>(DType::F32)] = avx2::dot_rows_multi<float>;
    t.dot_rows_multi[static_cast<std::size_t>(DType::F16)] = avx2::dot_rows_multi<f16>;
    t.dot_rows_multi[static_cast<std::size_t>(DType::BF16)] = avx2::dot_rows_multi<bf16>;
    t.q16[static_cast<std::size_t>(DType::Q8_0)] = avx2::q16_rows<DType::Q8_0>;
    t.q16[static_cast<std::size_t>(DType::Q4_0)] = avx2::q16_rows<DType::Q4_0>;
    t.q16[static_cast<std::size_t>(DType::Q4_K)] = avx2::q16_rows<DType::Q4_K>;
    t.q16[static_cast<std::size_t>(DType::Q6_K)] = avx2::q16_rows<DType::Q6_K>;
    if (cpu_features().avx_vnni) TINFER_SET_QUANT_DOT(t, avx2vnni);
    else TINFER_SET_QUANT_DOT(t, avx2);
  }
  if (isa >= Isa::Avx512) {
    t.swiglu = avx512::swiglu;
    t.gelu_tanh = avx512::gelu_tanh;
    t.rmsnorm = avx512::rmsnorm;
    t.layernorm = avx512::layernorm;
    t.quantize_q16x32 = avx512::quantize_q16x32;
    t.quantize_q16xK = avx512::quantize_q16xK;
    set(t, DType::F32, avx512::dot_rows<float>);
    set(t, DType::F16, avx512::dot_rows<f16>);
    set(t, DType::BF16, avx512::dot_rows<bf16>);
    t.dot_rows_multi[static_cast<std::size_t>(DType::F32)] = avx512::dot_rows_multi<float>;
    t.dot_rows_multi[static_cast<std::size_t>(DType::F16)] = avx512::dot_rows_multi<f16>;
    t.dot_rows_multi[static_cast<std::size_t>(DType::BF16)] = avx512::dot_rows_multi<bf16>;
    t.dot_rows_packed[static_cast<std::size_t>(DType::F32)] = avx512::dot_rows_packed<float>;
    t.dot_rows_packed[static_cast<std::size_t>(DType::F16)] = avx512::dot_rows_packed<f16>;
    t.dot_rows_packed[static_cast<std::size_t>(DType::BF16)] = avx512::dot_rows_packed<bf16>;
    t.packed_group = avx512::detail::kNX;
    if (cpu_features().avx512_vnni) {
      t.q16[static_cast<std::size_t>(DType::Q8_0)] = avx512::q16_rows<DType::Q8_0>;
      t.q16[static_cast<std::size_t>(DType::Q4_0)] = avx512::q16_rows<DType::Q4_0>;
      t.q16[static_cast<std::size_t>(DType::Q4_K)] = avx512::q16_rows<DType::Q4_K>;
      t.q16[static_cast<std::size_t>(DType::Q6_K)] = avx512::q16_rows<DType::Q6_K>;
      t.q16i[static_cast<std::size_t>(DType::Q8_0)] = avx512::q16i_rows<DType::Q8_0>;
      t.q16i[static_cast<std::size_t>(DType::Q4_0)] = avx512::q16i_rows<DType::Q4_0>;
      t.q16i[static_cast<std::size_t>(DType::Q4_K)] = avx512::q16i_rows<DType::Q4_K>;
      t.q16i[static_cast<std::size_t>(DType::Q6_K)] = avx512::q16i_rows<DType::Q6_K>;
      TINFER_SET_QUANT_DOT(t, avx512);
      set_q(t, DType::Q8_0, ActFormat::Q8_32, avx512::quant_dot_rows_zmm<DType::Q8_0>);
      set_q(t, DType::Q4_0, ActFormat::Q8_32, avx512::quant_dot_rows_zmm<DType::Q4_0>);
    }
  }
  return t;
}
#undef TINFER_SET_QUANT_DOT
}  // namespace detail

/// How matrix products treat the activations of quantized weight types.
///  - Q16 (the default): types with 16-bit-activation kernels (Q8_0, Q4_0, Q4_K, Q6_K) quantize
///    the activations to 16 bits per block and take integer dot products; logits stay within
///    ~1e-5 (relative) of the exact forward pass. Other types: as Float.
///  - Float: each weight row is dequantized bit-exactly and multiplied with float32 activations
///    (the slow reference; TINFER_ACTIVATIONS=f32).
///  - Q8: activations are quantized once per product to 8-bit blocks and integer dot products
///    (VNNI where available) do the work, as llama.cpp does; logits move by ~2-3% of their
///    spread, as llama.cpp's do. Chosen with TINFER_ACTIVATIONS=q8.
enum class Activations { Float, Q8, Q16 };

/// The mode TINFER_ACTIVATIONS asks for ("q8", "f32"; anything else: Q16), read once.
inline Activations default_activations() noexcept {
  static const Activations a = [] {
    const char* env = std::getenv("TINFER_ACTIVATIONS");
    const std::string_view v = env != nullptr ? env : "";
    return v == "q8" ? Activations::Q8 : v == "f32" ? Activations::Float : Activations::Q16;
  }();
  return a;
}

/// The table for `isa` (clamped to what this machine supports, so a test may ask for any level)
/// and activation mode. Without a mode: the Q8 table (the 8-bit integer kernels).
inline const KernelTable& kernel_table(Isa isa, Activations act) {
  static const std::array<std::array<KernelTable, 3>, 3> tables = [] {
    std::array<std::array<KernelTable, 3>, 3> t;
    for (std::size_t i = 0; i < 3; ++i) {
      const KernelTable full = detail::make_table(static_cast<Isa>(i));
      t[0][i] = full;  // Float: the dequantizing row kernels
      t[0][i].quant_dot = {};
      t[0][i].q16 = {};
      t[1][i] = full;  // Q8
      t[1][i].q16 = {};
      t[2][i] = full;  // Q16
      t[2][i].quant_dot = {};
    }
    return t;
  }();
  const Isa max = max_supported_isa();
  if (static_cast<int>(isa) > static_cast<int>(max)) isa = max;
  return tables[static_cast<std::size_t>(act)][static_cast<std::size_t>(isa)];
}
inline const KernelTable& kernel_table(Isa isa) { return kernel_table(isa, Activations::Q8); }

/// The table models use: default_isa() and default_activations().
inline const KernelTable& kernel_table() { return kernel_table(default_isa(), default_activations()); }

namespace detail {
/// A per-thread buffer of at least `bytes`, 64-byte aligned, grown as needed (never per row).
inline std::byte* scratch(std::size_t bytes) {
  thread_local std::vector<std::uint64_t> buf;
  const std::size_t words = (bytes + 64 + 7) / 8;
  if (buf.size() < words) buf.resize(words);
  auto p = reinterpret_cast<std::uintptr_t>(buf.data());
  return reinterpret_cast<std::byte*>((p + 63) & ~static_cast<std::uintptr_t>(63));
}
}  // namespace detail

namespace detail {
/// Quantizes n activation rows (x, stride ldx) into `xq` (row stride `stride` bytes), split
/// across `pool` (each row depends on itself alone, so the split changes nothing).
inline void quantize_rows(const KernelTable& k, ActFormat af, const float* x, std::int64_t n, std::int64_t ldx, std::int64_t cols,
                          std::byte* xq, std::size_t stride, ThreadPool* pool) {
  auto body = [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) k.quantize(af, x + i * ldx, cols, xq + static_cast<std::size_t>(i) * stride);
  };
  if (pool == nullptr || n < 8) body(0, n);
  else pool->parallel_for(n, body, 4);
}

/// Y = X W^T for an interleaved view: activations quantized once (Q16_32 / Q16_K), then units of 16
/// rows (whole groups; the last unit holds the rows past the last group) split across `pool`.
inline void interleaved_product(const KernelTable& k, const WeightView& w, Q16RowsFn f, const float* x, std::int64_t n, std::int64_t ldx,
                                float* y, std::int64_t ldy, ThreadPool* pool) {
  const ActFormat af = q16_format(w.type);
  const std::size_t stride = (activation_bytes(af, w.cols) + 63) / 64 * 64;
  std::byte* xq = scratch(stride * static_cast<std::size_t>(n));
  quantize_rows(k, af, x, n, ldx, w.cols, xq, stride, pool);
  const std::int64_t units = (w.rows + kInterleave - 1) / kInterleave;
  auto body = [&](std::int64_t u0, std::int64_t u1) {
    f(w, xq, stride, static_cast<int>(n), y, ldy, u0 * kInterleave, std::min(w.rows, u1 * kInterleave));
  };
  if (pool == nullptr || units == 0) {
    body(0, units);
    return;
  }
  // A single token: at least ~64 KiB of weights per chunk, or waking threads costs more than it saves.
  const std::size_t unit_bytes = static_cast<std::size_t>(kInterleave) * std::max<std::size_t>(w.row_bytes, 1);
  const std::int64_t min_units = n == 1 ? static_cast<std::int64_t>((65536 + unit_bytes - 1) / unit_bytes) : 1;
  pool->parallel_for(units, body, min_units);
}
}  // namespace detail

namespace detail {
/// parallel_for over the rows of w in chunks that start at multiples of 16 when w has
/// interleaved rows (a chunk then reads whole groups, each one stream through memory).
template <class F>
void for_row_chunks(ThreadPool* pool, const WeightView& w, std::int64_t min_rows, F&& fn) {
  if (w.interleaved_rows == 0) {
    pool->parallel_for(w.rows, fn, min_rows);
    return;
  }
  const std::int64_t units = (w.rows + kInterleave - 1) / kInterleave;
  pool->parallel_for(units, [&](std::int64_t u0, std::int64_t u1) { fn(u0 * kInterleave, std::min(w.rows, u1 * kInterleave)); },
                     std::max<std::int64_t>(1, (min_rows + kInterleave - 1) / kInterleave));
}
}  // namespace detail

/// y = W x for a weight matrix of any supported type; rows split across `pool` (nullptr: this
/// thread). x has W.cols floats, y has W.rows.
/// Quantized types with a `quant_dot` entry quantize x once (into a scratch buffer of the
/// calling thread, grown as needed, never allocated per row) and share it with all threads.
inline void matvec(const WeightView& w, const float* x, float* y, ThreadPool* pool, const KernelTable& k = kernel_table()) {
  // At least ~64 KiB of weights per chunk, or waking threads costs more than it saves.
  if (w.interleaved_rows > 0 && !is_float_weight(w.type)) {
    const Q16RowsFn fi = k.q16i_for(w.type);
    if (fi == nullptr) throw UnsupportedError(tinfer::detail::str_cat("no kernel for interleaved ", dtype_name(w.type), " weights"));
    detail::interleaved_product(k, w, fi, x, 1, w.cols, y, w.rows, pool);
    return;
  }
  const std::int64_t min_rows = w.row_bytes > 0 ? static_cast<std::int64_t>((65536 + w.row_bytes - 1) / w.row_bytes) : w.rows;
  if (const Q16RowsFn f16r = k.q16_for(w.type); f16r != nullptr) {
    std::byte* xq = detail::scratch(activation_bytes(q16_format(w.type), w.cols));
    k.quantize(q16_format(w.type), x, w.cols, xq);
    if (pool == nullptr || w.rows == 0) {
      f16r(w, xq, 0, 1, y, 0, 0, w.rows);
      return;
    }
    pool->parallel_for(w.rows, [&](std::int64_t r0, std::int64_t r1) { f16r(w, xq, 0, 1, y, 0, r0, r1); }, min_rows);
    return;
  }
  const QuantDot q = k.quant_dot_for(w.type);
  if (q.rows != nullptr) {
    std::byte* xq = detail::scratch(activation_bytes(q.act, w.cols));
    k.quantize(q.act, x, w.cols, xq);
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
  detail::for_row_chunks(pool, w, min_rows, [&](std::int64_t r0, std::int64_t r1) { f(w, x, y, r0, r1); });
}

/// Y = X W^T for a batch of n activation rows: Y[i, :] = W X[i, :] for i in [0, n). X holds n rows
/// of W.cols floats (row stride ldx), Y n rows of W.rows floats (row stride ldy).
/// Prompt processing and batched decoding go through this entry point. Each row's result equals
/// matvec() on that row bit for bit (same kernels, same order of additions per row), for any n
/// and thread count.
inline void matmul(const WeightView& w, const float* x, std::int64_t n, std::int64_t ldx, float* y, std::int64_t ldy,
                   ThreadPool* pool, const KernelTable& k = kernel_table()) {
  if (n <= 0) return;
  if (n == 1) {
    matvec(w, x, y, pool, k);
    return;
  }
  if (w.interleaved_rows > 0 && !is_float_weight(w.type)) {
    const Q16RowsFn fi = k.q16i_for(w.type);
    if (fi == nullptr) throw UnsupportedError(tinfer::detail::str_cat("no kernel for interleaved ", dtype_name(w.type), " weights"));
    detail::interleaved_product(k, w, fi, x, n, ldx, y, ldy, pool);
    return;
  }
  // Weight rows per tile: ~32 KiB of weights (L1/L2-resident while all activation rows pass).
  std::int64_t tile = std::max<std::int64_t>(1, static_cast<std::int64_t>(32768 / std::max<std::size_t>(w.row_bytes, 1)));
  std::int64_t min_rows = std::max<std::int64_t>(tile, 4);
  auto run = [&](auto&& body) {
    auto tiled = [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t t0 = r0; t0 < r1; t0 += tile) body(t0, std::min(r1, t0 + tile));
    };
    if (pool == nullptr) tiled(0, w.rows);
    else detail::for_row_chunks(pool, w, min_rows, tiled);
  };
  if (const Q16RowsFn f = k.q16_for(w.type); f != nullptr) {
    const ActFormat af = q16_format(w.type);
    const std::size_t stride = (activation_bytes(af, w.cols) + 63) / 64 * 64;
    std::byte* xq = detail::scratch(stride * static_cast<std::size_t>(n));
    detail::quantize_rows(k, af, x, n, ldx, w.cols, xq, stride, pool);
    run([&](std::int64_t r0, std::int64_t r1) { f(w, xq, stride, static_cast<int>(n), y, ldy, r0, r1); });
    return;
  }
  if (k.quant_dot_for(w.type).rows != nullptr) {
    const QuantDot q = k.quant_dot_for(w.type);
    const std::size_t stride = (activation_bytes(q.act, w.cols) + 63) / 64 * 64;
    std::byte* xq = detail::scratch(stride * static_cast<std::size_t>(n));
    detail::quantize_rows(k, q.act, x, n, ldx, w.cols, xq, stride, pool);
    run([&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t i = 0; i < n; ++i) q.rows(w, xq + static_cast<std::size_t>(i) * stride, y + i * ldy, r0, r1);
    });
    return;
  }
  if (const DotRowsMultiFn f = k.dot_rows_multi_for(w.type); f != nullptr) {
    // Float weights: tiles of ~128 KiB and at least 16 rows (the kernel blocks long rows by
    // columns itself; 1-2 row tiles would stream all activations once per weight row).
    tile = std::max<std::int64_t>(16, static_cast<std::int64_t>(131072 / std::max<std::size_t>(w.row_bytes, 1)));
    if (w.interleaved_rows > 0) tile = (tile + kInterleave - 1) / kInterleave * kInterleave;  // whole groups
    min_rows = tile;
    if (const DotRowsPackedFn fp = k.dot_rows_packed_for(w.type); fp != nullptr) {
      // Activations packed once for all threads (kernels/pack_activations.hpp): a tile then
      // reads one stream of activations instead of one per token (GEMM 180 -> 205 GFLOP/s, F16
      // 2048 x 2048, 64 tokens, one thread).
      float* xp = reinterpret_cast<float*>(detail::scratch(sizeof(float) * static_cast<std::size_t>(packed_activation_floats(n, w.cols))));
      const std::int64_t groups = (n + k.packed_group - 1) / k.packed_group;
      auto pack = [&](std::int64_t g0, std::int64_t g1) { pack_activation_groups(x, n, ldx, w.cols, k.packed_group, xp, g0, g1); };
      if (pool == nullptr || groups < 4) pack(0, groups);
      else pool->parallel_for(groups, pack, 2);
      run([&](std::int64_t r0, std::int64_t r1) { fp(w, xp, static_cast<int>(n), y, ldy, r0, r1); });
      return;
    }
    run([&](std::int64_t r0, std::int64_t r1) { f(w, x, ldx, static_cast<int>(n), y, ldy, r0, r1); });
    return;
  }
  const DotRowsFn f = k.dot_rows_for(w.type);
  run([&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t i = 0; i < n; ++i) f(w, x + i * ldx, y + i * ldy, r0, r1);
  });
}

}  // namespace tinfer::kernels
