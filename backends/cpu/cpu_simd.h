// SIMD building blocks shared by the cpu backend's kernels: one float vector
// type (xsimd's best arch for this build) and loads that widen f16 / bf16
// storage into it. Private to backends/cpu.
#pragma once
#include "backends/cpu/kernel_level.h"
// GCC 12 reports the AVX-512 intrinsics' deliberately undefined pass-through
// operands (used inside xsimd too) as uninitialized: a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xsimd/xsimd.hpp>

#include <cstdint>
#include <cstring>

#include "core/types.h"

#if defined(__AVX512F__) || defined(__F16C__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace tessera::cpu::TESSERA_CPU_LEVEL {

using vfloat = xsimd::batch<float>;
constexpr int kLanes = int(vfloat::size);

inline vfloat vload(const float* p) { return vfloat::load_unaligned(p); }

// f16 -> f32 for kLanes halves. Hardware conversion (F16C / AVX-512) is exact,
// like fp16_to_fp32; the scalar path is the portable fallback.
// bf16 -> f32: the bf16 bits are the top half of the f32 bits (exact).
#if defined(__AVX512F__)
static_assert(kLanes == 16, "xsimd's default arch is expected to be AVX-512 here");
inline vfloat vload_f16(const uint16_t* p) {
    // maskz form: GCC 12 warns on the plain intrinsic's undefined pass-through operand.
    return vfloat(_mm512_maskz_cvtph_ps(__mmask16(0xffff), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
}
inline vfloat vload_bf16(const uint16_t* p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return vfloat(_mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
}
#elif defined(__AVX2__) && defined(__F16C__)
static_assert(kLanes == 8, "xsimd's default arch is expected to be AVX2 here");
inline vfloat vload_f16(const uint16_t* p) {
    return vfloat(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline vfloat vload_bf16(const uint16_t* p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return vfloat(_mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
}
#elif defined(__aarch64__)
// Every aarch64 CPU converts halves in hardware (FCVTL, exact); xsimd's arch there is NEON, 4 lanes.
static_assert(kLanes == 4, "xsimd's default arch is expected to be NEON here");
inline vfloat vload_f16(const uint16_t* p) { return vfloat(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)))); }
inline vfloat vload_bf16(const uint16_t* p) { return vfloat(vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16))); }
#else
inline vfloat vload_f16(const uint16_t* p) {
    alignas(64) float tmp[kLanes];
    for (int i = 0; i < kLanes; ++i) tmp[i] = fp16_to_fp32(p[i]);
    return vfloat::load_aligned(tmp);
}
inline vfloat vload_bf16(const uint16_t* p) {
    alignas(64) float tmp[kLanes];
    for (int i = 0; i < kLanes; ++i) tmp[i] = bf16_to_fp32(p[i]);
    return vfloat::load_aligned(tmp);
}
#endif

// sums[i] = horizontal sum of acc[i], i < 16. (xsimd 8.1's haddp returns the
// sums permuted on AVX-512, so the cpu backend does not use it.)
#if defined(__AVX512F__)
inline void reduce16(const vfloat* acc, float* sums) {
    // Pairs: within each 128-bit segment, [a0+a2, b0+b2, a1+a3, b1+b3].
    auto pair = [](__m512 a, __m512 b) { return _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b)); };
    // Quads: within each 128-bit segment, that segment's sums of a, b, c, d.
    auto quad = [&](const vfloat* v) {
        const __m512 ab = pair(v[0], v[1]), cd = pair(v[2], v[3]);
        return _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    };
    const __m512 v0 = quad(acc), v1 = quad(acc + 4), v2 = quad(acc + 8), v3 = quad(acc + 12);
    // Add the four segments of each quad: segment i of the result is quad i's total.
    auto fold = [](__m512 x, __m512 y) {
        return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
    };
    const __m512 p = fold(v0, v1), q = fold(v2, v3);
    _mm512_storeu_ps(sums, fold(p, q));
}
#elif defined(__aarch64__)
inline void reduce16(const vfloat* acc, float* sums) {
    // Pairwise adds: vpaddq(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3], twice gives four vectors' totals at once.
    for (int i = 0; i < 16; i += 4) {
        const float32x4_t ab = vpaddq_f32(acc[i], acc[i + 1]), cd = vpaddq_f32(acc[i + 2], acc[i + 3]);
        vst1q_f32(sums + i, vpaddq_f32(ab, cd));
    }
}
#else
inline void reduce16(const vfloat* acc, float* sums) {
    for (int i = 0; i < 16; ++i) sums[i] = xsimd::hadd(acc[i]);
}
#endif

// Storage element types the float-weight kernels are written over.
struct F32Elem {
    using T = float;
    static vfloat load(const float* p) { return vload(p); }
    static float scalar(float x) { return x; }
};
struct F16Elem {
    using T = uint16_t;
    static vfloat load(const uint16_t* p) { return vload_f16(p); }
    static float scalar(uint16_t x) { return fp16_to_fp32(x); }
};
struct BF16Elem {
    using T = uint16_t;
    static vfloat load(const uint16_t* p) { return vload_bf16(p); }
    static float scalar(uint16_t x) { return bf16_to_fp32(x); }
};

// n floats -> f16 (round to nearest even, as fp32_to_fp16).
void convert_f32_to_f16(const float* src, uint16_t* dst, int64_t n);
// n floats -> bf16 (round to nearest even, NaN kept quiet, as fp32_to_bf16).
void convert_f32_to_bf16(const float* src, uint16_t* dst, int64_t n);
// n elements of a float storage type (F32, F16, BF16) -> f32.
void convert_to_f32(DType t, const void* src, float* dst, int64_t n);

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
