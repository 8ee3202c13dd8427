// Scalar dequantization: hand-built blocks whose expected values follow from the format
// definitions (written here element by element, independently of the library's loops), the
// real tiny-llama/tiny-gpt2 files against their F32 originals, and checksums pinned from
// gguf-py's quants.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "io/gguf_test_util.hpp"
#include "tinfer/io/gguf.hpp"
#include "tinfer/kernels/dequantize.hpp"

namespace {

using tinfer::DType;
using tinfer::f16;
using namespace tinfer::quant;

template <class B>
std::vector<float> run(DType type, const B& block, int n) {
  std::vector<std::byte> bytes(sizeof(B));
  std::memcpy(bytes.data(), &block, sizeof(B));
  std::vector<float> out(static_cast<std::size_t>(n), -12345.0f);
  dequantize(type, bytes, out);
  return out;
}

// All hand-built blocks use power-of-two scales and small integers, so every expected value is
// exact in float whatever the order of operations.
void expect_all(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "element " << i;
}

TEST(DequantizeBlock, Q4_0) {
  block_q4_0 b{};
  b.d = f16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  // Element j < 16: low nibble of byte j; element 16 + j: its high nibble; value (q - 8) * d.
  std::vector<float> want(32);
  for (int j = 0; j < 16; ++j) {
    want[j] = (j - 8) * 0.5f;
    want[16 + j] = ((15 - j) - 8) * 0.5f;
  }
  const auto got = run(DType::Q4_0, b, 32);
  expect_all(got, want);
  EXPECT_EQ(got[0], -4.0f);
  EXPECT_EQ(got[15], 3.5f);
  EXPECT_EQ(got[16], 3.5f);
  EXPECT_EQ(got[31], -4.0f);
}

TEST(DequantizeBlock, Q4_1) {
  block_q4_1 b{};
  b.d = f16(0.25f);
  b.m = f16(-1.0f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  std::vector<float> want(32);
  for (int j = 0; j < 16; ++j) {
    want[j] = j * 0.25f - 1.0f;
    want[16 + j] = (15 - j) * 0.25f - 1.0f;
  }
  const auto got = run(DType::Q4_1, b, 32);
  expect_all(got, want);
  EXPECT_EQ(got[0], -1.0f);
  EXPECT_EQ(got[16], 2.75f);
}

// Fifth bits for Q5: bits 0, 15, 17 and 30 of the little-endian uint32 qh.
constexpr std::uint8_t kQh[4] = {0x01, 0x80, 0x02, 0x40};
int fifth_bit(int element) { return (kQh[element / 8] >> (element % 8)) & 1; }

TEST(DequantizeBlock, Q5_0) {
  block_q5_0 b{};
  b.d = f16(1.0f);
  std::memcpy(b.qh, kQh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  std::vector<float> want(32);
  for (int e = 0; e < 32; ++e) {
    const int nibble = e < 16 ? e : 15 - (e - 16);
    want[e] = static_cast<float>((nibble | (fifth_bit(e) << 4)) - 16);
  }
  const auto got = run(DType::Q5_0, b, 32);
  expect_all(got, want);
  EXPECT_EQ(got[0], 0.0f);    // 0 | 16, minus 16
  EXPECT_EQ(got[1], -15.0f);  // 1 - 16
  EXPECT_EQ(got[15], 15.0f);  // 15 | 16
  EXPECT_EQ(got[17], 14.0f);  // element 17: nibble 14, bit 17 set
  EXPECT_EQ(got[30], 1.0f);   // element 30: nibble 1, bit 30 set
  EXPECT_EQ(got[31], -16.0f);
}

TEST(DequantizeBlock, Q5_1) {
  block_q5_1 b{};
  b.d = f16(0.5f);
  b.m = f16(2.0f);
  std::memcpy(b.qh, kQh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  std::vector<float> want(32);
  for (int e = 0; e < 32; ++e) {
    const int nibble = e < 16 ? e : 15 - (e - 16);
    want[e] = static_cast<float>(nibble | (fifth_bit(e) << 4)) * 0.5f + 2.0f;
  }
  const auto got = run(DType::Q5_1, b, 32);
  expect_all(got, want);
  EXPECT_EQ(got[0], 10.0f);  // 16 * 0.5 + 2
  EXPECT_EQ(got[31], 2.0f);
}

TEST(DequantizeBlock, Q8_0) {
  block_q8_0 b{};
  b.d = f16(0.125f);
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<std::int8_t>(j * 8 - 128);
  std::vector<float> want(32);
  for (int j = 0; j < 32; ++j) want[j] = (j * 8 - 128) * 0.125f;
  const auto got = run(DType::Q8_0, b, 32);
  expect_all(got, want);
  EXPECT_EQ(got[0], -16.0f);
  EXPECT_EQ(got[31], 15.0f);
}

// K-quants. Element e of a 256-weight super-block, as the format defines it:
//  Q2_K/Q3_K: 2-bit field (e % 128) / 32 of byte 32 * (e / 128) + e % 32 of qs; sub-block e / 16.
int q2_bits(const std::uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

std::uint8_t byte_pattern(int i) { return static_cast<std::uint8_t>((i * 37 + 11) & 0xff); }

TEST(DequantizeBlock, Q2_K) {
  block_q2_K b{};
  b.d = f16(0.5f);
  b.dmin = f16(0.25f);
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<std::uint8_t>(s | ((15 - s) << 4));  // scale s, min 15 - s
  for (int i = 0; i < 64; ++i) b.qs[i] = byte_pattern(i);
  std::vector<float> want(256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 16;
    want[e] = 0.5f * static_cast<float>(s) * static_cast<float>(q2_bits(b.qs, e)) - 0.25f * static_cast<float>(15 - s);
  }
  const auto got = run(DType::Q2_K, b, 256);
  expect_all(got, want);
  // qs[0] = 11 = 0b00001011: elements 0, 32, 64, 96 get 3, 2, 0, 0; sub-block 0 has scale 0.
  EXPECT_EQ(got[0], -3.75f);
  // Element 254: byte 62 = 0x01 -> field 3 = 0; sub-block 15 (scale 15, min 0): 0.
  // Element 191: byte 63 = 0x26 -> field 1 = 1; sub-block 11 (scale 11, min 4): 5.5 - 1 = 4.5.
  EXPECT_EQ(got[254], 0.0f);
  EXPECT_EQ(got[191], 4.5f);
}

TEST(DequantizeBlock, Q3_K) {
  block_q3_K b{};
  b.d = f16(0.25f);
  // Sixteen 6-bit scales (stored value = scale + 32), packed as the format defines: low 4
  // bits of scale i in byte i % 8 (low nibble for i < 8, high for i >= 8), high 2 bits in
  // byte 8 + i % 4 at bit 2 * (i / 4).
  int stored[16];
  for (int i = 0; i < 16; ++i) stored[i] = (i * 13 + 5) % 64;
  for (int i = 0; i < 16; ++i) {
    b.scales[i % 8] |= static_cast<std::uint8_t>((stored[i] & 0xF) << (i < 8 ? 0 : 4));
    b.scales[8 + i % 4] |= static_cast<std::uint8_t>((stored[i] >> 4) << (2 * (i / 4)));
  }
  for (int i = 0; i < 64; ++i) b.qs[i] = byte_pattern(i);
  for (int i = 0; i < 32; ++i) b.hmask[i] = byte_pattern(i + 100);
  std::vector<float> want(256);
  for (int e = 0; e < 256; ++e) {
    // High bit: bit e / 32 of hmask[e % 32]; a clear bit subtracts 4.
    const int high = (b.hmask[e % 32] >> (e / 32)) & 1;
    const int q = q2_bits(b.qs, e) - (high ? 0 : 4);
    want[e] = 0.25f * static_cast<float>(stored[e / 16] - 32) * static_cast<float>(q);
  }
  const auto got = run(DType::Q3_K, b, 256);
  expect_all(got, want);
  // Element 0: scale 5 - 32 = -27, q = 3 - (hmask[0] = 0x7f, bit 0 set -> 0) = 3: 0.25*-27*3.
  EXPECT_EQ(got[0], -20.25f);
}

// Q4_K/Q5_K: eight 6-bit scales sc[j] and mins mn[j]: j < 4 in the low 6 bits of bytes j and
// j + 4; j >= 4 with their low 4 bits in byte j + 4 (scale low nibble, min high nibble) and
// their top 2 bits in the top bits of bytes j - 4 (scale) and j (min).
void pack_k4_scales(const int* sc, const int* mn, std::uint8_t* out) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      out[j] |= static_cast<std::uint8_t>(sc[j]);
      out[j + 4] |= static_cast<std::uint8_t>(mn[j]);
    } else {
      out[j + 4] = static_cast<std::uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
      out[j - 4] |= static_cast<std::uint8_t>((sc[j] >> 4) << 6);
      out[j] |= static_cast<std::uint8_t>((mn[j] >> 4) << 6);
    }
  }
}
// Element e: chunk c = e / 64 uses qs[32c .. 32c + 31]; the first 32 elements the low nibbles
// (sub-block 2c), the next 32 the high nibbles (sub-block 2c + 1).
int k4_nibble(const std::uint8_t* qs, int e) {
  const int r = e % 64;
  const std::uint8_t byte = qs[32 * (e / 64) + r % 32];
  return r < 32 ? (byte & 0xF) : (byte >> 4);
}

TEST(DequantizeBlock, Q4_K) {
  block_q4_K b{};
  b.d = f16(0.5f);
  b.dmin = f16(0.125f);
  const int sc[8] = {1, 63, 17, 32, 45, 2, 60, 33};
  const int mn[8] = {62, 0, 5, 40, 19, 63, 48, 7};
  pack_k4_scales(sc, mn, b.scales);
  for (int i = 0; i < 128; ++i) b.qs[i] = byte_pattern(i);
  std::vector<float> want(256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32;
    want[e] = 0.5f * static_cast<float>(sc[s]) * static_cast<float>(k4_nibble(b.qs, e)) -
              0.125f * static_cast<float>(mn[s]);
  }
  const auto got = run(DType::Q4_K, b, 256);
  expect_all(got, want);
  // Element 0: qs[0] = 11 low nibble 11, sc 1, min 62: 0.5*11 - 0.125*62 = -2.25.
  EXPECT_EQ(got[0], -2.25f);
}

TEST(DequantizeBlock, Q5_K) {
  block_q5_K b{};
  b.d = f16(0.25f);
  b.dmin = f16(1.0f);
  const int sc[8] = {63, 1, 40, 9, 16, 31, 50, 3};
  const int mn[8] = {0, 63, 21, 36, 11, 58, 4, 27};
  pack_k4_scales(sc, mn, b.scales);
  for (int i = 0; i < 128; ++i) b.qs[i] = byte_pattern(i);
  for (int i = 0; i < 32; ++i) b.qh[i] = byte_pattern(i + 50);
  std::vector<float> want(256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32;
    const int high = (b.qh[e % 32] >> (e / 32)) & 1;  // fifth bit: bit e / 32 of qh[e % 32]
    const int q = k4_nibble(b.qs, e) + 16 * high;
    want[e] = 0.25f * static_cast<float>(sc[s]) * static_cast<float>(q) - 1.0f * static_cast<float>(mn[s]);
  }
  const auto got = run(DType::Q5_K, b, 256);
  expect_all(got, want);
  // Element 0: nibble 11, qh[0] = byte_pattern(50) = 0x45 has bit 0 set: q = 27; 0.25*63*27.
  EXPECT_EQ(got[0], 425.25f);
}

TEST(DequantizeBlock, Q6_K) {
  block_q6_K b{};
  b.d = f16(0.5f);
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<std::int8_t>(s * 17 - 128);
  for (int i = 0; i < 128; ++i) b.ql[i] = byte_pattern(i);
  for (int i = 0; i < 64; ++i) b.qh[i] = byte_pattern(i + 200);
  std::vector<float> want(256);
  for (int e = 0; e < 256; ++e) {
    // Half h = e / 128; within it, group k = (e % 128) / 32 and lane l = e % 32: low 4 bits are
    // nibble k / 2 of ql[64h + 32 * (k % 2) + l], high 2 bits are bits 2k of qh[32h + l].
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const int low = (b.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF;
    const int high = (b.qh[32 * h + l] >> (2 * k)) & 3;
    want[e] = 0.5f * static_cast<float>(b.scales[e / 16]) * static_cast<float>((low | (high << 4)) - 32);
  }
  const auto got = run(DType::Q6_K, b, 256);
  expect_all(got, want);
  // Element 0: ql[0] = 11, qh[0] = byte_pattern(200) = 0xf3 -> bits 0-1 = 3: q = 11 + 48 - 32
  // = 27; scale -128: 0.5 * -128 * 27.
  EXPECT_EQ(got[0], -1728.0f);
}

TEST(DequantizeRow, FloatTypes) {
  const std::uint16_t h[5] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000};
  std::vector<float> out(5);
  dequantize_row(DType::F16, reinterpret_cast<const std::byte*>(h), out.data(), 5);
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 65504.0f, 0x1p-24f, -0.0f}));
  EXPECT_TRUE(std::signbit(out[4]));
  const std::uint16_t bf[3] = {0x3F80, 0xC040, 0x7F80};
  dequantize_row(DType::BF16, reinterpret_cast<const std::byte*>(bf), out.data(), 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -3.0f);
  EXPECT_TRUE(std::isinf(out[2]));
  const float f[2] = {1.25f, -7.0f};
  dequantize_row(DType::F32, reinterpret_cast<const std::byte*>(f), out.data(), 2);
  EXPECT_EQ(out[0], 1.25f);
  EXPECT_EQ(out[1], -7.0f);
}

TEST(DequantizeRow, MultipleBlocksAndUnalignedSource) {
  // Three Q8_0 blocks at an odd address: each block scales its own quants.
  std::vector<std::byte> buf(1 + 3 * sizeof(block_q8_0));
  for (int k = 0; k < 3; ++k) {
    block_q8_0 b{};
    b.d = f16(static_cast<float>(k + 1));
    for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<std::int8_t>(j - k);
    std::memcpy(buf.data() + 1 + k * sizeof(block_q8_0), &b, sizeof b);
  }
  std::vector<float> out(96);
  dequantize_row(DType::Q8_0, buf.data() + 1, out.data(), 96);
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 32; ++j) EXPECT_EQ(out[32 * k + j], static_cast<float>((j - k) * (k + 1)));
  dequantize_row(DType::Q8_0, buf.data(), out.data(), 0);  // n = 0 is a no-op
}

TEST(DequantizeRow, Errors) {
  std::vector<std::byte> src(1024);
  std::vector<float> dst(1024);
  try {
    dequantize_row(DType::Q8_K, src.data(), dst.data(), 256);
    ADD_FAILURE() << "no exception";
  } catch (const tinfer::UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("Q8_K"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dequantize_row(DType::I32, src.data(), dst.data(), 4), tinfer::UnsupportedError);
  EXPECT_THROW(dequantize_row(static_cast<DType>(77), src.data(), dst.data(), 4), tinfer::UnsupportedError);
  EXPECT_THROW(dequantize_row(DType::Q4_0, src.data(), dst.data(), 33), tinfer::InvalidArgument);
  EXPECT_THROW(dequantize_row(DType::Q4_K, src.data(), dst.data(), 128), tinfer::InvalidArgument);
  EXPECT_THROW(dequantize_row(DType::F32, src.data(), dst.data(), -1), tinfer::InvalidArgument);
  EXPECT_THROW(dequantize(DType::Q4_0, std::span(src).first(17), std::span(dst).first(32)), tinfer::InvalidArgument);
  EXPECT_NO_THROW(dequantize(DType::Q4_0, std::span(src).first(18), std::span(dst).first(32)));
  EXPECT_EQ(row_bytes(DType::Q6_K, 512), 420u);
  EXPECT_THROW(row_bytes(DType::F64, std::numeric_limits<std::int64_t>::max()), tinfer::InvalidArgument);
}

// ---- real files ----

std::uint64_t fnv1a(std::span<const float> v) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t i = 0; i < v.size() * sizeof(float); ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::vector<float> dequantize_tensor(const tinfer::io::GgufFile& f, const tinfer::io::GgufTensorInfo& t) {
  std::vector<float> out(t.n_elements);
  dequantize(t.type, f.tensor_data(t), out);
  return out;
}

struct RealCase {
  const char* file;       // under assets/gguf
  const char* reference;  // its F32 original
  // Bound on rms(dequantized - f32) / rms(f32) over each weight matrix. Uniform rounding with
  // step D has rms error D / sqrt(12); with D = 2 * amax / 2^bits for roughly Gaussian blocks
  // this is about 1.1 / 2^bits for 32-weight blocks (less with an offset or 6-bit sub-scales).
  // Bounds are about 1.4x what the files show, far below the ~1.4 a layout or scale error gives.
  double rms_bound;
  // FNV-1a 64 of token_embd.weight dequantized, computed by gguf-py's quants.py
  // (ngxson/llama.cpp 3f545bec, gguf-py/gguf/quants.py dequantize), which our output equals bit
  // for bit on every tensor of every asset file.
  std::uint64_t fnv;
};

const RealCase kRealCases[] = {
    // F16: half an ulp at 2^-11 relative, rms ~2.1e-4 observed.
    {"tiny-llama-F16.gguf", "tiny-llama-f32.gguf", 3e-4, 0x4d6af54567c349d3ull},
    {"tiny-llama-BF16.gguf", "tiny-llama-f32.gguf", 2.5e-3, 0x514e96cf5778a994ull},  // 8-bit mantissa
    {"tiny-llama-Q8_0.gguf", "tiny-llama-f32.gguf", 8e-3, 0x3fd2d3260851ce16ull},
    {"tiny-llama-Q6_K.gguf", "tiny-llama-f32.gguf", 2.5e-2, 0x4ac4c5e528966f98ull},
    {"tiny-llama-Q5_0.gguf", "tiny-llama-f32.gguf", 6e-2, 0xf6ba091dc11866b7ull},
    {"tiny-llama-Q5_1.gguf", "tiny-llama-f32.gguf", 5.5e-2, 0xfa5c00b19f6d3d94ull},
    {"tiny-llama-Q5_K.gguf", "tiny-llama-f32.gguf", 5e-2, 0x2e4f928e7c86d381ull},
    {"tiny-llama-Q4_0.gguf", "tiny-llama-f32.gguf", 0.12, 0x02c51a44b94aba26ull},
    {"tiny-llama-Q4_1.gguf", "tiny-llama-f32.gguf", 0.11, 0x52e2ab33b4ae7d6full},
    {"tiny-llama-Q4_K.gguf", "tiny-llama-f32.gguf", 0.10, 0x63dc10c6cf276848ull},
    {"tiny-llama-Q3_K.gguf", "tiny-llama-f32.gguf", 0.21, 0x70d88e68c79215ccull},
    {"tiny-llama-Q2_K.gguf", "tiny-llama-f32.gguf", 0.42, 0xa6143ed3c6b5fdbbull},
    {"tiny-gpt2-F16.gguf", "tiny-gpt2-f32.gguf", 3e-4, 0x89dc8c94644b8036ull},
    {"tiny-gpt2-Q8_0.gguf", "tiny-gpt2-f32.gguf", 8e-3, 0xd9b5abe92e32f6fbull},
    {"tiny-gpt2-Q6_K.gguf", "tiny-gpt2-f32.gguf", 2.5e-2, 0xa48b297c5f8d709cull},
    {"tiny-gpt2-Q4_0.gguf", "tiny-gpt2-f32.gguf", 0.12, 0xb8d8067a85e6a097ull},
    {"tiny-gpt2-Q4_K.gguf", "tiny-gpt2-f32.gguf", 0.10, 0x6f0cd5c680e8c133ull},
};

void PrintTo(const RealCase& c, std::ostream* os) { *os << c.file; }

class RealFile : public ::testing::TestWithParam<RealCase> {};

TEST_P(RealFile, WithinQuantizationErrorOfF32AndPinnedChecksum) {
  const RealCase& c = GetParam();
  const auto path = tinfer::testing::gguf_asset(c.file);
  const auto ref_path = tinfer::testing::gguf_asset(c.reference);
  TINFER_REQUIRE_FILE(path);
  TINFER_REQUIRE_FILE(ref_path);
  const tinfer::io::GgufFile f(path.string());
  const tinfer::io::GgufFile ref(ref_path.string());

  const auto& emb = f.tensor("token_embd.weight");
  EXPECT_EQ(fnv1a(dequantize_tensor(f, emb)), c.fnv) << "token_embd.weight differs from gguf-py's dequantization";

  int checked = 0;
  for (const auto& t : f.tensors()) {
    if (t.type == DType::F32) continue;
    SCOPED_TRACE(t.name);
    const auto& r = ref.tensor(t.name);
    ASSERT_EQ(r.dims, t.dims);
    const auto got = dequantize_tensor(f, t);
    const auto want = dequantize_tensor(ref, r);
    double err2 = 0, ref2 = 0, worst = 0;
    std::size_t worst_i = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      const double e = static_cast<double>(got[i]) - want[i];
      err2 += e * e;
      ref2 += static_cast<double>(want[i]) * want[i];
      if (std::abs(e) > worst) worst = std::abs(e), worst_i = i;
    }
    const double rel = std::sqrt(err2 / ref2);
    EXPECT_LT(rel, c.rms_bound) << "worst element " << worst_i << ": got " << got[worst_i] << ", f32 "
                                << want[worst_i];
    ++checked;
  }
  EXPECT_GE(checked, 9);
}

INSTANTIATE_TEST_SUITE_P(Assets, RealFile, ::testing::ValuesIn(kRealCases), [](const auto& info) {
  std::string n = info.param.file;
  n = n.substr(0, n.find(".gguf"));
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

}  // namespace
