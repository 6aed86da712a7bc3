// Row conversions between the float storage types, vectorized where the ISA
// has an exact instruction (F16C / AVX-512 half conversions round to nearest
// even, like fp32_to_fp16); the bf16 rounding is the same integer formula as
// fp32_to_bf16, written so the compiler can vectorize it.
#include <cstring>

#include "backends/cpu/cpu_simd.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

namespace {

inline uint16_t bf16_round(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    const uint32_t nan = (x >> 16) | 0x40u;
    return uint16_t((x & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

}  // namespace

void convert_f32_to_f16(const float* src, uint16_t* dst, int64_t n) {
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                            _mm512_maskz_cvtps_ph(__mmask16(0xffff), _mm512_loadu_ps(src + i),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif defined(__aarch64__)
    // FCVTN rounds by the FPCR mode, which is round-to-nearest-even unless a program changes it.
    for (; i + 4 <= n; i += 4) vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
#endif
    for (; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}

void convert_f32_to_bf16(const float* src, uint16_t* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_round(src[i]);
}

void convert_to_f32(DType t, const void* src, float* dst, int64_t n) {
    int64_t i = 0;
    if (t == DType::F32) {
        std::memcpy(dst, src, size_t(n) * sizeof(float));
    } else if (t == DType::F16) {
        auto* s = static_cast<const uint16_t*>(src);
        for (; i + kLanes <= n; i += kLanes) vload_f16(s + i).store_unaligned(dst + i);
        for (; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
    } else if (t == DType::BF16) {
        auto* s = static_cast<const uint16_t*>(src);
        for (; i + kLanes <= n; i += kLanes) vload_bf16(s + i).store_unaligned(dst + i);
        for (; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
    } else {
        type_traits(t).to_float(src, dst, n);
    }
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
