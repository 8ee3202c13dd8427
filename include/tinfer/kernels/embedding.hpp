// tinfer/kernels/embedding.hpp: reading one row of an embedding table as float32.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "tinfer/core/error.hpp"
#include "tinfer/core/float16.hpp"
#include "tinfer/core/weight_view.hpp"
#include "tinfer/kernels/dequantize.hpp"
#include "tinfer/kernels/interleave.hpp"

namespace tinfer::kernels {

/// out[0 .. w.cols) = row `row` of w, widened to float. Throws InvalidArgument for a row out of
/// range and UnsupportedError for a type without a conversion.
inline void embedding_row(const WeightView& w, std::int64_t row, float* out) {
  if (row < 0 || row >= w.rows) {
    throw InvalidArgument(tinfer::detail::str_cat("embedding row ", row, " is outside [0, ", w.rows, ")"));
  }
  if (row < w.interleaved_rows) {  // a row inside an interleaved group: gather it first
    std::vector<std::byte> buf(w.row_bytes);
    copy_row(w, row, buf.data());
    quant::dequantize_row(w.type, buf.data(), out, w.cols);
    return;
  }
  const std::byte* src = w.row(row);
  switch (w.type) {
    case DType::F32:
      std::memcpy(out, src, static_cast<std::size_t>(w.cols) * sizeof(float));
      return;
    case DType::F16:
    case DType::BF16:
      for (std::int64_t i = 0; i < w.cols; ++i) {
        std::uint16_t b;
        std::memcpy(&b, src + 2 * i, 2);
        out[i] = w.type == DType::F16 ? f16::to_float(b) : bf16::to_float(b);
      }
      return;
    default:
      quant::dequantize_row(w.type, src, out, w.cols);  // throws UnsupportedError for unknown types
      return;
  }
}

}  // namespace tinfer::kernels
