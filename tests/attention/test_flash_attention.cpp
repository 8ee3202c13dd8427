// Tiled (flash) attention over the KV cache against a naive double-precision reference, for
// many shapes: lengths 1..300 (tile and block non-multiples), head dims 32..128, GQA ratios 1..8,
// sliding windows, every cache type, scalar and SIMD kernels, one and several threads.
//
// The reference reads the cache's own stored (rounded) keys and values back, so it isolates the
// attention arithmetic from the cache type's rounding. Tolerance 2e-5 absolute on outputs of
// magnitude ~1: float accumulation of <= 300 terms of head_dim products, and the SIMD exp's
// ~2e-7 relative error, stay far below it; an off-by-one mask, a wrong head mapping or a missed
// online-softmax rescale moves outputs by 1e-2 or more.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tinfer/attention/decode_attention.hpp"
#include "tinfer/attention/flash_attention.hpp"
#include "tinfer/attention/kv_cache.hpp"

namespace {

using tinfer::KVCache;
using tinfer::KVCacheType;

// Every kernel level (attn_kernels() clamps a level the machine lacks to the best it has).
constexpr tinfer::kernels::Isa kIsas[] = {tinfer::kernels::Isa::Scalar, tinfer::kernels::Isa::Avx2, tinfer::kernels::Isa::Avx512};
// Absolute tolerance on outputs of O(1) (values ~N(0,1), keys ~N(0,2)): f32 dot products of up to
// 128 terms and sums over up to 1300 keys against a double reference, plus the SIMD exp's ~2e-7
// relative error; an indexing or masking bug is off by O(0.1).
constexpr double kTol = 2e-5;

struct Shape {
  int n_heads, n_kv_heads, head_dim;
};

// out[r] for query rows at positions pos[r], over the cache's stored values.
std::vector<double> naive(const KVCache& c, int layer, const std::vector<float>& q, const std::vector<int>& pos, int n_heads,
                          int window) {
  const int hd = c.head_dim(), group = n_heads / c.n_kv_heads();
  const auto kvd = static_cast<std::size_t>(c.kv_dim());
  std::vector<double> out(pos.size() * static_cast<std::size_t>(n_heads * hd), 0.0);
  int max_pos = 0;
  for (int p : pos) max_pos = std::max(max_pos, p);
  std::vector<float> K((static_cast<std::size_t>(max_pos) + 1) * kvd), V(K.size());
  for (int t = 0; t <= max_pos; ++t) {
    c.load_key(layer, t, K.data() + static_cast<std::size_t>(t) * kvd);
    c.load_value(layer, t, V.data() + static_cast<std::size_t>(t) * kvd);
  }
  const auto qd = static_cast<std::size_t>(n_heads * hd);
  for (std::size_t r = 0; r < pos.size(); ++r) {
    const int lo = window > 0 ? std::max(0, pos[r] - window + 1) : 0;
    for (int h = 0; h < n_heads; ++h) {
      const auto ko = static_cast<std::size_t>((h / group) * hd);
      const float* qh = q.data() + r * qd + static_cast<std::size_t>(h * hd);
      std::vector<double> s;
      for (int t = lo; t <= pos[r]; ++t) {
        const float* kt = K.data() + static_cast<std::size_t>(t) * kvd + ko;
        double d = 0;
        for (int i = 0; i < hd; ++i) d += static_cast<double>(qh[i]) * kt[i];
        s.push_back(d / std::sqrt(static_cast<double>(hd)));
      }
      double mx = s[0];
      for (double x : s) mx = std::max(mx, x);
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      double* o = out.data() + r * qd + static_cast<std::size_t>(h * hd);
      for (int t = lo; t <= pos[r]; ++t) {
        const float* vt = V.data() + static_cast<std::size_t>(t) * kvd + ko;
        const double p = s[static_cast<std::size_t>(t - lo)] / sum;
        for (int i = 0; i < hd; ++i) o[i] += p * vt[i];
      }
    }
  }
  return out;
}

std::vector<float> random_vec(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  return x;
}

// Fills positions [0, T) of layer 1 (layer 0 holds other data, so a wrong layer shows).
void fill(KVCache& c, int T, std::mt19937& rng) {
  const auto kvd = static_cast<std::size_t>(c.kv_dim());
  for (int layer = 0; layer < 2; ++layer) {
    for (int t = 0; t < T; ++t) {
      // Large keys make the softmax peaky, so the online rescaling matters.
      const auto k = random_vec(kvd, rng, 2.0f), v = random_vec(kvd, rng);
      c.store_key(layer, t, k.data());
      c.store_value(layer, t, v.data());
    }
  }
  c.set_n_past(T);
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const ::testing::Message& what) {
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  EXPECT_LT(worst, tol) << what.GetString();
}

class FlashShapes : public ::testing::TestWithParam<std::tuple<Shape, KVCacheType>> {};

TEST_P(FlashShapes, PromptMatchesNaiveReference) {
  const auto [shape, type] = GetParam();
  std::mt19937 rng(1234);
  tinfer::ThreadPool pool(3);
  for (int T : {1, 2, 31, 63, 64, 65, 129, 300}) {
    for (int window : {0, 1, 7, 64}) {
      KVCache c(2, T, shape.n_kv_heads, shape.head_dim, type, type);
      fill(c, T, rng);
      const int qd = shape.n_heads * shape.head_dim;
      const auto q = random_vec(static_cast<std::size_t>(T) * static_cast<std::size_t>(qd), rng);
      std::vector<int> pos(static_cast<std::size_t>(T));
      for (int i = 0; i < T; ++i) pos[static_cast<std::size_t>(i)] = i;
      const auto want = naive(c, 1, q, pos, shape.n_heads, window);
      for (auto isa : kIsas) {
        std::vector<float> first;
        for (tinfer::ThreadPool* p : {static_cast<tinfer::ThreadPool*>(nullptr), &pool}) {
          std::vector<float> out(static_cast<std::size_t>(T) * static_cast<std::size_t>(qd), -7.0f);
          tinfer::AttentionJob job{&c, q.data(), qd, pos.data(), T, window, out.data(), qd};
          tinfer::attention(job, 1, shape.n_heads, p, tinfer::attn::attn_kernels(isa));
          expect_close(out, want, kTol,
                       testing::Message() << "T=" << T << " window=" << window << " isa=" << tinfer::kernels::isa_name(isa)
                                          << " threads=" << (p ? 3 : 1));
          if (p == nullptr) first = out;
          else EXPECT_EQ(first, out) << "thread count changed the result, T=" << T << " isa=" << tinfer::kernels::isa_name(isa);
        }
      }
    }
  }
}

// Decode: one query over a long cache takes the key-split path (ranges of kKeySplit positions
// merged afterwards); its result is bit-identical for any thread count.
TEST_P(FlashShapes, DecodeLongCacheSplitsAndIsThreadIndependent) {
  const auto [shape, type] = GetParam();
  std::mt19937 rng(99);
  const int T = 1300;
  KVCache c(2, T, shape.n_kv_heads, shape.head_dim, type, type);
  fill(c, T, rng);
  const int qd = shape.n_heads * shape.head_dim;
  for (int n_pos : {1, 511, 512, 513, 1300}) {
    for (int window : {0, 700}) {
      const auto q = random_vec(static_cast<std::size_t>(qd), rng);
      const auto want = naive(c, 1, q, {n_pos - 1}, shape.n_heads, window);
      std::vector<float> one(static_cast<std::size_t>(qd)), many(static_cast<std::size_t>(qd));
      tinfer::decode_attention(q.data(), c, 1, n_pos, shape.n_heads, one.data(), nullptr, window);
      tinfer::ThreadPool pool(4);
      tinfer::decode_attention(q.data(), c, 1, n_pos, shape.n_heads, many.data(), &pool, window);
      expect_close(one, want, kTol, testing::Message() << "n_pos=" << n_pos << " window=" << window);
      EXPECT_EQ(one, many) << "thread count changed the result, n_pos=" << n_pos;
      // Every ISA's kernels, through the same one-row job decode_attention() builds.
      const int pos = n_pos - 1;
      for (auto isa : kIsas) {
        std::vector<float> out(static_cast<std::size_t>(qd));
        tinfer::AttentionJob job{&c, q.data(), qd, &pos, 1, window, out.data(), qd};
        tinfer::attention(job, 1, shape.n_heads, &pool, tinfer::attn::attn_kernels(isa));
        expect_close(out, want, kTol, testing::Message() << "n_pos=" << n_pos << " window=" << window << " isa=" << tinfer::kernels::isa_name(isa));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FlashShapes,
    ::testing::Values(std::tuple{Shape{4, 4, 32}, KVCacheType::F32},   // GQA 1 (MHA)
                      std::tuple{Shape{4, 2, 64}, KVCacheType::F32},   // GQA 2
                      std::tuple{Shape{8, 2, 128}, KVCacheType::F32},  // GQA 4
                      std::tuple{Shape{8, 1, 64}, KVCacheType::F32},   // GQA 8 (MQA)
                      std::tuple{Shape{6, 3, 48}, KVCacheType::F32},   // head dim not a multiple of 32
                      std::tuple{Shape{4, 2, 64}, KVCacheType::F16},
                      std::tuple{Shape{8, 1, 128}, KVCacheType::F16},
                      std::tuple{Shape{4, 2, 64}, KVCacheType::Q8_0},
                      std::tuple{Shape{16, 2, 32}, KVCacheType::Q8_0},
                      std::tuple{Shape{8, 4, 8}, KVCacheType::Q8_0},   // blocks span heads (stories260K)
                      std::tuple{Shape{4, 2, 20}, KVCacheType::F32},   // head dim not a multiple of 8
                      std::tuple{Shape{4, 2, 20}, KVCacheType::F16},
                      std::tuple{Shape{12, 4, 32}, KVCacheType::F16},  // GQA 3: tiles of 63 queries
                      std::tuple{Shape{32, 4, 64}, KVCacheType::F16},  // TinyLlama: GQA 8, head dim 64
                      std::tuple{Shape{32, 4, 64}, KVCacheType::Q8_0}));

// Several jobs (sessions) of different lengths in one call, as forward_multi() issues them.
TEST(FlashAttention, SeveralJobsInOneCall) {
  std::mt19937 rng(5);
  const Shape s{8, 2, 64};
  const int qd = s.n_heads * s.head_dim;
  std::vector<KVCache> caches;
  std::vector<int> lens = {3, 700, 1, 90};
  for (int T : lens) {
    caches.emplace_back(2, T, s.n_kv_heads, s.head_dim, KVCacheType::Q8_0, KVCacheType::F16);
    fill(caches.back(), T, rng);
  }
  std::vector<std::vector<float>> qs, outs;
  std::vector<std::vector<int>> pos;
  std::vector<tinfer::AttentionJob> jobs;
  for (std::size_t i = 0; i < lens.size(); ++i) {
    const int rows = i == 3 ? 5 : 1;  // the last job: 5 rows (a speculative batch)
    qs.push_back(random_vec(static_cast<std::size_t>(rows * qd), rng));
    outs.emplace_back(static_cast<std::size_t>(rows * qd));
    pos.emplace_back();
    for (int r = 0; r < rows; ++r) pos.back().push_back(lens[i] - rows + r);
  }
  for (std::size_t i = 0; i < lens.size(); ++i) {
    jobs.push_back({&caches[i], qs[i].data(), qd, pos[i].data(), static_cast<int>(pos[i].size()), 0, outs[i].data(), qd});
  }
  tinfer::ThreadPool pool(2);
  tinfer::attention(std::span<const tinfer::AttentionJob>(jobs), 1, s.n_heads, &pool);
  for (std::size_t i = 0; i < lens.size(); ++i) expect_close(outs[i], naive(caches[i], 1, qs[i], pos[i], s.n_heads, 0), kTol, testing::Message() << "job " << i);
}

// Sliding window on a ring cache: only capacity rows exist; position p lives in row p % capacity.
// Decoding token by token up to 4x the ring length equals the naive masked reference over the
// full history.
TEST(FlashAttention, SlidingWindowRingMatchesMaskedReference) {
  std::mt19937 rng(17);
  const Shape s{4, 2, 32};
  const int window = 24, cap = window + 8, T = 4 * cap + 5;
  for (KVCacheType type : {KVCacheType::F32, KVCacheType::Q8_0}) {
    KVCache ring(1, cap, s.n_kv_heads, s.head_dim, type, type, true);
    KVCache full(1, T, s.n_kv_heads, s.head_dim, type, type);
    const int qd = s.n_heads * s.head_dim;
    for (int p = 0; p < T; ++p) {
      const auto k = random_vec(static_cast<std::size_t>(ring.kv_dim()), rng, 2.0f), v = random_vec(static_cast<std::size_t>(ring.kv_dim()), rng);
      ring.store_key(0, p, k.data());
      ring.store_value(0, p, v.data());
      full.store_key(0, p, k.data());
      full.store_value(0, p, v.data());
      ring.set_n_past(p + 1);
      full.set_n_past(p + 1);
      const auto q = random_vec(static_cast<std::size_t>(qd), rng);
      std::vector<float> out(static_cast<std::size_t>(qd));
      tinfer::decode_attention(q.data(), ring, 0, p + 1, s.n_heads, out.data(), nullptr, window);
      expect_close(out, naive(full, 0, q, {p}, s.n_heads, window), kTol, testing::Message() << "pos " << p);
    }
    EXPECT_EQ(ring.oldest_position(), T - cap);
    // Rows of a batch within one ring pass (positions T-8..T-1 attend to windows all still held).
    std::vector<int> pos;
    for (int p = T - 8; p < T; ++p) pos.push_back(p);
    const auto q = random_vec(pos.size() * static_cast<std::size_t>(qd), rng);
    std::vector<float> out(q.size());
    tinfer::AttentionJob job{&ring, q.data(), qd, pos.data(), static_cast<int>(pos.size()), window, out.data(), qd};
    tinfer::attention(job, 0, s.n_heads, nullptr);
    expect_close(out, naive(full, 0, q, pos, s.n_heads, window), kTol, testing::Message() << "ring batch");
  }
}

// The cache types' storage: F16 and Q8_0 round-trip within their precision, and bytes per token.
TEST(KVCache, TypesRoundTripAndSizes) {
  std::mt19937 rng(3);
  KVCache f32(2, 8, 4, 64, KVCacheType::F32, KVCacheType::F32);
  KVCache f16(2, 8, 4, 64, KVCacheType::F16, KVCacheType::F16);
  KVCache q8(2, 8, 4, 64, KVCacheType::Q8_0, KVCacheType::Q8_0);
  // Per position: 2 layers x (K + V) x 256 elements.
  EXPECT_EQ(f32.bytes_per_token(), 2 * 2 * 256 * 4);
  EXPECT_EQ(f16.bytes_per_token(), 2 * 2 * 256 * 2);
  EXPECT_EQ(q8.bytes_per_token(), 2 * 2 * 8 * 34);
  const auto x = random_vec(256, rng);
  std::vector<float> y(256);
  f32.store_key(1, 3, x.data());
  f32.load_key(1, 3, y.data());
  EXPECT_EQ(x, y);
  f16.store_value(1, 3, x.data());
  f16.load_value(1, 3, y.data());
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(y[i], x[i], std::fabs(x[i]) * 1e-3 + 1e-7);  // half: 11-bit mantissa
  q8.store_key(0, 7, x.data());
  q8.load_key(0, 7, y.data());
  for (int b = 0; b < 8; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    // Rounding to the nearest of 255 levels: error at most half a step (plus the f16 scale's).
    for (int i = 0; i < 32; ++i) EXPECT_NEAR(y[b * 32 + i], x[b * 32 + i], amax / 127 * 0.502) << b << " " << i;
  }
  EXPECT_THROW(KVCache(1, 8, 1, 48, KVCacheType::Q8_0, KVCacheType::F32), tinfer::UnsupportedError);
  EXPECT_EQ(tinfer::parse_kv_cache_type("q8_0"), KVCacheType::Q8_0);
  EXPECT_THROW(tinfer::parse_kv_cache_type("q4_0"), tinfer::InvalidArgument);
}

}  // namespace

namespace {

// The pair-layout kernels (16-lane decode tiles) against their scalar twins on one block:
// 8 queries x 61 keys (a tail after the 8-key register tile), head dim 64 and 6 (a tail after
// the 8-pair tile). Sums of up to 64 products of N(0,1) values in a different order: 1e-5
// relative to the sum of |products| bounds the float rounding difference.
TEST(AttentionKernels, PairKernelsMatchScalarTwins) {
  // Not in the dispatch table (its order differs from the other ISAs'; see make_attn_kernels),
  // so called directly.
  if (!tinfer::kernels::cpu_features().avx512) GTEST_SKIP() << "no AVX-512 on this machine";
  struct {
    tinfer::attn::ScoresPairFn scores_pair = tinfer::attn::avx512::scores_pair;
    tinfer::attn::AccumulatePairFn accumulate_pair = tinfer::attn::avx512::accumulate_pair;
  } k;
  std::mt19937 rng(8);
  for (int hd : {64, 6}) {
    const int n = 61;
    const std::int64_t ks = hd + 3;  // rows wider than the head, as in a cache row
    const auto K = random_vec(static_cast<std::size_t>(n * ks), rng), Q2 = random_vec(static_cast<std::size_t>(hd * 8), rng);
    std::vector<float> s_simd(static_cast<std::size_t>(n * 16)), s_ref(s_simd.size());
    k.scores_pair(K.data(), ks, n, Q2.data(), hd, s_simd.data());
    tinfer::attn::scalar::scores_pair(K.data(), ks, n, Q2.data(), hd, s_ref.data());
    for (std::size_t i = 0; i < s_ref.size(); ++i) {
      EXPECT_NEAR(s_simd[i], s_ref[i], 1e-5 * (std::fabs(s_ref[i]) + hd)) << "score " << i << " hd " << hd;
    }
    for (int t = 0; t < n; ++t) {
      for (int j = 0; j < 8; ++j) EXPECT_EQ(s_simd[static_cast<std::size_t>(t * 16 + 2 * j)], s_simd[static_cast<std::size_t>(t * 16 + 2 * j + 1)]);
    }
    const auto P2 = random_vec(static_cast<std::size_t>(n * 16), rng);
    auto o_simd = random_vec(static_cast<std::size_t>(hd * 8), rng);
    auto o_ref = o_simd;
    k.accumulate_pair(K.data(), ks, n, P2.data(), hd, o_simd.data());
    tinfer::attn::scalar::accumulate_pair(K.data(), ks, n, P2.data(), hd, o_ref.data());
    for (std::size_t i = 0; i < o_ref.size(); ++i) EXPECT_NEAR(o_simd[i], o_ref[i], 1e-5 * (std::fabs(o_ref[i]) + n)) << "acc " << i;
  }
}

}  // namespace
