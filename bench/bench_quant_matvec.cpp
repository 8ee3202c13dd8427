// Quantized matrix-vector products: every quantized weight type on TinyLlama-1.1B's shapes
// (2048x2048 attention, 5632x2048 FFN up/gate, 2048x5632 FFN down, 32000x2048 classifier),
// through
//   dequant   the float reference path (dequantize each row, float dot; no prepared x),
//   scalar    the scalar integer kernels (x quantized to 8 bits once per call),
//   avx2, avx2vnni, avx512vnni: the SIMD integer kernels (skipped where the CPU lacks them),
//   q16scalar, q16: the default path (16-bit activations; scalar twin, best ISA) for Q8_0,
//             Q4_0, Q4_K, Q6_K,
// at 1 and 2 threads. Counters: GB/s of weight bytes streamed, GFLOP/s (2 rows * cols).
//
// Weights are valid blocks of random content: random quant bytes with random f16 scales of a
// sane size (the kernels' speed does not depend on the values). Every run's result is checked
// against the scalar integer kernel's (and the dequant baseline against it within the 8-bit
// activation error) so a wrong kernel cannot win.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/dispatch.hpp"

namespace {

namespace k = tinfer::kernels;
using tinfer::DType;

struct Weights {
  DType type{};
  std::int64_t rows = 0, cols = 0;
  std::vector<std::byte> data;
  tinfer::WeightView w;
  std::vector<float> x, y_ref;  // y_ref: scalar integer kernel
};

void random_blocks(DType t, std::byte* dst, std::size_t nblocks, std::mt19937& rng) {
  const std::size_t bb = tinfer::dtype_info(t)->block_bytes;
  std::uniform_int_distribution<std::uint32_t> u32;
  for (std::size_t i = 0; i < nblocks * bb; i += 4) {
    const std::uint32_t v = u32(rng);
    std::memcpy(dst + i, &v, std::min<std::size_t>(4, nblocks * bb - i));
  }
  // f16 scales: where each type keeps them.
  std::vector<std::size_t> offs;
  switch (t) {
    case DType::Q4_0: case DType::Q5_0: case DType::Q8_0: offs = {0}; break;
    case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: offs = {0, 2}; break;
    case DType::Q2_K: offs = {offsetof(tinfer::quant::block_q2_K, d), offsetof(tinfer::quant::block_q2_K, dmin)}; break;
    case DType::Q3_K: offs = {offsetof(tinfer::quant::block_q3_K, d)}; break;
    case DType::Q6_K: offs = {offsetof(tinfer::quant::block_q6_K, d)}; break;
    default: break;
  }
  std::uniform_real_distribution<float> sc(0.001f, 0.02f);
  for (std::size_t b = 0; b < nblocks; ++b)
    for (std::size_t o : offs) {
      const std::uint16_t h = tinfer::f16::from_float(sc(rng));
      std::memcpy(dst + b * bb + o, &h, 2);
    }
}

// The weights of the current benchmark (one set alive at a time: the largest is ~70 MB).
const Weights& weights(DType t, std::int64_t rows, std::int64_t cols) {
  static std::unique_ptr<Weights> cur;
  if (cur && cur->type == t && cur->rows == rows && cur->cols == cols) return *cur;
  cur.reset();
  auto w = std::make_unique<Weights>();
  w->type = t;
  w->rows = rows;
  w->cols = cols;
  const auto info = tinfer::dtype_info(t);
  const std::size_t row_bytes = static_cast<std::size_t>(cols) / info->block_size * info->block_bytes;
  w->data.resize(static_cast<std::size_t>(rows) * row_bytes);
  std::mt19937 rng(42);
  random_blocks(t, w->data.data(), static_cast<std::size_t>(rows * cols) / info->block_size, rng);
  w->w = tinfer::WeightView::dense(t, w->data.data(), rows, cols);
  std::normal_distribution<float> nd(0, 1);
  w->x.resize(static_cast<std::size_t>(cols));
  for (auto& v : w->x) v = nd(rng);
  w->y_ref.resize(static_cast<std::size_t>(rows));
  k::matvec(w->w, w->x.data(), w->y_ref.data(), nullptr, k::kernel_table(k::Isa::Scalar));
  cur = std::move(w);
  return *cur;
}

enum Impl : int { kDequant, kScalar, kAvx2, kAvx2Vnni, kAvx512Vnni, kQ16Scalar, kQ16 };

// A table holding only the kernels of one implementation for type t.
bool table_for(Impl impl, DType t, k::KernelTable& tab) {
  tab = k::kernel_table(k::Isa::Scalar);
  const auto i = static_cast<std::size_t>(t);
  const auto& f = k::cpu_features();
  if (impl == kQ16Scalar || impl == kQ16) {
    // The default path: 16-bit activations (the dispatch table's best ISA, or the scalar twin).
    tab = k::kernel_table(impl == kQ16 ? k::default_isa() : k::Isa::Scalar, k::Activations::Q16);
    return tab.q16_for(t) != nullptr;
  }
  switch (impl) {
    case kDequant: tab.quant_dot[i] = {}; return true;
    case kScalar: return true;
    case kAvx2: if (!f.avx2) return false; break;
    case kAvx2Vnni: if (!f.avx_vnni) return false; break;
    case kAvx512Vnni: if (!f.avx512_vnni) return false; break;
    default: return false;
  }
#define TINFER_PICK(T)                                                              \
  case DType::T:                                                                    \
    tab.quant_dot[i].rows = impl == kAvx2       ? k::avx2::quant_dot_rows<DType::T> \
                            : impl == kAvx2Vnni ? k::avx2vnni::quant_dot_rows<DType::T> \
                                                : k::avx512::quant_dot_rows<DType::T>; \
    break;
  switch (t) {
    TINFER_PICK(Q4_0) TINFER_PICK(Q4_1) TINFER_PICK(Q5_0) TINFER_PICK(Q5_1) TINFER_PICK(Q8_0)
    TINFER_PICK(Q2_K) TINFER_PICK(Q3_K) TINFER_PICK(Q4_K) TINFER_PICK(Q5_K) TINFER_PICK(Q6_K)
    default: return false;
  }
#undef TINFER_PICK
  if (impl == kAvx512Vnni && (t == DType::Q8_0 || t == DType::Q4_0)) tab.quant_dot[i] = k::kernel_table(k::Isa::Avx512).quant_dot[i];
  return true;
}

void BM_QuantMatvec(benchmark::State& state, DType t, Impl impl) {
  const std::int64_t rows = state.range(0), cols = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  k::KernelTable tab;
  if (!table_for(impl, t, tab)) {
    state.SkipWithError("not supported on this CPU");
    return;
  }
  const Weights& W = weights(t, rows, cols);
  std::unique_ptr<tinfer::ThreadPool> pool = threads > 1 ? std::make_unique<tinfer::ThreadPool>(threads) : nullptr;
  std::vector<float> y(static_cast<std::size_t>(rows));
  for (auto _ : state) {
    k::matvec(W.w, W.x.data(), y.data(), pool.get(), tab);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  // Checksum: integer kernels agree with the scalar twin to float rounding; the dequant path
  // differs by the 8-bit activation error (well under 2% of the typical |y|).
  double scale = 0, err = 0, sum = 0;
  for (std::size_t r = 0; r < y.size(); ++r) {
    scale += std::fabs(W.y_ref[r]);
    err = std::fmax(err, std::fabs(y[r] - W.y_ref[r]));
    sum += y[r];
  }
  scale /= static_cast<double>(y.size());
  if (err > (impl == kDequant || impl >= kQ16Scalar ? 0.05 : 1e-4) * (scale + 1e-6)) state.SkipWithError("result differs from the scalar integer kernel");
  state.counters["checksum"] = sum;
  const double bytes = static_cast<double>(W.w.row_bytes) * static_cast<double>(rows);
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(rows) * static_cast<double>(cols),
                                                 benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

const bool registered = [] {
  const std::pair<DType, const char*> types[] = {{DType::Q8_0, "Q8_0"}, {DType::Q4_0, "Q4_0"}, {DType::Q4_1, "Q4_1"},
                                                 {DType::Q5_0, "Q5_0"}, {DType::Q5_1, "Q5_1"}, {DType::Q2_K, "Q2_K"},
                                                 {DType::Q3_K, "Q3_K"}, {DType::Q4_K, "Q4_K"}, {DType::Q5_K, "Q5_K"},
                                                 {DType::Q6_K, "Q6_K"}};
  const std::pair<Impl, const char*> impls[] = {
      {kDequant, "dequant"}, {kScalar, "scalar"}, {kAvx2, "avx2"}, {kAvx2Vnni, "avx2vnni"}, {kAvx512Vnni, "avx512vnni"},
      {kQ16Scalar, "q16scalar"}, {kQ16, "q16"}};
  // Shape outermost so each weight set is built once for all implementations.
  for (const auto& [t, tn] : types)
    for (auto [r, c] : {std::pair{2048, 2048}, std::pair{5632, 2048}, std::pair{2048, 5632}, std::pair{32000, 2048}})
      for (const auto& [impl, in] : impls)
        for (int th : {1, 2}) {
          auto* b = benchmark::RegisterBenchmark((std::string("BM_QuantMatvec/") + tn + "/" + in).c_str(), BM_QuantMatvec, t, impl);
          b->ArgNames({"rows", "cols", "threads"})->Args({r, c, th})->UseRealTime()->Unit(benchmark::kMicrosecond);
        }
  return true;
}();

}  // namespace
