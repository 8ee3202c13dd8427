// tinfer/kernels/cpu_features.hpp: which instruction sets this CPU and OS support, detected
// once with CPUID and XGETBV, and the ISA level kernels dispatch on.
//
// CPUID says what the CPU implements; XGETBV says whether the OS saves the AVX (YMM) and
// AVX-512 (opmask, ZMM) register state on context switches. Both must agree before a path is
// used. The environment variable TINFER_ISA=scalar|avx2|avx512 lowers the chosen level (for
// tests and comparisons); it never raises it above what the machine supports.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string_view>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define TINFER_X86_64 1
#endif

namespace tinfer::kernels {

struct CpuFeatures {
  bool avx2 = false;        // AVX2 + FMA + F16C, with OS support for YMM state
  bool avx512 = false;      // AVX-512 F/BW/VL/DQ, with OS support for ZMM and opmask state
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx_vnni = false;
};

/// Instruction-set levels, ordered: a higher level implies the lower ones.
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

constexpr std::string_view isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "unknown";
}

namespace detail {

inline CpuFeatures detect_cpu_features() noexcept {
  CpuFeatures f;
#ifdef TINFER_X86_64
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, a, b, c, d);
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
  if (!osxsave) return f;
  std::uint32_t xcr0_lo = 0, xcr0_hi = 0;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_state = (xcr0_lo & 0x6) == 0x6;     // SSE and AVX state
  const bool zmm_state = (xcr0_lo & 0xe6) == 0xe6;   // plus opmask, ZMM_Hi256, Hi16_ZMM
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = (b >> 5) & 1;
  const bool avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
  const bool avx512vnni = (c >> 11) & 1;
  f.avx2 = ymm_state && avx && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
  f.avx512_vnni = f.avx512 && avx512vnni;
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  f.avx512_bf16 = f.avx512 && ((a1 >> 5) & 1);
  f.avx_vnni = f.avx2 && ((a1 >> 4) & 1);
#endif
  return f;
}

inline Isa best_isa(const CpuFeatures& f) noexcept {
  if (f.avx512) return Isa::Avx512;
  if (f.avx2) return Isa::Avx2;
  return Isa::Scalar;
}

/// The level TINFER_ISA asks for, or the best the machine has when unset/unknown.
inline Isa choose_isa(const CpuFeatures& f) noexcept {
  const Isa best = best_isa(f);
  const char* env = std::getenv("TINFER_ISA");
  if (env == nullptr) return best;
  const std::string_view want(env);
  Isa asked = best;
  if (want == "scalar") asked = Isa::Scalar;
  else if (want == "avx2") asked = Isa::Avx2;
  else if (want == "avx512") asked = Isa::Avx512;
  return static_cast<int>(asked) < static_cast<int>(best) ? asked : best;
}

}  // namespace detail

/// The features of this machine (detected on first use).
inline const CpuFeatures& cpu_features() noexcept {
  static const CpuFeatures f = detail::detect_cpu_features();
  return f;
}

/// The best level this machine supports.
inline Isa max_supported_isa() noexcept { return detail::best_isa(cpu_features()); }

/// The level kernels use by default: the best supported, lowered by TINFER_ISA (read once).
inline Isa default_isa() noexcept {
  static const Isa isa = detail::choose_isa(cpu_features());
  return isa;
}

}  // namespace tinfer::kernels
