// tinfer/quant/quantize.hpp: round-to-nearest quantizers from float32 into GGUF's block types,
// bit-exact with ggml's reference quantization (quantize_row_*_ref, i.e. llama-quantize without
// an importance matrix), plus F16/BF16 encoding.
//
// Every block type has a traits struct BlockCodec<T> with three steps, so GPTQ (quant/gptq.hpp)
// can reuse the format's own scale search and packing:
//   quantize(x, b, L): the reference algorithm: fills b's scales and L, the logical quant of each
//                      weight (value space, e.g. -8..7 for Q4_0, 0..15 for Q4_K);
//   grid(b, g):        for every weight, the grid its scales allow: value = a * q + c for an
//                      integer q in [qmin, qmax], written in the same float operations as the
//                      dequantizer, so the stored block reproduces such a value exactly;
//   pack(L, b):        writes logical quants into b's bit fields (scales untouched).
//
// Bit-exactness needs ggml's float evaluation order: every expression below keeps the
// reference's operand order and float (not double) intermediates, and tinfer builds without
// -ffast-math and without FMA contraction in this scalar code.
#pragma once

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "tinfer/core/dtype.hpp"
#include "tinfer/core/error.hpp"
#include "tinfer/core/float16.hpp"
#include "tinfer/core/quant_blocks.hpp"
#include "tinfer/core/thread_pool.hpp"
#include "tinfer/kernels/dequantize.hpp"

namespace tinfer::quant {

namespace ref {

inline constexpr float kGroupMaxEps = 1e-15f;

/// ggml's nearest_int: rounds to nearest, ties to even, through the float adder (|x| < 2^22).
inline int nearest_int(float fval) noexcept {
  const float val = fval + 12582912.f;
  const auto i = std::bit_cast<std::int32_t>(val);
  return (i & 0x007fffff) - 0x00400000;
}

inline float fp16_round(float x) noexcept { return f16::to_float(f16::from_float(x)); }

/// Symmetric search of the best scale for n values onto [-nmax, nmax - 1] (ggml make_qx_quants
/// with rmse_type 1 and no importance weights). L receives q + nmax.
inline float make_qx_quants(int n, int nmax, const float* x, std::int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<std::int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<std::int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

/// Q3_K's per-16 scale search with iterative refinement (ggml make_q3_quants, do_rmse).
/// L receives q + nmax.
inline float make_q3_quants(int n, int nmax, const float* x, std::int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<std::int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * static_cast<float>(L[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * static_cast<float>(L[i]) * static_cast<float>(L[i]);
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = std::max(-nmax, std::min(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * static_cast<float>(new_l);
          sl2 += w * static_cast<float>(new_l) * static_cast<float>(new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<std::int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/// Asymmetric (scale, min) search on [0, nmax] with weighted error (ggml make_qkx2_quants).
/// Returns the scale; *the_min receives -min (>= 0).
inline float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, std::uint8_t* L, float* the_min,
                              std::uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<std::uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<std::uint8_t>(l);
      const float w = weights[i];
      const float fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

}  // namespace ref

/// The grid of one weight: representable values a * q + c for integer q in [qmin, qmax].
struct GridPoint {
  float a = 0, c = 0;
  int qmin = 0, qmax = 0;
  /// The value for quant q, in the dequantizer's float operations.
  float value(int q) const noexcept { return a * static_cast<float>(q) + c; }
  /// The quant in [qmin, qmax] whose value is nearest to w (the smaller q on a tie).
  int nearest(float w) const noexcept {
    if (a == 0.0f) return std::clamp(0, qmin, qmax);
    const double t = (static_cast<double>(w) - c) / a;
    int q0 = static_cast<int>(std::clamp(std::nearbyint(t), static_cast<double>(qmin), static_cast<double>(qmax)));
    int best = q0;
    float best_err = std::fabs(value(q0) - w);
    for (int q = std::max(qmin, q0 - 1); q <= std::min(qmax, q0 + 1); ++q) {
      const float e = std::fabs(value(q) - w);
      if (e < best_err) {
        best_err = e;
        best = q;
      }
    }
    return best;
  }
};

template <DType T>
struct BlockCodec;

// ---- legacy 32-weight blocks ----

template <>
struct BlockCodec<DType::Q4_0> {
  using Block = block_q4_0;
  static constexpr int kN = kQK;
  static void quantize(const float* x, Block& b, int* L) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kN; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f16(d);
    for (int j = 0; j < kN; ++j) L[j] = std::min(15, static_cast<int>(static_cast<std::int8_t>(x[j] * id + 8.5f))) - 8;
  }
  static void grid(const Block& b, GridPoint* g) {
    for (int j = 0; j < kN; ++j) g[j] = {b.d.to_float(), 0.0f, -8, 7};
  }
  static void pack(const int* L, Block& b) {
    for (int j = 0; j < kN / 2; ++j) b.qs[j] = static_cast<std::uint8_t>((L[j] + 8) | ((L[j + kN / 2] + 8) << 4));
  }
};

template <>
struct BlockCodec<DType::Q4_1> {
  using Block = block_q4_1;
  static constexpr int kN = kQK;
  static void quantize(const float* x, Block& b, int* L) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < kN; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f16(d);
    b.m = f16(min);
    for (int j = 0; j < kN; ++j) L[j] = std::min(15, static_cast<int>(static_cast<std::int8_t>((x[j] - min) * id + 0.5f)));
  }
  static void grid(const Block& b, GridPoint* g) {
    for (int j = 0; j < kN; ++j) g[j] = {b.d.to_float(), b.m.to_float(), 0, 15};
  }
  static void pack(const int* L, Block& b) {
    for (int j = 0; j < kN / 2; ++j) b.qs[j] = static_cast<std::uint8_t>(L[j] | (L[j + kN / 2] << 4));
  }
};

namespace detail {
// Q5_0/Q5_1: low nibbles in qs, fifth bits in qh (bit j for weight j), from unsigned L.
inline void pack_q5(const int* U, std::uint8_t* qs, std::uint8_t* qh_bytes) {
  std::uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    qs[j] = static_cast<std::uint8_t>((U[j] & 0x0F) | ((U[j + kQK / 2] & 0x0F) << 4));
    qh |= static_cast<std::uint32_t>((U[j] & 0x10) >> 4) << j;
    qh |= static_cast<std::uint32_t>((U[j + kQK / 2] & 0x10) >> 4) << (j + kQK / 2);
  }
  std::memcpy(qh_bytes, &qh, 4);
}
}  // namespace detail

template <>
struct BlockCodec<DType::Q5_0> {
  using Block = block_q5_0;
  static constexpr int kN = kQK;
  static void quantize(const float* x, Block& b, int* L) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kN; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f16(d);
    for (int j = 0; j < kN; ++j) L[j] = std::min(31, static_cast<int>(static_cast<std::int8_t>(x[j] * id + 16.5f))) - 16;
  }
  static void grid(const Block& b, GridPoint* g) {
    for (int j = 0; j < kN; ++j) g[j] = {b.d.to_float(), 0.0f, -16, 15};
  }
  static void pack(const int* L, Block& b) {
    int U[kN];
    for (int j = 0; j < kN; ++j) U[j] = L[j] + 16;
    detail::pack_q5(U, b.qs, b.qh);
  }
};

template <>
struct BlockCodec<DType::Q5_1> {
  using Block = block_q5_1;
  static constexpr int kN = kQK;
  static void quantize(const float* x, Block& b, int* L) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < kN; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 31;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f16(d);
    b.m = f16(min);
    // The reference converts straight to uint8 (no clamp); bits above the fifth are dropped.
    for (int j = 0; j < kN; ++j) L[j] = static_cast<std::uint8_t>((x[j] - min) * id + 0.5f) & 31;
  }
  static void grid(const Block& b, GridPoint* g) {
    for (int j = 0; j < kN; ++j) g[j] = {b.d.to_float(), b.m.to_float(), 0, 31};
  }
  static void pack(const int* L, Block& b) { detail::pack_q5(L, b.qs, b.qh); }
};

template <>
struct BlockCodec<DType::Q8_0> {
  using Block = block_q8_0;
  static constexpr int kN = kQK;
  static void quantize(const float* x, Block& b, int* L) {
    float amax = 0.0f;
    for (int j = 0; j < kN; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = f16(d);
    for (int j = 0; j < kN; ++j) L[j] = static_cast<std::int8_t>(std::round(x[j] * id));
  }
  static void grid(const Block& b, GridPoint* g) {
    for (int j = 0; j < kN; ++j) g[j] = {b.d.to_float(), 0.0f, -128, 127};
  }
  static void pack(const int* L, Block& b) {
    for (int j = 0; j < kN; ++j) b.qs[j] = static_cast<std::int8_t>(L[j]);
  }
};

// ---- K-quants (256-weight super-blocks) ----

namespace detail {
// Q2_K/Q3_K: byte l of each 32-byte half holds weights l, l+32, l+64, l+96 of that half.
inline void pack_2bit(const int* U, std::uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<std::uint8_t>(U[j + l] | (U[j + l + 32] << 2) | (U[j + l + 64] << 4) | (U[j + l + 96] << 6));
}
// Q4_K/Q5_K: the 6-bit scale/min pair of sub-block j.
inline void put_scale_min_k4(int j, std::uint8_t ls, std::uint8_t lm, std::uint8_t* s) {
  if (j < 4) {
    s[j] = ls;
    s[j + 4] = lm;
  } else {
    s[j + 4] = static_cast<std::uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
    s[j - 4] = static_cast<std::uint8_t>(s[j - 4] | ((ls >> 4) << 6));
    s[j] = static_cast<std::uint8_t>(s[j] | ((lm >> 4) << 6));
  }
}
// Q4_K/Q5_K: the reference's scale search for 8 sub-blocks of 32, then quants from the
// rounded scales. nmax 15 or 31.
inline void quantize_qkx_32(const float* x, f16& d_out, f16& dmin_out, std::uint8_t* scales, int* L, int nmax, float rmin,
                            float rdelta, int nstep) {
  std::uint8_t Lu[kQK_K], Laux[32];
  float weights[32], mins[kQK_K / 32], sc[kQK_K / 32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    sc[j] = ref::make_qkx2_quants(32, nmax, x + 32 * j, weights, Lu + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, false);
    if (sc[j] > max_scale) max_scale = sc[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::memset(scales, 0, kKScaleSize);
  for (int j = 0; j < kQK_K / 32; ++j) {
    std::uint8_t ls = static_cast<std::uint8_t>(ref::nearest_int(inv_scale * sc[j]));
    std::uint8_t lm = static_cast<std::uint8_t>(ref::nearest_int(inv_min * mins[j]));
    ls = std::min<std::uint8_t>(63, ls);
    lm = std::min<std::uint8_t>(63, lm);
    put_scale_min_k4(j, ls, lm, scales);
  }
  d_out = f16(max_scale / 63.f);
  dmin_out = f16(max_min / 63.f);
  for (int j = 0; j < kQK_K / 32; ++j) {
    std::uint8_t s, m;
    scale_min_k4(j, scales, s, m);
    const float d = d_out.to_float() * static_cast<float>(s);
    if (d == 0.0f) continue;
    const float dm = dmin_out.to_float() * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = ref::nearest_int((x[32 * j + ii] + dm) / d);
      Lu[32 * j + ii] = static_cast<std::uint8_t>(std::max(0, std::min(nmax, l)));
    }
  }
  for (int i = 0; i < kQK_K; ++i) L[i] = Lu[i];
}
inline void grid_qkx_32(f16 d, f16 dmin, const std::uint8_t* scales, int nmax, GridPoint* g) {
  for (int j = 0; j < kQK_K / 32; ++j) {
    std::uint8_t s, m;
    scale_min_k4(j, scales, s, m);
    const float dl = d.to_float() * static_cast<float>(s);
    const float ml = dmin.to_float() * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) g[32 * j + l] = {dl, -ml, 0, nmax};
  }
}
}  // namespace detail

template <>
struct BlockCodec<DType::Q2_K> {
  using Block = block_q2_K;
  static constexpr int kN = kQK_K;
  static void quantize(const float* x, Block& b, int* L) {
    std::uint8_t Lu[kQK_K], Laux[16];
    float weights[16], mins[kQK_K / 16], scales[kQK_K / 16];
    const float q4scale = 15.f;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = ref::make_qkx2_quants(16, 3, x + 16 * j, weights, Lu + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) b.scales[j] = static_cast<std::uint8_t>(ref::nearest_int(iscale * scales[j]));
      b.d = f16(max_scale / q4scale);
    } else {
      for (int j = 0; j < kQK_K / 16; ++j) b.scales[j] = 0;
      b.d = f16(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < kQK_K / 16; ++j) {
        const int l = ref::nearest_int(iscale * mins[j]);
        b.scales[j] = static_cast<std::uint8_t>(b.scales[j] | (l << 4));
      }
      b.dmin = f16(max_min / q4scale);
    } else {
      b.dmin = f16(0.f);
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = b.d.to_float() * static_cast<float>(b.scales[j] & 0xF);
      if (d == 0.0f) continue;
      const float dm = b.dmin.to_float() * static_cast<float>(b.scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = ref::nearest_int((x[16 * j + ii] + dm) / d);
        Lu[16 * j + ii] = static_cast<std::uint8_t>(std::max(0, std::min(3, l)));
      }
    }
    for (int i = 0; i < kQK_K; ++i) L[i] = Lu[i];
  }
  static void grid(const Block& b, GridPoint* g) {
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float dl = b.d.to_float() * static_cast<float>(b.scales[j] & 0xF);
      const float ml = b.dmin.to_float() * static_cast<float>(b.scales[j] >> 4);
      for (int l = 0; l < 16; ++l) g[16 * j + l] = {dl, -ml, 0, 3};
    }
  }
  static void pack(const int* L, Block& b) { detail::pack_2bit(L, b.qs); }
};

template <>
struct BlockCodec<DType::Q3_K> {
  using Block = block_q3_K;
  static constexpr int kN = kQK_K;
  static void quantize(const float* x, Block& b, int* L) {
    std::int8_t Ls[kQK_K];
    float scales[kQK_K / 16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      scales[j] = ref::make_q3_quants(16, 4, x + 16 * j, Ls + 16 * j);
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }
    std::memset(b.scales, 0, 12);
    if (max_scale != 0.0f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) {
        std::int8_t l = static_cast<std::int8_t>(ref::nearest_int(iscale * scales[j]));
        l = static_cast<std::int8_t>(std::max(-32, std::min(31, static_cast<int>(l))) + 32);
        if (j < 8) {
          b.scales[j] = static_cast<std::uint8_t>(l & 0xF);
        } else {
          b.scales[j - 8] = static_cast<std::uint8_t>(b.scales[j - 8] | ((l & 0xF) << 4));
        }
        l = static_cast<std::int8_t>(l >> 4);
        b.scales[j % 4 + 8] = static_cast<std::uint8_t>(b.scales[j % 4 + 8] | (l << (2 * (j / 4))));
      }
      b.d = f16(1 / iscale);
    } else {
      b.d = f16(0.f);
    }
    int sc[16];
    detail::unpack_q3_k_scales(b.scales, sc);
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = b.d.to_float() * static_cast<float>(sc[j]);
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = ref::nearest_int(x[16 * j + ii] / d);
        Ls[16 * j + ii] = static_cast<std::int8_t>(std::max(-4, std::min(3, l)) + 4);
      }
    }
    for (int i = 0; i < kQK_K; ++i) L[i] = Ls[i] - 4;
  }
  static void grid(const Block& b, GridPoint* g) {
    int sc[16];
    detail::unpack_q3_k_scales(b.scales, sc);
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float dl = b.d.to_float() * static_cast<float>(sc[j]);
      for (int l = 0; l < 16; ++l) g[16 * j + l] = {dl, 0.0f, -4, 3};
    }
  }
  /// GPTQ's sub-block refit (quant/gptq.hpp): with the block's d kept, re-chooses the 6-bit scale
  /// of sub-block j (16 weights) for the current weights x, minimizing sum w * (x - value)^2 over
  /// the 64 scale codes, and updates those weights' grid g[0..16).
  static constexpr int kSub = 16;
  static void refit_sub(const float* x, const double* w, Block& b, int j, GridPoint* g) {
    const float d = b.d.to_float();
    if (d == 0.0f) return;
    int best = 0;
    double best_err = -1;
    for (int l = -32; l <= 31; ++l) {
      const GridPoint gp{d * static_cast<float>(l), 0.0f, -4, 3};
      double e = 0;
      for (int i = 0; i < 16; ++i) {
        const double r = static_cast<double>(x[i]) - gp.value(gp.nearest(x[i]));
        e += w[i] * r * r;
      }
      if (best_err < 0 || e < best_err) {
        best_err = e;
        best = l;
      }
    }
    const int u = best + 32;  // stored unsigned, as unpack_q3_k_scales reads it
    const int lo_shift = j < 8 ? 0 : 4;
    b.scales[j % 8] = static_cast<std::uint8_t>((b.scales[j % 8] & ~(0xF << lo_shift)) | ((u & 0xF) << lo_shift));
    b.scales[8 + j % 4] = static_cast<std::uint8_t>((b.scales[8 + j % 4] & ~(3 << (2 * (j / 4)))) | ((u >> 4) << (2 * (j / 4))));
    for (int i = 0; i < 16; ++i) g[i] = {d * static_cast<float>(best), 0.0f, -4, 3};
  }
  static void pack(const int* L, Block& b) {
    int U[kQK_K];
    std::memset(b.hmask, 0, sizeof b.hmask);
    // High bit of weight j goes to bit j / 32 of hmask[j % 32].
    for (int j = 0; j < kQK_K; ++j) {
      U[j] = L[j] + 4;
      if (U[j] > 3) {
        b.hmask[j % 32] = static_cast<std::uint8_t>(b.hmask[j % 32] | (1u << (j / 32)));
        U[j] -= 4;
      }
    }
    detail::pack_2bit(U, b.qs);
  }
};

template <>
struct BlockCodec<DType::Q4_K> {
  using Block = block_q4_K;
  static constexpr int kN = kQK_K;
  static void quantize(const float* x, Block& b, int* L) {
    detail::quantize_qkx_32(x, b.d, b.dmin, b.scales, L, 15, -1.f, 0.1f, 20);
  }
  static void grid(const Block& b, GridPoint* g) { detail::grid_qkx_32(b.d, b.dmin, b.scales, 15, g); }
  static void pack(const int* L, Block& b) {
    std::uint8_t* q = b.qs;
    for (int j = 0; j < kQK_K; j += 64) {
      for (int l = 0; l < 32; ++l) q[l] = static_cast<std::uint8_t>(L[j + l] | (L[j + l + 32] << 4));
      q += 32;
    }
  }
};

template <>
struct BlockCodec<DType::Q5_K> {
  using Block = block_q5_K;
  static constexpr int kN = kQK_K;
  static void quantize(const float* x, Block& b, int* L) {
    detail::quantize_qkx_32(x, b.d, b.dmin, b.scales, L, 31, -0.5f, 0.1f, 15);
  }
  static void grid(const Block& b, GridPoint* g) { detail::grid_qkx_32(b.d, b.dmin, b.scales, 31, g); }
  static void pack(const int* L, Block& b) {
    std::memset(b.qh, 0, sizeof b.qh);
    std::uint8_t* ql = b.qs;
    std::uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < kQK_K; n += 64) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j], l2 = L[n + j + 32];
        if (l1 > 15) {
          l1 -= 16;
          b.qh[j] = static_cast<std::uint8_t>(b.qh[j] | m1);
        }
        if (l2 > 15) {
          l2 -= 16;
          b.qh[j] = static_cast<std::uint8_t>(b.qh[j] | m2);
        }
        ql[j] = static_cast<std::uint8_t>(l1 | (l2 << 4));
      }
      m1 = static_cast<std::uint8_t>(m1 << 2);
      m2 = static_cast<std::uint8_t>(m2 << 2);
      ql += 32;
    }
  }
};

template <>
struct BlockCodec<DType::Q6_K> {
  using Block = block_q6_K;
  static constexpr int kN = kQK_K;
  static void quantize(const float* x, Block& b, int* L) {
    std::int8_t Ls[kQK_K];
    float scales[kQK_K / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < kQK_K / 16; ++ib) {
      const float scale = ref::make_qx_quants(16, 32, x + 16 * ib, Ls + 16 * ib);
      scales[ib] = scale;
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    if (max_abs_scale < ref::kGroupMaxEps) {
      b = Block{};  // an all-zero block; the quants below pack to zero bytes
      for (int i = 0; i < kQK_K; ++i) L[i] = -32;
      return;
    }
    const float iscale = -128.f / max_scale;
    b.d = f16(1 / iscale);
    for (int ib = 0; ib < kQK_K / 16; ++ib) b.scales[ib] = static_cast<std::int8_t>(std::min(127, ref::nearest_int(iscale * scales[ib])));
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = b.d.to_float() * static_cast<float>(b.scales[j]);
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = ref::nearest_int(x[16 * j + ii] / d);
        Ls[16 * j + ii] = static_cast<std::int8_t>(std::max(-32, std::min(31, l)) + 32);
      }
    }
    for (int i = 0; i < kQK_K; ++i) L[i] = Ls[i] - 32;
  }
  static void grid(const Block& b, GridPoint* g) {
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float dl = b.d.to_float() * static_cast<float>(b.scales[j]);
      for (int l = 0; l < 16; ++l) g[16 * j + l] = {dl, 0.0f, -32, 31};
    }
  }
  static void pack(const int* L, Block& b) {
    std::uint8_t* ql = b.ql;
    std::uint8_t* qh = b.qh;
    for (int j = 0; j < kQK_K; j += 128) {
      for (int l = 0; l < 32; ++l) {
        const int u1 = L[j + l] + 32, u2 = L[j + l + 32] + 32, u3 = L[j + l + 64] + 32, u4 = L[j + l + 96] + 32;
        ql[l] = static_cast<std::uint8_t>((u1 & 0xF) | ((u3 & 0xF) << 4));
        ql[l + 32] = static_cast<std::uint8_t>((u2 & 0xF) | ((u4 & 0xF) << 4));
        qh[l] = static_cast<std::uint8_t>((u1 >> 4) | ((u2 >> 4) << 2) | ((u3 >> 4) << 4) | ((u4 >> 4) << 6));
      }
      ql += 64;
      qh += 32;
    }
  }
};

/// True for the types quantize_row() writes: F32, F16, BF16 and the ten block types.
constexpr bool can_quantize_to(DType t) noexcept {
  switch (t) {
    case DType::F32: case DType::F16: case DType::BF16:
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

/// Calls f(BlockCodec<T>{}) for block type `type`; throws UnsupportedError for others.
template <class F>
decltype(auto) visit_codec(DType type, F&& f) {
  switch (type) {
    case DType::Q4_0: return f(BlockCodec<DType::Q4_0>{});
    case DType::Q4_1: return f(BlockCodec<DType::Q4_1>{});
    case DType::Q5_0: return f(BlockCodec<DType::Q5_0>{});
    case DType::Q5_1: return f(BlockCodec<DType::Q5_1>{});
    case DType::Q8_0: return f(BlockCodec<DType::Q8_0>{});
    case DType::Q2_K: return f(BlockCodec<DType::Q2_K>{});
    case DType::Q3_K: return f(BlockCodec<DType::Q3_K>{});
    case DType::Q4_K: return f(BlockCodec<DType::Q4_K>{});
    case DType::Q5_K: return f(BlockCodec<DType::Q5_K>{});
    case DType::Q6_K: return f(BlockCodec<DType::Q6_K>{});
    default: break;
  }
  throw UnsupportedError(tinfer::detail::str_cat("quantize: type ", dtype_name(type), " is not a block type tinfer quantizes"));
}

/// Encodes `n` floats as `type` into `dst` (row_bytes(type, n) bytes, any alignment), exactly
/// as ggml's reference quantization does. Throws UnsupportedError for a type outside
/// can_quantize_to() and InvalidArgument when n is not a multiple of the block size.
inline void quantize_row(DType type, const float* x, std::byte* dst, std::int64_t n) {
  if (!can_quantize_to(type)) {
    throw UnsupportedError(tinfer::detail::str_cat("quantize: cannot write type ", dtype_name(type),
                                                   " (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, "
                                                   "Q4_K, Q5_K, Q6_K)"));
  }
  const std::size_t bytes = row_bytes(type, n);
  if (type == DType::F32) {
    if (n > 0) std::memcpy(dst, x, bytes);
    return;
  }
  if (type == DType::F16 || type == DType::BF16) {
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint16_t h = type == DType::F16 ? f16::from_float(x[i]) : bf16::from_float(x[i]);
      std::memcpy(dst + 2 * i, &h, 2);
    }
    return;
  }
  visit_codec(type, [&](auto codec) {
    using C = decltype(codec);
    using B = typename C::Block;
    int L[C::kN];
    for (std::int64_t i = 0; i < n / C::kN; ++i) {
      B b{};
      C::quantize(x + i * C::kN, b, L);
      C::pack(L, b);
      std::memcpy(dst + i * static_cast<std::int64_t>(sizeof(B)), &b, sizeof b);
    }
  });
}

/// Quantizes a row-major (rows, cols) float matrix into `type`, rows split across `pool`
/// (nullptr: this thread). The result does not depend on the thread count.
inline std::vector<std::byte> quantize_matrix(DType type, std::span<const float> x, std::int64_t rows, std::int64_t cols,
                                              ThreadPool* pool = nullptr) {
  if (rows < 0 || cols < 0 || static_cast<std::uint64_t>(rows) * static_cast<std::uint64_t>(cols) != x.size()) {
    throw InvalidArgument(tinfer::detail::str_cat("quantize: ", x.size(), " floats do not form a (", rows, ", ", cols, ") matrix"));
  }
  const std::size_t rb = row_bytes(type, cols);
  if (!can_quantize_to(type)) quantize_row(type, x.data(), nullptr, cols);  // throws the standard message
  std::vector<std::byte> out(rb * static_cast<std::size_t>(rows));
  auto body = [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) quantize_row(type, x.data() + r * cols, out.data() + static_cast<std::size_t>(r) * rb, cols);
  };
  if (pool != nullptr && rows > 1) {
    pool->parallel_for(rows, body, 1);
  } else {
    body(0, rows);
  }
  return out;
}

}  // namespace tinfer::quant
