// tinfer-quantize: quantizes a model into a GGUF file that tinfer and llama.cpp both run, with
// llama.cpp's reference quantization (round to nearest, bit-exact with llama-quantize) or with
// GPTQ calibrated on a text file.
//
//   tinfer-quantize [options] INPUT OUTPUT TYPE
//
// INPUT is a GGUF file or a Hugging Face folder; TYPE a llama-quantize name (Q4_0, Q4_K_M, ...).
// Tensors are written in llama.cpp's order with the input's metadata, general.file_type and
// general.quantization_version set as llama-quantize sets them.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <tinfer/tinfer.hpp>

#include "args.hpp"
#include "hf_to_gguf.hpp"

namespace {

namespace fs = std::filesystem;
using tinfer::DType;
using tinfer::io::GgufFile;
using tinfer::io::GgufTensorInfo;
using tinfer::io::GgufValue;
using tinfer::io::GgufWriter;
namespace q = tinfer::quant;

constexpr const char* kUsage = R"(usage: tinfer-quantize [options] INPUT OUTPUT TYPE

Quantizes INPUT (a GGUF file, or a Hugging Face folder with config.json + safetensors) into the
GGUF file OUTPUT. TYPE is one of:
  Q4_0 Q4_1 Q5_0 Q5_1 Q8_0          one block type for the weight matrices
  Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K
                                     K-quant mixes as llama-quantize chooses them
                                     (Q3_K, Q4_K, Q5_K: aliases of the _M mixes)
  F16 BF16 F32                       unquantized
Without --gptq the result is byte-identical to llama-quantize's (no imatrix).

options:
      --allow-requantize allow re-quantizing tensors that are already quantized (refused
                         without it, as llama-quantize does)
      --pure             every weight matrix in TYPE's block type (no mix rules; rows that do
                         not fit a block still fall back)
      --gptq             GPTQ instead of round-to-nearest for the layers' linear weights
                         (needs --calib)
      --calib FILE       calibration text for --gptq (training-like text, not the text you
                         will evaluate on)
      --calib-chunks N   calibration chunks, spread evenly over the text (default: 32)
      --calib-ctx N      tokens per chunk (default: 256, at most the model's context)
      --group-size N     GPTQ: columns whose block scales are fitted together; a multiple of
                         the type's block (default: one block: 32, or 256 for K types)
      --act-order        GPTQ: quantize columns by decreasing Hessian diagonal
      --damp F           GPTQ: dampening, fraction of the mean Hessian diagonal (default: 0.01)
  -t, --threads N        threads (default: all hardware threads)
  -h, --help             show this help
)";

struct Options {
  std::string input, output, type_name;
  q::FileType ftype = q::FileType::Q4_K_M;
  bool pure = false;
  bool allow_requantize = false;
  bool gptq = false;
  std::string calib;
  int calib_chunks = 32;
  int calib_ctx = 256;
  bool calib_ctx_given = false;
  int group_size = 0;
  bool act_order = false;
  double damp = 0.01;
  int threads = 0;
};

double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / 1024.0 / 1024.0; }

void progress_bar(std::size_t done, std::size_t total, const std::string& what) {
  const int width = 30;
  const int filled = total > 0 ? static_cast<int>(done * width / total) : width;
  std::fprintf(stderr, "\r[%.*s%*s] %3zu/%zu %-60.60s", filled, "==============================", width - filled, "", done, total,
               what.c_str());
  std::fflush(stderr);
}

// The calibration chunks of --calib (tinfer::gptq_calibration_chunks over the file's tokenizer).
std::vector<std::vector<std::int32_t>> calibration_chunks(const GgufFile& f, const Options& o) {
  const auto tok = tinfer::load_gguf_tokenizer(f);
  std::ifstream in(o.calib, std::ios::binary);
  if (!in) throw tinfer::IoError(o.calib + ": cannot open calibration text");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string arch = tinfer::gguf_architecture(f);
  const int max_ctx = f.contains(arch + ".context_length") ? static_cast<int>(f.get_int(arch + ".context_length")) : o.calib_ctx;
  const int ctx = o.calib_ctx_given ? o.calib_ctx : std::min(o.calib_ctx, max_ctx);
  if (ctx > max_ctx) {
    throw tinfer::InvalidArgument(tinfer::detail::str_cat("--calib-ctx ", ctx, " exceeds the model's context of ", max_ctx));
  }
  const std::string text = ss.str();
  std::vector<std::vector<std::int32_t>> chunks;
  try {
    chunks = tinfer::gptq_calibration_chunks(*tok, text, o.calib_chunks, ctx);
  } catch (const tinfer::InvalidArgument& e) {
    throw tinfer::InvalidArgument(o.calib + ": " + e.what() + " (--calib-ctx)");
  }
  std::fprintf(stderr, "tinfer-quantize: GPTQ calibration: %zu chunks of %d tokens from %s\n", chunks.size(), ctx, o.calib.c_str());
  return chunks;
}

// ------------------------------------------------------------------------------------------

int run(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<const GgufFile> file;
  if (fs::is_directory(o.input)) {
    tinfer_examples::HfConvertOptions c;
    c.input = o.input;
    c.outtype = DType::F32;
    c.program = "tinfer-quantize";
    file = std::make_shared<const GgufFile>(GgufFile::from_bytes(tinfer_examples::hf_to_gguf(c).to_bytes(), o.input));
  } else {
    file = std::make_shared<const GgufFile>(o.input);
  }
  const GgufFile& f = *file;
  const std::string arch = f.contains("general.architecture") ? f.get_string("general.architecture") : "";
  q::ModelDesc desc;
  if (!arch.empty()) {
    desc.n_layers = f.contains(arch + ".block_count") ? static_cast<int>(f.get_int(arch + ".block_count")) : 0;
    desc.n_heads = f.contains(arch + ".attention.head_count") ? static_cast<int>(f.get_int(arch + ".attention.head_count")) : 1;
    desc.n_kv_heads = f.contains(arch + ".attention.head_count_kv") ? static_cast<int>(f.get_int(arch + ".attention.head_count_kv"))
                                                                      : desc.n_heads;
  }

  // Tensors in llama.cpp's order (outside blocks first, then by block number, then by name).
  std::vector<const GgufTensorInfo*> tensors;
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) tensors.push_back(&t);
  std::stable_sort(tensors.begin(), tensors.end(),
                   [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return q::llama_tensor_order_less(a->name, b->name); });
  for (const auto* t : tensors) names.push_back(t->name);
  q::TypePlanner planner(o.ftype, o.pure, desc, names);
  std::map<std::string, DType> target;
  for (const auto* t : tensors) {
    target[t->name] = planner.choose({t->name, t->dims, t->type});
  }
  if (planner.n_fallback() > 0) {
    std::fprintf(stderr, "tinfer-quantize: %d tensor(s) have rows that are not a multiple of the type's block and fall back "
                 "(as llama-quantize does)\n", planner.n_fallback());
  }

  if (!o.allow_requantize) {
    for (const auto* t : tensors) {
      const DType ty = target.at(t->name);
      if (ty != t->type && q::is_block_type(t->type)) {
        throw tinfer::InvalidArgument(t->name + " is already quantized (" + std::string(tinfer::dtype_name(t->type)) +
                                      "): re-quantizing loses quality; quantize from an F32/F16/BF16 file, or pass --allow-requantize");
      }
    }
  }

  tinfer::ThreadPool pool(o.threads);
  std::map<std::string, std::vector<std::byte>> gptq_out;
  if (o.gptq) {
    if (!q::is_block_type(q::default_type(o.ftype))) throw tinfer::InvalidArgument("--gptq needs a quantized TYPE (not F16/BF16/F32)");
    tinfer::GptqModelOptions go;
    go.gptq.damp = o.damp;
    go.gptq.act_order = o.act_order;
    go.gptq.group_size = o.group_size;
    go.pool = &pool;
    go.progress = [](std::size_t done, std::size_t total, const std::string& what) { progress_bar(done, total, "GPTQ " + what); };
    gptq_out = tinfer::gptq_quantize_model(file, target, calibration_chunks(f, o), go);
    std::fputc('\n', stderr);
  }

  GgufWriter w;
  for (const auto& [key, value] : f.metadata()) {
    if (key == "general.quantization_version" || key == "general.file_type" || key.rfind("split.", 0) == 0) continue;
    w.set(key, value);
  }
  w.set("general.quantization_version", GgufValue(static_cast<std::uint32_t>(2)));
  w.set("general.file_type", GgufValue(static_cast<std::uint32_t>(o.ftype)));

  std::uint64_t size_in = 0, size_out = 0, n_elements = 0;
  std::size_t i = 0;
  for (const auto* t : tensors) {
    const DType ty = target.at(t->name);
    const auto src = f.tensor_data(*t);
    size_in += src.size();
    n_elements += static_cast<std::uint64_t>(t->row_length() * t->n_rows());
    progress_bar(++i, tensors.size(), t->name + " " + std::string(tinfer::dtype_name(t->type)) + " -> " + std::string(tinfer::dtype_name(ty)));
    if (ty == t->type) {
      w.add_tensor_view(t->name, t->dims, ty, src);
      size_out += src.size();
      continue;
    }
    std::vector<std::byte> data;
    if (auto it = gptq_out.find(t->name); it != gptq_out.end()) {
      data = std::move(it->second);
    } else {
      std::vector<float> x(static_cast<std::size_t>(t->row_length() * t->n_rows()));
      q::dequantize_row(t->type, src.data(), x.data(), static_cast<std::int64_t>(x.size()));
      data = q::quantize_matrix(ty, x, t->n_rows(), t->row_length(), &pool);
    }
    size_out += data.size();
    w.add_tensor(t->name, t->dims, ty, data);
  }
  std::fputc('\n', stderr);
  w.write(o.output);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "tinfer-quantize: model size = %8.2f MiB (%.2f BPW)\n", mib(size_in), 8.0 * static_cast<double>(size_in) / static_cast<double>(n_elements));
  std::fprintf(stderr, "tinfer-quantize: quant size = %8.2f MiB (%.2f BPW)\n", mib(size_out), 8.0 * static_cast<double>(size_out) / static_cast<double>(n_elements));
  std::fprintf(stderr, "tinfer-quantize: wrote %s (%s%s%s, %ju bytes) in %.2f s\n", o.output.c_str(), std::string(q::file_type_name(o.ftype)).c_str(),
               o.pure ? ", pure" : "", o.gptq ? ", GPTQ" : "", static_cast<std::uintmax_t>(fs::file_size(o.output)), seconds);
  return 0;
}

Options parse(int argc, char** argv) {
  using tinfer_examples::UsageError;
  tinfer_examples::Args a(argc, argv);
  Options o;
  std::vector<std::string> positional;
  while (!a.done()) {
    const std::string_view f = a.next_flag();
    if (f == "-h" || f == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (f == "--pure") {
      o.pure = true;
    } else if (f == "--allow-requantize") {
      o.allow_requantize = true;
    } else if (f == "--gptq") {
      o.gptq = true;
    } else if (f == "--calib") {
      o.calib = a.value(f);
    } else if (f == "--calib-chunks") {
      o.calib_chunks = a.number<int>(f, 1, 1 << 20);
    } else if (f == "--calib-ctx") {
      o.calib_ctx = a.number<int>(f, 2, 1 << 20);
      o.calib_ctx_given = true;
    } else if (f == "--group-size") {
      o.group_size = a.number<int>(f, 32, 1 << 20);
      if (o.group_size % 32 != 0) throw UsageError("--group-size must be a multiple of 32");
    } else if (f == "--act-order") {
      o.act_order = true;
    } else if (f == "--damp") {
      o.damp = a.number<double>(f, 0.0, 10.0);
    } else if (f == "-t" || f == "--threads") {
      o.threads = a.number<int>(f, 1, tinfer::ThreadPool::kMaxThreads);
    } else if (f.size() > 1 && f[0] == '-') {
      throw UsageError("unknown option '" + std::string(f) + "'");
    } else {
      positional.emplace_back(f);
    }
  }
  if (positional.size() != 3) throw UsageError("expected INPUT OUTPUT TYPE, got " + std::to_string(positional.size()) + " argument(s)");
  o.input = positional[0];
  o.output = positional[1];
  o.type_name = positional[2];
  const auto ft = q::parse_file_type(o.type_name);
  if (!ft) {
    std::string names;
    for (const auto& e : q::kFileTypeNames) names += (names.empty() ? "" : ", ") + std::string(e.name);
    throw UsageError("unknown TYPE '" + o.type_name + "' (one of: " + names + ")");
  }
  o.ftype = *ft;
  if (o.gptq && o.calib.empty()) throw UsageError("--gptq needs calibration text: pass --calib FILE");
  if (!o.gptq && !o.calib.empty()) throw UsageError("--calib is only used with --gptq");
  if (!fs::exists(o.input)) throw UsageError("INPUT '" + o.input + "' does not exist");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  return tinfer_examples::guarded_main("tinfer-quantize", [&] { return run(parse(argc, argv)); });
}
