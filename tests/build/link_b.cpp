#include <tinfer/tinfer.hpp>

int link_b_value() {
  tinfer::Tensor<float> t({2, 2});
  t(1, 1) = 42.0f;
  return static_cast<int>(t(1, 1));
}
