// tinfer-convert: writes a Hugging Face folder (config.json + safetensors, model_type llama or
// gpt2) out as a GGUF file in llama.cpp's conventions, so tinfer and llama.cpp both run it.
//
//   tinfer-convert [--outtype f32|f16|bf16] [-z TOKENIZER] HF_FOLDER OUTPUT.gguf
//
// Conventions applied: Llama's Q and K rows go from Hugging Face's rotate-half RoPE layout to
// GGUF's interleaved pairs; GPT-2's Conv1D weights (stored [in, out]) are transposed to rows of
// outputs. Norm weights and biases stay F32; matrices take the output type.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <tinfer/tinfer.hpp>

#include "args.hpp"
#include "hf_to_gguf.hpp"

namespace {

namespace fs = std::filesystem;
using tinfer::DType;
using tinfer::io::GgufWriter;

constexpr const char* kUsage = R"(usage: tinfer-convert [options] HF_FOLDER OUTPUT.gguf

Converts a Hugging Face model folder (config.json + model.safetensors or shards; model_type
llama or gpt2) into a GGUF file that tinfer and llama.cpp load.

options:
      --outtype T        type of the weight matrices: f32, f16 or bf16 (default: f16)
  -z, --tokenizer PATH   tokenizer to embed (default: the folder's tokenizer.json,
                         vocab.json + merges.txt or tokenizer.model, if any)
  -h, --help             show this help
)";

struct Options {
  std::string input, output, tokenizer;
  DType outtype = DType::F16;
};

int run(const Options& o) {
  tinfer_examples::HfConvertOptions c;
  c.input = o.input;
  c.tokenizer = o.tokenizer;
  c.outtype = o.outtype;
  const std::string type = tinfer::hf_model_type(fs::path(o.input));
  const GgufWriter w = tinfer_examples::hf_to_gguf(c);
  w.write(o.output);
  std::fprintf(stderr, "tinfer-convert: wrote %s (%s, %s weights, %ju bytes)\n", o.output.c_str(), type.c_str(),
               std::string(tinfer::dtype_name(o.outtype)).c_str(), static_cast<std::uintmax_t>(fs::file_size(o.output)));
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
    } else if (f == "--outtype") {
      const std::string_view t = a.value(f);
      if (t == "f32") o.outtype = DType::F32;
      else if (t == "f16") o.outtype = DType::F16;
      else if (t == "bf16") o.outtype = DType::BF16;
      else throw UsageError("--outtype must be f32, f16 or bf16, not '" + std::string(t) + "'");
    } else if (f == "-z" || f == "--tokenizer") {
      o.tokenizer = a.value(f);
    } else if (!f.empty() && f[0] == '-') {
      throw UsageError("unknown option '" + std::string(f) + "'");
    } else {
      positional.emplace_back(f);
    }
  }
  if (positional.size() != 2) throw UsageError("expected HF_FOLDER and OUTPUT.gguf");
  o.input = positional[0];
  o.output = positional[1];
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  return tinfer_examples::guarded_main("tinfer-convert", [&] { return run(parse(argc, argv)); });
}
