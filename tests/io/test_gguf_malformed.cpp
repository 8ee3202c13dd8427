// GgufFile on malformed input: truncations at many offsets, corrupted header fields, counts,
// lengths, types, shapes and offsets. Each must throw a tinfer::Error whose message names the
// offset or the field, never crash or read out of bounds.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "io/gguf_test_util.hpp"
#include "tinfer/io/gguf.hpp"

namespace {

using tinfer::io::GgufFile;
using tinfer::testing::RawGguf;

/// Parses `bytes` and returns the error message, failing the test unless an exception of type
/// E (a tinfer::Error subclass) is thrown.
template <class E = tinfer::FormatError>
std::string parse_error(const std::vector<std::byte>& bytes) {
  try {
    GgufFile::from_bytes(bytes, "bad.gguf");
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception";
  return "";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

/// A valid file: two KVs, two F32 tensors of 32 and 64 floats.
RawGguf valid_file() {
  RawGguf r;
  r.header(2, 2).kv_u32("a.x", 7).str("a.s").u32(8).str("hello");
  r.tensor("t0", {32}, 0, 0).tensor("t1", {32, 2}, 0, 128).pad().zeros(128 + 256);
  return r;
}

TEST(GgufMalformed, BaselineIsValid) {
  const auto f = GgufFile::from_bytes(valid_file().bytes);
  EXPECT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.get_string("a.s"), "hello");
}

TEST(GgufMalformed, EveryTruncationOfASmallFileThrows) {
  const auto full = valid_file().bytes;
  for (std::size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    const std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_CONTAINS(parse_error(cut), "offset");
  }
}

TEST(GgufMalformed, TruncatedRealFileThrowsAtManyOffsets) {
  const auto path = tinfer::testing::gguf_asset("tiny-llama-Q4_K.gguf");
  TINFER_REQUIRE_FILE(path);
  const auto full = tinfer::testing::read_bytes(path);
  const auto data_offset = GgufFile(path.string()).data_offset();
  std::vector<std::size_t> cuts;
  for (std::size_t n = 0; n < 600; ++n) cuts.push_back(n);                        // header, first keys
  for (std::size_t n = 600; n < data_offset; n += 97) cuts.push_back(n);          // vocab, tensor infos
  for (std::size_t n = data_offset; n < full.size(); n += 65537) cuts.push_back(n);  // data section
  cuts.push_back(full.size() - 1);
  for (std::size_t n : cuts) {
    SCOPED_TRACE(n);
    const std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    const auto msg = parse_error(cut);
    EXPECT_CONTAINS(msg, "bad.gguf: at byte offset ");
  }
  // The same through a real (temporary) file and the memory map.
  tinfer::testing::TempFile tmp("truncated");
  tmp.write(std::span(full).first(full.size() / 2));
  try {
    GgufFile f(tmp.path());
    ADD_FAILURE() << "no exception";
  } catch (const tinfer::FormatError& e) {
    EXPECT_EQ(e.file(), tmp.path());
    EXPECT_CONTAINS(e.what(), "past the end");
  }
}

TEST(GgufMalformed, BadMagicAndVersions) {
  auto b = valid_file().bytes;
  b[0] = std::byte{'g'};
  EXPECT_CONTAINS(parse_error(b), "not a GGUF file");

  RawGguf v1;
  v1.header(0, 0, 1);
  EXPECT_CONTAINS(parse_error<tinfer::UnsupportedError>(v1.bytes), "version 1");
  RawGguf v4;
  v4.header(0, 0, 4);
  EXPECT_CONTAINS(parse_error<tinfer::UnsupportedError>(v4.bytes), "version 4");
  RawGguf be;
  be.header(0, 0, 0x03000000u);
  EXPECT_CONTAINS(parse_error<tinfer::UnsupportedError>(be.bytes), "big-endian");
  // v2 has the same layout and reads.
  RawGguf v2;
  v2.header(0, 1, 2).kv_u32("k", 1);
  EXPECT_EQ(GgufFile::from_bytes(v2.bytes).version(), 2u);
}

TEST(GgufMalformed, ImpossibleCountsAreRejectedBeforeAllocating) {
  RawGguf t;
  t.header(std::uint64_t{1} << 60, 0).zeros(64);
  EXPECT_CONTAINS(parse_error(t.bytes), "tensor count 1152921504606846976 cannot fit");
  RawGguf k;
  k.header(0, ~std::uint64_t{0}).zeros(64);
  EXPECT_CONTAINS(parse_error(k.bytes), "key/value count");
  RawGguf a;  // an array claiming 2^61 uint64 items
  a.header(0, 1).str("arr").u32(9).u32(10).u64(std::uint64_t{1} << 61).zeros(16);
  EXPECT_CONTAINS(parse_error(a.bytes), "arr: array of 2305843009213693952 uint64 values cannot fit");
  RawGguf s;  // an array of 2^40 strings
  s.header(0, 1).str("arr").u32(9).u32(8).u64(std::uint64_t{1} << 40).zeros(16);
  EXPECT_CONTAINS(parse_error(s.bytes), "cannot fit");
}

TEST(GgufMalformed, StringLengthsPastTheEnd) {
  RawGguf key;
  key.header(0, 1).u64(1000).zeros(10);
  EXPECT_CONTAINS(parse_error(key.bytes), "metadata key #0: string length 1000 runs past the end");
  RawGguf val;
  val.header(0, 1).str("name").u32(8).u64(~std::uint64_t{0});
  const auto msg = parse_error(val.bytes);
  EXPECT_CONTAINS(msg, "at byte offset 40");
  EXPECT_CONTAINS(msg, "name: string length 18446744073709551615");
  RawGguf tname;
  tname.header(1, 0).u64(1u << 20).zeros(40);
  EXPECT_CONTAINS(parse_error(tname.bytes), "name of tensor #0");
}

TEST(GgufMalformed, BadValueTypes) {
  RawGguf t;
  t.header(0, 1).str("k").u32(13).u32(0);
  EXPECT_CONTAINS(parse_error(t.bytes), "unknown metadata value type 13");
  RawGguf arr;
  arr.header(0, 1).str("k").u32(9).u32(77).u64(0);
  EXPECT_CONTAINS(parse_error(arr.bytes), "unknown metadata value type 77");
  RawGguf b;
  b.header(0, 1).str("flag").u32(7).u8(2);
  EXPECT_CONTAINS(parse_error(b.bytes), "flag: bool value is 2");
  RawGguf deep;  // arrays nested 100 deep
  deep.header(0, 1).str("deep");
  deep.u32(9);
  for (int i = 0; i < 100; ++i) deep.u32(9).u64(1);
  deep.u32(0).u64(0);
  EXPECT_CONTAINS(parse_error(deep.bytes), "nested more than");
}

TEST(GgufMalformed, DuplicateKeysAndTensorNames) {
  RawGguf k;
  k.header(0, 2).kv_u32("same", 1).kv_u32("same", 2);
  EXPECT_CONTAINS(parse_error(k.bytes), "duplicate metadata key 'same'");
  RawGguf t;
  t.header(2, 0).tensor("w", {32}, 0, 0).tensor("w", {32}, 0, 128).pad().zeros(256);
  EXPECT_CONTAINS(parse_error(t.bytes), "duplicate tensor name 'w'");
}

TEST(GgufMalformed, BadAlignmentKey) {
  RawGguf np2;
  np2.header(0, 1).kv_u32("general.alignment", 24);
  EXPECT_CONTAINS(parse_error(np2.bytes), "general.alignment is 24, expected a power of two");
  RawGguf zero;
  zero.header(0, 1).kv_u32("general.alignment", 0);
  EXPECT_CONTAINS(parse_error(zero.bytes), "power of two");
  RawGguf type;
  type.header(0, 1).str("general.alignment").u32(10).u64(32);
  EXPECT_CONTAINS(parse_error(type.bytes), "'general.alignment' has type uint64, expected uint32");
  RawGguf ok;  // a valid non-default alignment moves the data section
  ok.header(1, 1).kv_u32("general.alignment", 256).tensor("w", {32}, 0, 0).pad(256).zeros(128);
  const auto f = GgufFile::from_bytes(ok.bytes);
  EXPECT_EQ(f.alignment(), 256u);
  EXPECT_EQ(f.data_offset(), 256u);
}

TEST(GgufMalformed, BadShapes) {
  RawGguf nd;
  nd.header(1, 0).tensor("w", {1, 1, 1, 1, 32}, 0, 0).pad().zeros(128);
  auto msg = parse_error(nd.bytes);
  EXPECT_CONTAINS(msg, "tensor 'w': n_dims is 5, expected 1 to 4");
  EXPECT_CONTAINS(msg, "at byte offset 33");
  RawGguf n0;
  n0.header(1, 0).tensor("w", {}, 0, 0).pad().zeros(128);
  EXPECT_CONTAINS(parse_error(n0.bytes), "n_dims is 0");
  RawGguf zero;
  zero.header(1, 0).tensor("w", {32, 0}, 0, 0).pad().zeros(128);
  EXPECT_CONTAINS(parse_error(zero.bytes), "dimension 1 is 0");
  RawGguf neg;  // a "negative" int64 dimension
  neg.header(1, 0).tensor("w", {32, ~std::uint64_t{0}}, 0, 0).pad().zeros(128);
  EXPECT_CONTAINS(parse_error(neg.bytes), "dimension 1 is 18446744073709551615");
  RawGguf huge;  // 2^32 * 2^32 elements overflows int64
  huge.header(1, 0).tensor("w", {std::uint64_t{1} << 32, std::uint64_t{1} << 32}, 0, 0).pad().zeros(128);
  EXPECT_CONTAINS(parse_error(huge.bytes), "element count overflows");
  RawGguf big;  // 2^61 F32 elements: 2^63 bytes fit uint64 but not the file
  big.header(1, 0).tensor("w", {std::uint64_t{1} << 31, std::uint64_t{1} << 30}, 0, 0).pad().zeros(128);
  EXPECT_CONTAINS(parse_error(big.bytes), "runs past the end of the data section");
  RawGguf f64;  // 2^62 F64 elements: the count fits int64, the byte size 2^65 overflows
  f64.header(1, 0).tensor("w", {std::uint64_t{1} << 31, std::uint64_t{1} << 31}, 28, 0).pad().zeros(128);
  EXPECT_CONTAINS(parse_error(f64.bytes), "byte size overflows");
  RawGguf block;  // Q4_0 rows must be multiples of 32
  block.header(1, 0).tensor("w", {48, 2}, 2, 0).pad().zeros(128);
  EXPECT_CONTAINS(parse_error(block.bytes), "row length 48 is not a multiple of the Q4_0 block size 32");
}

TEST(GgufMalformed, UnknownTensorTypesNameTheNumber) {
  RawGguf t;
  t.header(1, 0).tensor("w", {32}, 99, 0).pad().zeros(128);
  auto msg = parse_error<tinfer::UnsupportedError>(t.bytes);
  EXPECT_CONTAINS(msg, "tensor 'w' has tensor type 99");
  RawGguf iq;
  iq.header(1, 0).tensor("w", {256}, 16, 0).pad().zeros(128);
  msg = parse_error<tinfer::UnsupportedError>(iq.bytes);
  EXPECT_CONTAINS(msg, "tensor type 16 (IQ2_XXS)");
}

TEST(GgufMalformed, BadOffsets) {
  RawGguf mis;
  mis.header(1, 0).tensor("w", {32}, 0, 4).pad().zeros(256);
  EXPECT_CONTAINS(parse_error(mis.bytes), "data offset 4 is not a multiple of the alignment 32");
  RawGguf past;
  past.header(1, 0).tensor("w", {32}, 0, 1024).pad().zeros(256);
  EXPECT_CONTAINS(parse_error(past.bytes), "runs past the end of the data section");
  RawGguf wrap;  // offset + size wraps around 2^64
  wrap.header(1, 0).tensor("w", {32}, 0, ~std::uint64_t{31}).pad().zeros(256);
  EXPECT_CONTAINS(parse_error(wrap.bytes), "past the end");
  RawGguf ov;  // c starts inside a
  ov.header(3, 0).tensor("a", {64}, 0, 0).tensor("b", {32}, 0, 256).tensor("c", {32}, 0, 192).pad().zeros(512);
  EXPECT_CONTAINS(parse_error(ov.bytes), "tensor 'c' (offset 192) overlaps tensor 'a'");
  RawGguf adjacent;  // the same without the overlap reads
  adjacent.header(3, 0).tensor("a", {64}, 0, 0).tensor("b", {32}, 0, 256).tensor("c", {32}, 0, 384).pad().zeros(512);
  EXPECT_NO_THROW(GgufFile::from_bytes(adjacent.bytes));
  RawGguf no_data;  // infos end, but the file stops before the aligned data section
  no_data.header(1, 0).tensor("w", {32}, 0, 0);
  EXPECT_CONTAINS(parse_error(no_data.bytes), "data section would start at offset");
}

TEST(GgufMalformed, RandomCorruptionNeverCrashes) {
  // Flip bytes of a real file's header region: every outcome is a parsed file or a tinfer::Error.
  const auto path = tinfer::testing::gguf_asset("tiny-gpt2-Q4_0.gguf");
  std::vector<std::byte> base;
  std::size_t header_end = 0;
  if (std::filesystem::exists(path)) {
    base = tinfer::testing::read_bytes(path);
    header_end = GgufFile(path.string()).data_offset();
  } else {
    base = valid_file().bytes;
    header_end = 96;
  }
  std::mt19937 rng(1234);
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 300; ++iter) {
    auto b = base;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Favour the first bytes (counts, first lengths) and the tensor infos at the end.
      const std::size_t at = (rng() % 2 == 0) ? rng() % 64 : rng() % header_end;
      b[at] = static_cast<std::byte>(rng() & 0xff);
    }
    try {
      const auto f = GgufFile::from_bytes(std::move(b));
      for (const auto& t : f.tensors()) ASSERT_EQ(f.tensor_data(t).size(), t.n_bytes);
      ++parsed;
    } catch (const tinfer::Error&) {
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "iteration " << iter << ": non-tinfer exception " << e.what();
    }
  }
  EXPECT_EQ(parsed + rejected, 300);
  EXPECT_GT(rejected, 0);
}

}  // namespace
