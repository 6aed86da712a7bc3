// The x86 instruction sets this kernel level's intrinsics code may use, and their intrinsics. Kernel code
// tests these macros, never the compiler's __AVX512...__ ones, so a level's emulated twin takes exactly the
// code paths of the level itself:
//   TESSERA_X86_AVX2    AVX2 + FMA + F16C
//   TESSERA_X86_AVX512  AVX-512 F, BW, VL, DQ, VNNI (the avx512 level's set; BF16 is not used by these kernels)
// On a real level they follow the compiler flags. On an emulated twin (CMakeLists.txt compiles it with the
// avx2 flags and TESSERA_CPU_EMULATE_<LEVEL>) the AVX-512 intrinsics are SIMDe's: with its native aliases
// `_mm512_dpbusd_epi32` is simde_mm512_dpbusd_epi32, a portable implementation with the instruction's exact
// results. An intrinsic SIMDe lacks then fails to compile there ("target specific option mismatch"), so the
// twin cannot silently differ from the level; the few the kernels need that SIMDe 0.7.4 lacks are defined
// below from ones it has, with the same results.
#pragma once
#include "backends/cpu/kernel_level.h"

#if defined(__x86_64__) || defined(__i386__)
// GCC 12 reports the AVX-512 intrinsics' deliberately undefined pass-through operands (and SIMDe's
// deliberately undefined lanes) as uninitialized: a known false positive, as in cpu_simd.h.
#if defined(__GNUC__) && !defined(__clang__) && (defined(__AVX512F__) || defined(TESSERA_CPU_EMULATED))
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define TESSERA_X86_AVX2 1
#endif

#if defined(TESSERA_CPU_EMULATE_AVX512) || defined(TESSERA_CPU_EMULATE_AMX)
#if !TESSERA_X86_AVX2
#error "an emulated kernel level is built on the avx2 level's flags"
#endif
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define TESSERA_X86_AVX512 1
#define TESSERA_X86_EMULATED 1

// Intrinsics SIMDe 0.7.4 does not have, as exact equivalents over the 256-bit halves (real AVX2 here).
namespace tessera::cpu::TESSERA_CPU_LEVEL::emu {
inline __m256i lo256(__m512i v) { return _mm512_castsi512_si256(v); }
inline __m256i hi256(__m512i v) { return _mm512_extracti64x4_epi64(v, 1); }
inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
inline __m512 cvtepi32_ps(__m512i v) {
    const __m512 lo = _mm512_castps256_ps512(_mm256_cvtepi32_ps(lo256(v)));
    return _mm512_insertf32x8(lo, _mm256_cvtepi32_ps(hi256(v)), 1);
}
inline __m512i cvtepu8_epi16(__m256i v) {
    return join(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(v)), _mm256_cvtepu8_epi16(_mm256_extracti128_si256(v, 1)));
}
// Round to nearest even, as the instruction does under the default MXCSR.
inline __m512i cvtps_epi32(__m512 v) {
    const __m256 lo = _mm512_castps512_ps256(v);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    return join(_mm256_cvtps_epi32(lo), _mm256_cvtps_epi32(hi));
}
inline __m512i cvtepi8_epi32(__m128i v) {
    return join(_mm256_cvtepi8_epi32(v), _mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
}
inline __m512i srai_epi32(__m512i v, unsigned n) {
    return join(_mm256_srai_epi32(lo256(v), int(n)), _mm256_srai_epi32(hi256(v), int(n)));
}
}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::emu
#define _mm512_cvtepi8_epi32(v) ::tessera::cpu::TESSERA_CPU_LEVEL::emu::cvtepi8_epi32(v)
#define _mm512_srai_epi32(v, n) ::tessera::cpu::TESSERA_CPU_LEVEL::emu::srai_epi32(v, n)
#define _mm512_cvtepi32_ps(v) ::tessera::cpu::TESSERA_CPU_LEVEL::emu::cvtepi32_ps(v)
#define _mm512_cvtepu8_epi16(v) ::tessera::cpu::TESSERA_CPU_LEVEL::emu::cvtepu8_epi16(v)
#define _mm512_cvtps_epi32(v) ::tessera::cpu::TESSERA_CPU_LEVEL::emu::cvtps_epi32(v)

#elif defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && \
    defined(__AVX512VNNI__)
#define TESSERA_X86_AVX512 1
#endif
