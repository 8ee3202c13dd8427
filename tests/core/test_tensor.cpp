// Tensor indexing, views, slices and transposes against hand-computed row-major offsets.
#include <gtest/gtest.h>

#include <cstdint>
#include <type_traits>

#include "tinfer/core/tensor.hpp"

namespace {

using tinfer::Shape;
using tinfer::Tensor;
using tinfer::TensorView;

Tensor<float> iota(const Shape& s) {
  Tensor<float> t(s);
  auto sp = t.span();
  for (std::size_t i = 0; i < sp.size(); ++i) sp[i] = static_cast<float>(i);
  return t;
}

TEST(Tensor, ZeroedAlignedRowMajor) {
  Tensor<float> t({3, 5, 7});
  EXPECT_EQ(t.numel(), 105);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % 64, 0u);
  for (float v : t.span()) EXPECT_EQ(v, 0.0f);
  auto v = t.view();
  EXPECT_EQ(v.stride(0), 35);
  EXPECT_EQ(v.stride(1), 7);
  EXPECT_EQ(v.stride(2), 1);
  EXPECT_TRUE(v.is_contiguous());
  t(2, 4, 6) = 1.0f;
  EXPECT_EQ(t.data()[2 * 35 + 4 * 7 + 6], 1.0f);
}

TEST(Tensor, SelectSliceTranspose) {
  auto t = iota({4, 6});
  auto row = t[2];
  ASSERT_EQ(row.rank(), 1);
  for (int j = 0; j < 6; ++j) EXPECT_EQ(row(j), 2 * 6 + j);

  auto col = t.view().select(1, 3);
  ASSERT_EQ(col.rank(), 1);
  EXPECT_EQ(col.stride(0), 6);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(col(i), i * 6 + 3);

  auto s = t.view().slice(1, 2, 5);  // columns 2..4
  EXPECT_EQ(s.dim(1), 3);
  EXPECT_FALSE(s.is_contiguous());
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(s(i, j), i * 6 + j + 2);

  auto tr = t.view().transpose(0, 1);
  EXPECT_EQ(tr.dim(0), 6);
  EXPECT_EQ(tr.dim(1), 4);
  EXPECT_FALSE(tr.is_contiguous());
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(tr(i, j), j * 6 + i);

  // writes through a view reach the owner
  tr(5, 3) = -1.0f;
  EXPECT_EQ(t(3, 5), -1.0f);
}

TEST(Tensor, ReshapeAndConstViews) {
  auto t = iota({2, 3, 4});
  auto r = t.view().reshape({6, 4});
  EXPECT_EQ(r(5, 3), 23.0f);
  TensorView<const float> c = t.view();
  EXPECT_EQ(c(1, 2, 3), 23.0f);
  EXPECT_THROW(t.view().reshape({5, 5}), tinfer::InvalidArgument);
  EXPECT_THROW(t.view().transpose(0, 2).reshape({24}), tinfer::InvalidArgument);
  static_assert(std::is_same_v<decltype(c(0, 0, 0)), const float&>, "const views are read-only");
}

TEST(Tensor, CheckedAccessNamesTheProblem) {
  auto t = iota({2, 3});
  EXPECT_EQ(t.view().at({1, 2}), 5.0f);
  try {
    t.view().at({1, 3});
    FAIL() << "expected InvalidArgument";
  } catch (const tinfer::InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("index 3 out of range for dimension 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(t.view().at({1}), tinfer::InvalidArgument);
  EXPECT_THROW(t.view().slice(0, 1, 3), tinfer::InvalidArgument);
  EXPECT_THROW(t.view().select(2, 0), tinfer::InvalidArgument);
  EXPECT_THROW(Shape({1, 2, 3, 4, 5}), tinfer::InvalidArgument);
  EXPECT_THROW(Shape({-1}), tinfer::InvalidArgument);
  EXPECT_THROW(Shape({INT64_MAX, 3}).numel(), tinfer::InvalidArgument);
}

TEST(Tensor, HalfElementTypes) {
  Tensor<tinfer::f16> h({8});
  h(3) = tinfer::f16(1.5f);
  EXPECT_EQ(static_cast<float>(h(3)), 1.5f);
  Tensor<tinfer::bf16> b({2, 2});
  b(1, 0) = tinfer::bf16(-2.0f);
  EXPECT_EQ(b.view().transpose(0, 1)(0, 1).bits, tinfer::bf16(-2.0f).bits);
}

TEST(Tensor, HugeAllocationThrowsOutOfMemory) {
  EXPECT_THROW(Tensor<float>({int64_t{1} << 40, int64_t{1} << 20}), tinfer::OutOfMemory);
}

}  // namespace
