// libFuzzer target: a Hugging Face config.json (llama and gpt2 readers). The folder has no
#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinfer_fuzz::fuzz_config_json(data, size);
  return 0;
}
