// libFuzzer target: a safetensors file (header JSON, offsets, dtypes).
#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinfer_fuzz::fuzz_safetensors(data, size);
  return 0;
}
