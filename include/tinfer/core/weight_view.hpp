// tinfer/core/weight_view.hpp: a non-owning view of a weight matrix stored in any element or
// block type (F32, F16, BF16, or a GGUF block-quantized type), as it lies in a model file.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"

namespace tinfer {

/// Row-major (rows, cols) matrix of `type`: row r starts at data + r * row_bytes and holds
/// cols elements (cols / block_size blocks for block types).
struct WeightView {
  DType type = DType::F32;
  const std::byte* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::size_t row_bytes = 0;
  /// Rows [0, interleaved_rows) are stored in groups of kGroupRows interleaved rows (Q8_0 / Q4_0 /
  /// Q4_K / Q6_K / F32 / F16 / BF16; kernels/interleave.hpp documents the layout, `row()` does not
  /// apply to them); 0 for a plain row-major matrix.
  std::int64_t interleaved_rows = 0;

  /// Rows per interleaved group.
  static constexpr std::int64_t kGroupRows = 16;

  /// Float element types (F32, F16, BF16) only, where a 16-column block of an interleaved group
  /// holds its 16 rows' 16 values one row after another: the first element of row r (either
  /// layout), and how many elements apart the row's consecutive 16-column blocks lie (16 in a
  /// plain row, 16 * 16 inside a group). Element i of row r is at
  /// float_row(r)[(i / 16) * float_block_step(r) + i % 16].
  const std::byte* float_row(std::int64_t r, std::size_t elem_bytes) const noexcept {
    if (r >= interleaved_rows) return row(r);
    return data + static_cast<std::size_t>(r - r % kGroupRows) * row_bytes + static_cast<std::size_t>(r % kGroupRows) * 16 * elem_bytes;
  }
  std::int64_t float_block_step(std::int64_t r) const noexcept { return r < interleaved_rows ? 16 * kGroupRows : 16; }

  /// A view of a dense matrix; throws InvalidArgument when cols is not a multiple of the type's
  /// block size or the type is unknown.
  static WeightView dense(DType type, const void* data, std::int64_t rows, std::int64_t cols) {
    const auto info = dtype_info(type);
    if (!info) throw UnsupportedError(detail::str_cat("unknown weight type ", static_cast<std::uint32_t>(type)));
    if (rows < 0 || cols < 0 || cols % static_cast<std::int64_t>(info->block_size) != 0) {
      throw InvalidArgument(detail::str_cat("weight matrix (", rows, ", ", cols, ") of ", info->name,
                                            ": columns must be a multiple of ", info->block_size));
    }
    return {type, static_cast<const std::byte*>(data), rows, cols,
            static_cast<std::size_t>(cols) / info->block_size * info->block_bytes};
  }
  static WeightView f32(const float* data, std::int64_t rows, std::int64_t cols) { return dense(DType::F32, data, rows, cols); }

  /// Row r of a plain matrix (or any row at or past interleaved_rows).
  const std::byte* row(std::int64_t r) const noexcept { return data + static_cast<std::size_t>(r) * row_bytes; }
};

}  // namespace tinfer
