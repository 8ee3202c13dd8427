// tinfer/tinfer.hpp: the umbrella header; includes every public header of the library.
#pragma once

// core: errors, element types, tensors, files, threads
#include "tinfer/core/aligned_buffer.hpp"
#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/float16.hpp"
#include "tinfer/core/mapped_file.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/tensor.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/core/weight_view.hpp"

// io: file formats
#include "tinfer/io/byte_reader.hpp"
#include "tinfer/io/gguf.hpp"
#include "tinfer/io/gguf_reader.hpp"
#include "tinfer/io/gguf_value.hpp"
#include "tinfer/io/gguf_writer.hpp"
#include "tinfer/io/llama2c_checkpoint.hpp"
#include "tinfer/io/safetensors.hpp"

// tokenizer
#include "tinfer/tokenizer/byte_level_bpe.hpp"
#include "tinfer/tokenizer/gguf_tokenizer.hpp"
#include "tinfer/tokenizer/gpt2_pretokenizer.hpp"
#include "tinfer/tokenizer/hf_tokenizer_json.hpp"
#include "tinfer/tokenizer/llama2c_tokenizer.hpp"
#include "tinfer/tokenizer/llama2c_vocab.hpp"
#include "tinfer/tokenizer/load_tokenizer.hpp"
#include "tinfer/tokenizer/sentencepiece_bpe.hpp"
#include "tinfer/tokenizer/sentencepiece_model.hpp"
#include "tinfer/tokenizer/stream_decoder.hpp"
#include "tinfer/tokenizer/tokenizer.hpp"
#include "tinfer/tokenizer/unicode.hpp"
#include "tinfer/tokenizer/unicode_tables.hpp"

// kernels: scalar references, per-ISA versions, run-time dispatch
#include "tinfer/kernels/activation.hpp"
#include "tinfer/kernels/avx2/dot_rows.hpp"
#include "tinfer/kernels/avx2/q16_dot.hpp"
#include "tinfer/kernels/avx2/quant_dot.hpp"
#include "tinfer/kernels/avx512/dot_rows.hpp"
#include "tinfer/kernels/avx512/q16_dot.hpp"
#include "tinfer/kernels/avx512/quant_dot.hpp"
#include "tinfer/kernels/cpu_features.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/dispatch.hpp"
#include "tinfer/kernels/embedding.hpp"
#include "tinfer/kernels/quantize_activations.hpp"
#include "tinfer/kernels/scalar/dot_rows.hpp"
#include "tinfer/kernels/scalar/q16_dot.hpp"
#include "tinfer/kernels/scalar/quant_dot.hpp"
#include "tinfer/kernels/matvec.hpp"
#include "tinfer/kernels/norm.hpp"
#include "tinfer/kernels/rope.hpp"
#include "tinfer/kernels/softmax.hpp"

// attention and its cache
#include "tinfer/attention/attention_kernels.hpp"
#include "tinfer/attention/decode_attention.hpp"
#include "tinfer/attention/flash_attention.hpp"
#include "tinfer/attention/kv_cache.hpp"
#include "tinfer/attention/session_state.hpp"

// models
#include "tinfer/models/decoder_model.hpp"
#include "tinfer/models/decoder_session.hpp"
#include "tinfer/models/gguf_loader.hpp"
#include "tinfer/models/gpt2.hpp"
#include "tinfer/models/gptq_calibration.hpp"
#include "tinfer/models/hf_loader.hpp"
#include "tinfer/models/llama.hpp"
#include "tinfer/models/linear_observer.hpp"
#include "tinfer/models/llama_config.hpp"
#include "tinfer/models/model.hpp"
#include "tinfer/models/session_options.hpp"

// quant: quantizers (round-to-nearest, presets, GPTQ)
#include "tinfer/quant/gptq.hpp"
#include "tinfer/quant/mix.hpp"
#include "tinfer/quant/quantize.hpp"

// generation
#include "tinfer/generate/batch_generate.hpp"
#include "tinfer/generate/generate.hpp"
#include "tinfer/generate/sampler.hpp"
#include "tinfer/generate/sampler_chain.hpp"
#include "tinfer/generate/speculative.hpp"
#include "tinfer/generate/text_stream.hpp"
#include "tinfer/generate/token_text_decoder.hpp"
