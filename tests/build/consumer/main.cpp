// A client program: includes the umbrella header and uses a few core types.
#include <tinfer/tinfer.hpp>

#include <cstdio>

int main() {
  tinfer::Tensor<float> t({2, 3});
  t(1, 2) = 5.0f;
  tinfer::ThreadPool pool(2);
  float sum = 0;
  pool.parallel_for(1, [&](std::int64_t, std::int64_t) { sum = t(1, 2); });
  if (sum != 5.0f || static_cast<float>(tinfer::f16(0.5f)) != 0.5f) return 1;
  std::puts("consumer ok");
  return 0;
}
