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

#include <tinfer/quant/gptq.hpp>
#include <tinfer/tinfer.hpp>

#include "args.hpp"
#include "hf_to_gguf.hpp"

namespace {

namespace fs = std::filesystem;
using tinfer::DType;
using tinfer::LinearSlot;
using tinfer::WeightView;
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

// ------------------------------------------------------------------------------------------
// GPTQ over a model whose linear weights are float copies we overwrite as layers are quantized.

struct StopForward {};

// Collects the inputs of one (layer, slot) and stops the forward pass right after them: nothing
// later in the pass affects them.
class Collector : public tinfer::LinearObserver {
 public:
  Collector(int layer, LinearSlot slot, q::HessianAccumulator& acc) : target_(rank(layer, slot)), acc_(acc) {}
  void on_input(int layer, LinearSlot slot, const float* x, std::int64_t n_rows, std::int64_t /*n_cols*/) override {
    const int r = rank(layer, slot);
    if (r == target_) acc_.add(x, n_rows);
    if (r > target_) throw StopForward{};
  }

 private:
  static int rank(int layer, LinearSlot slot) { return layer < 0 ? 1 << 30 : layer * 8 + static_cast<int>(slot); }
  int target_;
  q::HessianAccumulator& acc_;
};

struct Matrix {
  std::string name;
  int layer = 0;
  LinearSlot slot = LinearSlot::AttnQKV;
  std::int64_t rows = 0, cols = 0;
  std::vector<float> buf;
};

struct GptqJob {
  const GgufFile& file;
  const Options& o;
  const std::map<std::string, DType>& target;
  tinfer::ThreadPool* pool;
  std::map<std::string, std::vector<std::byte>> out;  // name -> quantized data
};

std::vector<float> tensor_as_f32(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo& t = f.tensor(name);
  std::vector<float> v(static_cast<std::size_t>(t.row_length() * t.n_rows()));
  q::dequantize_row(t.type, f.tensor_data(t).data(), v.data(), static_cast<std::int64_t>(v.size()));
  return v;
}

// The calibration chunks: the text tokenized as llama-perplexity does (BOS first when the
// tokenizer adds one), cut into chunks of ctx tokens, n of them spread evenly.
std::vector<std::vector<std::int32_t>> calibration_chunks(const GgufFile& f, const Options& o, int max_ctx) {
  const auto tok = tinfer::load_gguf_tokenizer(f);
  std::ifstream in(o.calib, std::ios::binary);
  if (!in) throw tinfer::IoError(o.calib + ": cannot open calibration text");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::vector<std::int32_t> tokens = tok->encode(ss.str());
  const int ctx = o.calib_ctx_given ? o.calib_ctx : std::min(o.calib_ctx, max_ctx);
  if (ctx > max_ctx) {
    throw tinfer::InvalidArgument(tinfer::detail::str_cat("--calib-ctx ", ctx, " exceeds the model's context of ", max_ctx));
  }
  const std::size_t avail = tokens.size() / static_cast<std::size_t>(ctx);
  if (avail == 0) {
    throw tinfer::InvalidArgument(tinfer::detail::str_cat(o.calib, " has ", tokens.size(), " tokens, fewer than one chunk of ", ctx,
                                                          ": use a longer text or a smaller --calib-ctx"));
  }
  const std::size_t n = std::min<std::size_t>(avail, static_cast<std::size_t>(o.calib_chunks));
  const std::int32_t bos = tok->add_bos_by_default() ? tok->bos_id() : -1;
  std::vector<std::vector<std::int32_t>> chunks;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t c = k * avail / n;
    std::vector<std::int32_t> chunk(tokens.begin() + static_cast<std::ptrdiff_t>(c * ctx),
                                    tokens.begin() + static_cast<std::ptrdiff_t>((c + 1) * ctx));
    if (bos >= 0) chunk[0] = bos;
    chunks.push_back(std::move(chunk));
  }
  std::fprintf(stderr, "tinfer-quantize: GPTQ calibration: %zu chunks of %d tokens from %s (%zu tokens)\n", chunks.size(), ctx,
               o.calib.c_str(), tokens.size());
  return chunks;
}

// Sequential GPTQ: for each layer and each of its input slots in forward order, collect the
// slot's inputs through the model (earlier layers already quantized), quantize the slot's
// matrices, and write the chosen values back into the float copies.
template <class ModelT, class SessionT>
void gptq_sequential(GptqJob& job, const ModelT& model, std::vector<std::unique_ptr<Matrix>>& mats,
                     const std::vector<std::vector<std::int32_t>>& chunks, int n_layers) {
  const int ctx = static_cast<int>(chunks.front().size());
  SessionT session(model, tinfer::SessionOptions{.context = ctx});
  const LinearSlot slots[] = {LinearSlot::AttnQKV, LinearSlot::AttnOut, LinearSlot::FfnUp, LinearSlot::FfnDown};
  std::vector<std::pair<int, LinearSlot>> steps;
  for (int l = 0; l < n_layers; ++l)
    for (const auto s : slots) steps.emplace_back(l, s);
  steps.emplace_back(-1, LinearSlot::Output);
  std::size_t done = 0;
  for (const auto& [layer, slot] : steps) {
    std::vector<Matrix*> group;
    for (auto& m : mats)
      if (m->layer == layer && m->slot == slot) group.push_back(m.get());
    ++done;
    if (group.empty()) continue;
    progress_bar(done, steps.size(), "GPTQ " + group.front()->name + (group.size() > 1 ? " (+" + std::to_string(group.size() - 1) + ")" : ""));
    q::HessianAccumulator acc(group.front()->cols);
    Collector col(layer, slot, acc);
    session.set_linear_observer(&col);
    for (const auto& chunk : chunks) {
      for (int j = 0; j < ctx; ++j) {
        try {
          model.forward(session, chunk[static_cast<std::size_t>(j)], j, job.pool);
        } catch (const StopForward&) {
        }
      }
    }
    session.set_linear_observer(nullptr);
    const Eigen::MatrixXd H = acc.hessian();
    for (Matrix* m : group) {
      const DType type = job.target.at(m->name);
      std::vector<std::byte> data;
      const auto info = tinfer::dtype_info(type);
      if (q::is_block_type(type)) {
        q::GptqOptions opt;
        opt.damp = job.o.damp;
        opt.act_order = job.o.act_order;
        const auto N = static_cast<int>(info->block_size);
        opt.group_size = (job.o.group_size > 0 && job.o.group_size % N == 0 && m->cols % job.o.group_size == 0) ? job.o.group_size : 0;
        auto res = q::gptq_quantize(type, m->buf, m->rows, m->cols, H, opt);
        data = std::move(res.data);
        // In place: the model's weight view points at this buffer.
        std::copy(res.values.begin(), res.values.end(), m->buf.begin());
      } else {
        // A fallback to F16 (or F32): nothing to calibrate; later layers see the rounded values.
        data = q::quantize_matrix(type, m->buf, m->rows, m->cols);
        q::dequantize_row(type, data.data(), m->buf.data(), static_cast<std::int64_t>(m->buf.size()));
      }
      job.out[m->name] = std::move(data);
    }
  }
  std::fputc('\n', stderr);
}

Matrix* add_matrix(std::vector<std::unique_ptr<Matrix>>& mats, const GgufFile& f, const std::string& name, int layer, LinearSlot slot,
                   WeightView& view) {
  auto m = std::make_unique<Matrix>();
  m->name = name;
  m->layer = layer;
  m->slot = slot;
  m->rows = view.rows;
  m->cols = view.cols;
  m->buf = tensor_as_f32(f, name);
  view = WeightView::f32(m->buf.data(), m->rows, m->cols);
  mats.push_back(std::move(m));
  return mats.back().get();
}

// The token embedding as the quantized file will hold it, so layer 0 is calibrated on what the
// quantized model computes.
std::vector<float> embedding_as_written(const GgufFile& f, DType type) {
  const GgufTensorInfo& t = f.tensor("token_embd.weight");
  std::vector<float> x = tensor_as_f32(f, t.name);
  if (type != t.type) {
    const auto data = q::quantize_matrix(type, x, t.n_rows(), t.row_length());
    q::dequantize_row(type, data.data(), x.data(), static_cast<std::int64_t>(x.size()));
  }
  return x;
}

void run_gptq(GptqJob& job, const std::shared_ptr<const GgufFile>& file) {
  const std::string arch = tinfer::gguf_architecture(*file);
  std::vector<std::unique_ptr<Matrix>> mats;
  const bool has_output = file->find_tensor("output.weight") != nullptr;
  auto gptq_output = [&](WeightView& cls) {
    if (has_output && job.target.at("output.weight") != file->tensor("output.weight").type)
      add_matrix(mats, *file, "output.weight", -1, LinearSlot::Output, cls);
  };
  const DType emb_type = job.target.at("token_embd.weight");
  std::vector<float> emb = embedding_as_written(*file, emb_type);
  if (arch == "llama") {
    const auto base = tinfer::load_llama_gguf(file);
    auto w = base.weights();
    const bool tied = w.classifier.data == w.token_embedding.data;
    w.token_embedding = WeightView::f32(emb.data(), w.token_embedding.rows, w.token_embedding.cols);
    if (tied) w.classifier = w.token_embedding;
    for (int l = 0; l < base.config().n_layers; ++l) {
      auto& L = w.layers[static_cast<std::size_t>(l)];
      const std::string p = "blk." + std::to_string(l) + ".";
      add_matrix(mats, *file, p + "attn_q.weight", l, LinearSlot::AttnQKV, L.wq);
      add_matrix(mats, *file, p + "attn_k.weight", l, LinearSlot::AttnQKV, L.wk);
      add_matrix(mats, *file, p + "attn_v.weight", l, LinearSlot::AttnQKV, L.wv);
      add_matrix(mats, *file, p + "attn_output.weight", l, LinearSlot::AttnOut, L.wo);
      add_matrix(mats, *file, p + "ffn_gate.weight", l, LinearSlot::FfnUp, L.w_gate);
      add_matrix(mats, *file, p + "ffn_up.weight", l, LinearSlot::FfnUp, L.w_up);
      add_matrix(mats, *file, p + "ffn_down.weight", l, LinearSlot::FfnDown, L.w_down);
    }
    if (!tied) gptq_output(w.classifier);
    const tinfer::LlamaModel model(base.config(), std::move(w), nullptr);
    const auto chunks = calibration_chunks(*file, job.o, model.config().max_seq_len);
    gptq_sequential<tinfer::LlamaModel, tinfer::LlamaSession>(job, model, mats, chunks, model.config().n_layers);
  } else if (arch == "gpt2") {
    const auto base = tinfer::load_gpt2_gguf(file);
    auto w = base.weights();
    const bool tied = w.classifier.data == w.token_embedding.data;
    w.token_embedding = WeightView::f32(emb.data(), w.token_embedding.rows, w.token_embedding.cols);
    if (tied) w.classifier = w.token_embedding;
    for (int l = 0; l < base.config().n_layers; ++l) {
      auto& L = w.layers[static_cast<std::size_t>(l)];
      const std::string p = "blk." + std::to_string(l) + ".";
      add_matrix(mats, *file, p + "attn_qkv.weight", l, LinearSlot::AttnQKV, L.qkv);
      add_matrix(mats, *file, p + "attn_output.weight", l, LinearSlot::AttnOut, L.out);
      add_matrix(mats, *file, p + "ffn_up.weight", l, LinearSlot::FfnUp, L.up);
      add_matrix(mats, *file, p + "ffn_down.weight", l, LinearSlot::FfnDown, L.down);
    }
    if (!tied) gptq_output(w.classifier);
    const tinfer::Gpt2Model model(base.config(), std::move(w), nullptr);
    const auto chunks = calibration_chunks(*file, job.o, model.config().max_seq_len);
    gptq_sequential<tinfer::Gpt2Model, tinfer::Gpt2Session>(job, model, mats, chunks, model.config().n_layers);
  } else {
    throw tinfer::UnsupportedError(file->path() + ": --gptq supports the architectures llama and gpt2, not '" + arch + "'");
  }
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

  tinfer::ThreadPool pool(o.threads);
  GptqJob job{f, o, target, &pool, {}};
  if (o.gptq) {
    if (!q::is_block_type(q::default_type(o.ftype))) throw tinfer::InvalidArgument("--gptq needs a quantized TYPE (not F16/BF16/F32)");
    run_gptq(job, file);
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
    if (auto it = job.out.find(t->name); it != job.out.end()) {
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
