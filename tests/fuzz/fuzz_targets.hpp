// The fuzz targets' bodies, shared by the libFuzzer binaries (fuzz_*.cpp) and by the unit test
// that replays the seed corpus and every past finding (tests/io/test_fuzz_corpus.cpp).
// tinfer::Error is the expected outcome for bad input; anything else escaping is a finding.
#pragma once

#include <algorithm>
#include <memory>
#include <vector>

#include "fuzz_common.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/io/safetensors.hpp"
#include "tinfer/models/llama.hpp"
#include "tinfer/models/model.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"
#include "tinfer/tokenizer/llama2c_tokenizer.hpp"

namespace tinfer_fuzz {

// libFuzzer target: the GGUF reader, then everything a model load reads from it.
inline void fuzz_gguf(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  try {
    auto file = std::make_shared<const tinfer::io::GgufFile>(tinfer::io::GgufFile::from_bytes(std::move(bytes), "fuzz.gguf"));
    for (const auto& t : file->tensors()) (void)file->tensor_data(t);
    try {
      if (tinfer::gguf_has_tokenizer(*file)) {
        auto tok = tinfer::load_gguf_tokenizer(*file);
        auto ids = tok->encode("Hello, world! \xF0\x9F\x98\x80 <s>", {.parse_special = true});
        (void)tok->decode(ids);
      }
    } catch (const tinfer::Error&) {
    }
    auto model = tinfer::load_model(file);
    auto session = model->new_session(std::min(model->max_context(), 4));
    (void)model->forward(*session, 0, 0);
  } catch (const tinfer::Error&) {
  }
}


// libFuzzer target: a safetensors file (header JSON, offsets, dtypes).
inline void fuzz_safetensors(const std::uint8_t* data, std::size_t size) {
  const auto path = tinfer_fuzz::write_scratch("model.safetensors", data, size);
  try {
    tinfer::io::SafetensorsFile f(path.string());
    for (const auto& [name, t] : f.tensors()) {
      volatile std::uint8_t sink = 0;
      if (!t.data.empty()) sink = static_cast<std::uint8_t>(t.data.back());
      (void)sink;
    }
  } catch (const tinfer::Error&) {
  }
}


// libFuzzer target: a Hugging Face config.json (llama and gpt2 readers). The folder has no
inline void fuzz_config_json(const std::uint8_t* data, std::size_t size) {
  tinfer_fuzz::write_scratch("config.json", data, size);
  try {
    (void)tinfer::load_hf_model(tinfer_fuzz::scratch_dir());
  } catch (const tinfer::Error&) {
  }
}


// libFuzzer target: llama2.c checkpoints (header validation, sizes) and one forward pass of
inline void fuzz_llama2c(const std::uint8_t* data, std::size_t size) {
  const auto path = tinfer_fuzz::write_scratch("model.bin", data, size);
  try {
    const auto model = tinfer::LlamaModel::load_llama2c(path.string());
    tinfer::LlamaSession s(model, std::min(model.config().max_seq_len, 2));
    (void)model.forward(s, 0, 0);
  } catch (const tinfer::Error&) {
  }
  try {
    const auto tok = tinfer::Llama2cTokenizer::load(path.string());
    (void)tok.decode(tok.encode("Once upon a time \xC3\xA9\xFF", true));
  } catch (const tinfer::Error&) {
  }
}


}  // namespace tinfer_fuzz
