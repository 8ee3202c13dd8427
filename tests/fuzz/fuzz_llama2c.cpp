// libFuzzer target: llama2.c checkpoints (header validation, sizes) and one forward pass of
#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinfer_fuzz::fuzz_llama2c(data, size);
  return 0;
}
