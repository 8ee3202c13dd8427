// GgufWriter: round trips of every value type and of tensors, argument checks, and rewriting
// the real files (which llama.cpp wrote) byte for byte.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <string>

#include "io/gguf_test_util.hpp"
#include "tinfer/io/gguf.hpp"

namespace {

using tinfer::DType;
using tinfer::io::GgufArray;
using tinfer::io::GgufFile;
using tinfer::io::GgufType;
using tinfer::io::GgufValue;
using tinfer::io::GgufWriter;

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 131 + seed * 7 + (i >> 8)) & 0xff);
  return b;
}

TEST(GgufWriter, RoundTripsEveryValueTypeAndTensors) {
  GgufWriter w;
  w.set("general.architecture", "test");
  w.set("v.u8", std::uint8_t{200});
  w.set("v.i8", std::int8_t{-100});
  w.set("v.u16", std::uint16_t{60000});
  w.set("v.i16", std::int16_t{-30000});
  w.set("v.u32", std::uint32_t{4000000000u});
  w.set("v.i32", std::int32_t{-2000000000});
  w.set("v.f32", 1.5f);
  w.set("v.bool_t", true);
  w.set("v.bool_f", false);
  w.set("v.str", "héllo\nworld");
  w.set("v.empty_str", "");
  w.set("v.u64", std::numeric_limits<std::uint64_t>::max());
  w.set("v.i64", std::numeric_limits<std::int64_t>::min());
  w.set("v.f64", -0.1);
  w.set("a.f32", GgufArray::of(std::vector<float>{1.0f, -2.5f, 3e-8f}));
  w.set("a.str", GgufArray::of(std::vector<std::string>{"a", "", "ccc"}));
  w.set("a.bool", GgufArray::of(std::vector<bool>{true, false, true}));
  w.set("a.empty", GgufArray{GgufType::I64, {}});
  GgufArray nested{GgufType::Array, {GgufArray::of(std::vector<std::int32_t>{1, 2}),
                                     GgufArray::of(std::vector<std::string>{"x"}), GgufArray{GgufType::U8, {}}}};
  w.set("a.nested", nested);

  const auto f32 = pattern(32 * 3 * 4, 1);
  const auto q4k = pattern(2 * 144, 2);
  const auto q8 = pattern(4 * 34, 3);
  const auto f16 = pattern(7 * 2, 4);
  w.add_tensor("f32", {32, 3}, DType::F32, f32);
  w.add_tensor("q4k", {512}, DType::Q4_K, q4k);
  w.add_tensor_view("q8", {32, 2, 1, 2}, DType::Q8_0, q8);
  w.add_tensor("f16", {7}, DType::F16, f16);

  tinfer::testing::TempFile tmp("roundtrip");
  w.write(tmp.path());
  const GgufFile f(tmp.path());
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.metadata().size(), 20u);
  EXPECT_EQ(f.get_u8("v.u8"), 200);
  EXPECT_EQ(f.get_i8("v.i8"), -100);
  EXPECT_EQ(f.get_u16("v.u16"), 60000);
  EXPECT_EQ(f.get_i16("v.i16"), -30000);
  EXPECT_EQ(f.get_u32("v.u32"), 4000000000u);
  EXPECT_EQ(f.get_i32("v.i32"), -2000000000);
  EXPECT_EQ(f.get_f32("v.f32"), 1.5f);
  EXPECT_TRUE(f.get_bool("v.bool_t"));
  EXPECT_FALSE(f.get_bool("v.bool_f"));
  EXPECT_EQ(f.get_string("v.str"), "héllo\nworld");
  EXPECT_EQ(f.get_string("v.empty_str"), "");
  EXPECT_EQ(f.get_u64("v.u64"), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(f.get_i64("v.i64"), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(f.get_f64("v.f64"), -0.1);
  EXPECT_EQ(f.get_array_of<float>("a.f32"), (std::vector<float>{1.0f, -2.5f, 3e-8f}));
  EXPECT_EQ(f.get_array_of<std::string>("a.str"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(f.get_array_of<bool>("a.bool"), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(f.get_array("a.empty").type, GgufType::I64);
  EXPECT_TRUE(f.get_array("a.empty").items.empty());
  EXPECT_EQ(f.get_array("a.nested"), nested);
  EXPECT_THROW(f.get_int("v.u64"), tinfer::FormatError);  // above INT64_MAX
  EXPECT_EQ(f.get_int("v.i8"), -100);

  ASSERT_EQ(f.tensors().size(), 4u);
  const auto check = [&](const char* name, std::vector<std::int64_t> dims, DType type, const std::vector<std::byte>& data) {
    SCOPED_TRACE(name);
    const auto& t = f.tensor(name);
    EXPECT_EQ(t.dims, dims);
    EXPECT_EQ(t.type, type);
    EXPECT_EQ(t.offset % 32, 0u);
    const auto got = f.tensor_data(t);
    ASSERT_EQ(got.size(), data.size());
    EXPECT_EQ(std::memcmp(got.data(), data.data(), data.size()), 0);
  };
  check("f32", {32, 3}, DType::F32, f32);
  check("q4k", {512}, DType::Q4_K, q4k);
  check("q8", {32, 2, 1, 2}, DType::Q8_0, q8);
  check("f16", {7}, DType::F16, f16);
  EXPECT_EQ(f.tensors()[0].name, "f32");  // file order kept
  EXPECT_EQ(f.tensors()[3].name, "f16");

  // Metadata is identical, in order, value and type.
  GgufWriter again;
  for (const auto& [k, v] : f.metadata()) again.set(k, v);
  for (const auto& t : f.tensors()) again.add_tensor_view(t.name, t.dims, t.type, f.tensor_data(t));
  const auto rewritten = again.to_bytes();
  ASSERT_EQ(rewritten.size(), f.bytes().size());
  EXPECT_EQ(std::memcmp(rewritten.data(), f.bytes().data(), rewritten.size()), 0);
}

TEST(GgufWriter, CustomAlignment) {
  GgufWriter w;
  w.set("general.alignment", std::uint32_t{128});
  w.add_tensor("a", {1}, DType::F32, pattern(4, 1));
  w.add_tensor("b", {3}, DType::F32, pattern(12, 2));
  const auto f = GgufFile::from_bytes(w.to_bytes());
  EXPECT_EQ(f.alignment(), 128u);
  EXPECT_EQ(f.data_offset() % 128, 0u);
  EXPECT_EQ(f.tensor("b").offset, 128u);
  EXPECT_EQ(f.bytes().size(), f.data_offset() + 256);
}

TEST(GgufWriter, RejectsBadInput) {
  GgufWriter w;
  w.set("k", 1);
  EXPECT_THROW(w.set("k", 2), tinfer::InvalidArgument);
  EXPECT_THROW(w.set("general.alignment", 32), tinfer::InvalidArgument);                  // int32, not uint32
  EXPECT_THROW(w.set("general.alignment", std::uint32_t{48}), tinfer::InvalidArgument);  // not a power of two
  EXPECT_THROW(w.set("mixed", GgufArray{GgufType::U8, {GgufValue(std::uint8_t{1}), GgufValue(2)}}),
               tinfer::InvalidArgument);
  w.add_tensor("t", {32}, DType::F32, pattern(128, 0));
  EXPECT_THROW(w.add_tensor("t", {32}, DType::F32, pattern(128, 0)), tinfer::InvalidArgument);
  EXPECT_THROW(w.add_tensor("u", {32}, DType::F32, pattern(127, 0)), tinfer::InvalidArgument);
  EXPECT_THROW(w.add_tensor("u", {}, DType::F32, {}), tinfer::InvalidArgument);
  EXPECT_THROW(w.add_tensor("u", {1, 1, 1, 1, 1}, DType::F32, pattern(4, 0)), tinfer::InvalidArgument);
  EXPECT_THROW(w.add_tensor("u", {0}, DType::F32, {}), tinfer::InvalidArgument);
  EXPECT_THROW(w.add_tensor("u", {16}, DType::Q4_0, pattern(9, 0)), tinfer::InvalidArgument);
  EXPECT_THROW(w.add_tensor("u", {32}, static_cast<DType>(99), pattern(4, 0)), tinfer::InvalidArgument);
  EXPECT_THROW(w.write("/nonexistent/dir/x.gguf"), tinfer::IoError);
  // The writer is still usable after rejected calls.
  const auto f = GgufFile::from_bytes(w.to_bytes());
  EXPECT_EQ(f.metadata().size(), 1u);
  EXPECT_EQ(f.tensors().size(), 1u);
}

// Every real file, rewritten with its own keys and tensors, is byte-identical to the original
// (llama.cpp's writer uses the same layout) and reads back identically.
TEST(GgufWriter, RewritesRealFilesByteForByte) {
  const auto files = tinfer::testing::all_real_gguf_files();
  if (files.empty()) GTEST_SKIP() << "no GGUF assets; set TINFER_ASSETS";
  for (const auto& p : files) {
    SCOPED_TRACE(p.string());
    const GgufFile orig(p.string());
    GgufWriter w;
    for (const auto& [k, v] : orig.metadata()) w.set(k, v);
    for (const auto& t : orig.tensors()) w.add_tensor(t.name, t.dims, t.type, orig.tensor_data(t));
    tinfer::testing::TempFile tmp("copy");
    w.write(tmp.path());
    const GgufFile copy(tmp.path());
    EXPECT_EQ(copy.metadata(), orig.metadata());
    ASSERT_EQ(copy.tensors().size(), orig.tensors().size());
    for (std::size_t i = 0; i < orig.tensors().size(); ++i) {
      const auto& a = orig.tensors()[i];
      const auto& b = copy.tensors()[i];
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.dims, b.dims);
      EXPECT_EQ(a.type, b.type);
      EXPECT_EQ(a.offset, b.offset);
      const auto da = orig.tensor_data(a);
      const auto db = copy.tensor_data(b);
      ASSERT_EQ(da.size(), db.size());
      EXPECT_EQ(std::memcmp(da.data(), db.data(), da.size()), 0) << a.name;
    }
    ASSERT_EQ(copy.bytes().size(), orig.bytes().size());
    EXPECT_EQ(std::memcmp(copy.bytes().data(), orig.bytes().data(), orig.bytes().size()), 0);
  }
}

}  // namespace
