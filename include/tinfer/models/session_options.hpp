// tinfer/models/session_options.hpp: how a session (one sequence and its KV cache) is set up.
#pragma once

#include "tinfer/attention/kv_cache.hpp"

namespace tinfer {

struct SessionOptions {
  int context = 0;                        // positions the session holds (0: the model's maximum)
  KVCacheType type_k = KVCacheType::F32;  // element type of the cached keys
  KVCacheType type_v = KVCacheType::F32;  // element type of the cached values
};

}  // namespace tinfer
