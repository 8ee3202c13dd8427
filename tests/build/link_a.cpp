// Together with link_b.cpp: two translation units including the umbrella header must link.
#include <tinfer/tinfer.hpp>

int link_b_value();

int main() {
  tinfer::Tensor<float> t({4});
  t(0) = static_cast<float>(link_b_value());
  return t(0) == 42.0f ? 0 : 1;
}
