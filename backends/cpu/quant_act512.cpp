// Activation rows to Q8_K blocks with AVX-512, byte for byte what core's reference quantizer
// (quantize_row_q8_K) writes: the same float operations in the same order where order matters (the scale
// and its inverse are scalar, as there), the maxima order-free, and its rounding rule reproduced exactly:
//   Q8_K: q = min(127, nearest_int(iscale * x)), ties to even, which is the conversion instruction's rule
//         under the default rounding mode; the scale is the value of largest magnitude, the first one
//         on ties (its sign matters); bsums are exact integer sums of each 16.
// Q8_0 (round half away from zero) still uses core's scalar quantizer: a 512-bit version did not match its
// bytes on ties under SIMDe's roundscale and was left out. Only built where TESSERA_X86_AVX512 holds.
#include "backends/cpu/quant_dot_kernels.h"

#include <cstring>

#include "core/quant.h"
#include "core/types.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

#if TESSERA_QDOT_AVX512

namespace {

__m512 abs_ps(__m512 v) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff))); }

float hmax(__m512 v) {  // no NaN in v (the caller only takes maxima of magnitudes into a zero start)
    const __m256 m8 = _mm256_max_ps(lo_ps(v), hi_ps(v));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

int hsum_epi32(__m512i v) {
    const __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(v), hi_si(v));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

void quantize_q8_K(const float* x, block_q8_K* b, int64_t nb) {
    constexpr int kVecs = QK_K / 16;
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        __m512 v[kVecs];
        __m512 m = _mm512_setzero_ps();
        TESSERA_UNROLL for (int j = 0; j < kVecs; ++j) {
            v[j] = _mm512_loadu_ps(x + 16 * j);
            m = _mm512_max_ps(abs_ps(v[j]), m);  // a NaN lane keeps m, as the reference skips NaN
        }
        const float amax = hmax(m);
        if (!amax) {
            std::memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float max = 0;  // the first value whose magnitude is amax
        for (int j = 0; j < kVecs; ++j) {
            const __mmask16 hit = _mm512_cmp_ps_mask(abs_ps(v[j]), _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (hit) {
                max = x[16 * j + __builtin_ctz(unsigned(hit))];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m512 vs = _mm512_set1_ps(iscale);
        TESSERA_UNROLL for (int j = 0; j < kVecs; ++j) {
            const __m512i q = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(vs, v[j])), _mm512_set1_epi32(127));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs + 16 * j), _mm512_cvtsepi32_epi8(q));
            b[i].bsums[j] = int16_t(hsum_epi32(q));
        }
        b[i].d = 1 / iscale;
    }
}

}  // namespace

bool quantize_activations512(DType a, const float* x, void* dst, int64_t k) {
    if (a == DType::Q8_K && k % QK_K == 0) {
        quantize_q8_K(x, static_cast<block_q8_K*>(dst), k / QK_K);
        return true;
    }
    return false;  // other types, and k the reference quantizer refuses (it names the problem)
}

#else

bool quantize_activations512(DType, const float*, void*, int64_t) { return false; }

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot
