// libFuzzer target: see tinfer_fuzz::fuzz_tokenizer_json in fuzz_targets.hpp.
#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinfer_fuzz::fuzz_tokenizer_json(data, size);
  return 0;
}
