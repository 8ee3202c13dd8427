// libFuzzer target: the GGUF reader, then everything a model load reads from it.
#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinfer_fuzz::fuzz_gguf(data, size);
  return 0;
}
