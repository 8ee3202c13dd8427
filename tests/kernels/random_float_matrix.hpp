// tests/kernels/random_float_matrix.hpp: random F32 / F16 / BF16 weight matrices for kernel tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/float16.hpp"

namespace tinfer::test {

/// A row-major (rows, cols) matrix of float type t (F32, F16 or BF16) in the file layout, with
/// values drawn from N(0, 1) and rounded to t.
inline std::vector<std::byte> random_float_matrix(DType t, std::int64_t rows, std::int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> nd(0, 1);
  const std::size_t es = t == DType::F32 ? 4 : 2;
  std::vector<std::byte> raw(static_cast<std::size_t>(rows * cols) * es);
  for (std::int64_t i = 0; i < rows * cols; ++i) {
    const float v = nd(rng);
    if (t == DType::F32) {
      std::memcpy(raw.data() + 4 * i, &v, 4);
    } else {
      const std::uint16_t b = t == DType::F16 ? f16::from_float(v) : bf16::from_float(v);
      std::memcpy(raw.data() + 2 * i, &b, 2);
    }
  }
  return raw;
}

}  // namespace tinfer::test
