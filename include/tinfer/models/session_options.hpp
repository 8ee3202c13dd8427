// tinfer/models/session_options.hpp: how a session (one sequence and its KV cache) is set up.
#pragma once

#include "tinfer/attention/kv_cache.hpp"

namespace tinfer {

struct SessionOptions {
  int context = 0;                        // positions the session holds (0: the model's maximum)
  KVCacheType type_k = KVCacheType::F32;  // element type of the cached keys
  KVCacheType type_v = KVCacheType::F32;  // element type of the cached values
  /// Sliding-window attention: each token attends to itself and the window - 1 positions before
  /// it (0: the whole context). The cache then becomes a ring of window + kRingSlack rows, so a
  /// long context costs the memory of the window only; positions still run up to context - 1.
  int window = 0;
  static constexpr int kRingSlack = 64;  // extra ring rows: a batch of up to 65 tokens at once
};

}  // namespace tinfer
