// Activation rows into Q8_0 / Q8_K blocks for the quantized mul_mat, in SIMD lanes, giving exactly the bytes
// core's reference quantizers give (quantize_row_q8_0 in core/quant.cpp, quantize_row_q8_K in
// core/quant_k.cpp): the same float operations on each value, only eight or sixteen at a time. Core's loops
// call libm's roundf per value; at decode that made activation conversion a few per cent of a token.
//
// Contraction off, as in core's quantizers: x * id must round before it is rounded to an integer, and a fused
// multiply-subtract in the rounding below would see the unrounded product.
#pragma GCC optimize("fp-contract=off")
#include "backends/cpu/cpu_act_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/cpu/cpu_simd.h"
#include "backends/cpu/quant_dot.h"
#include "core/quant.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

namespace {

// Largest |x| over n floats (n a multiple of kLanes) as std::max(amax, |x|) takes it: a NaN never wins.
float max_magnitude(const float* x, int n) {
    vfloat m(0.0f);
    for (int j = 0; j < n; j += kLanes) {
        const vfloat a = xsimd::abs(vload(x + j));
        m = xsimd::select(m < a, a, m);
    }
    // No lane holds a NaN (m < NaN is false) or -0, so any maximum of the lanes is the one std::max gives.
#if defined(__AVX512F__)
    return _mm512_reduce_max_ps(m);
#elif defined(__AVX2__)
    __m128 t = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    t = _mm_max_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_max_ss(t, _mm_movehdup_ps(t)));
#else
    alignas(64) float lanes[kLanes];
    m.store_aligned(lanes);
    float amax = 0.0f;
    for (int j = 0; j < kLanes; ++j) amax = std::max(amax, lanes[j]);
    return amax;
#endif
}

// d as f16, as fp32_to_fp16 rounds it (to nearest, ties to even; subnormals and overflow alike); F16C's
// conversion gives the same bits for every value but NaN, which d never is (it comes from max_magnitude).
inline uint16_t scale_to_f16(float d) {
#if defined(__F16C__)
    return uint16_t(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
#else
    return fp32_to_fp16(d);
#endif
}

using vint32 = xsimd::batch<int32_t>;

// kLanes int32 values, each within [-128, 127], stored as int8. One narrowing instruction (AVX-512) or two
// packs (AVX2) rather than a store through memory and a byte at a time: activation conversion was ~10 % of
// a Q8_0 prompt's time at the amx level that way.
inline void store_int8(const vint32& v, int8_t* q) {
#if defined(__AVX512F__)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(v));
#elif defined(__AVX2__)
    const __m256i w = _mm256_packs_epi32(v, v);  // int16 [0..3 0..3 | 4..7 4..7]
    const __m256i b = _mm256_packs_epi16(w, w);  // int8, each 128-bit half its four values repeated
    const int32_t lo = _mm256_cvtsi256_si32(b), hi = _mm256_extract_epi32(b, 4);
    std::memcpy(q, &lo, 4);
    std::memcpy(q + 4, &hi, 4);
#else
    alignas(64) int32_t tmp[kLanes];
    v.store_aligned(tmp);
    for (int l = 0; l < kLanes; ++l) q[l] = int8_t(tmp[l]);
#endif
}

// n floats scaled by s and rounded as std::round does (halves away from zero), as int8.
inline void round_away_to_int8(const float* x, float s, int8_t* q, int n) {
    const vfloat sv(s), half(0.5f), one(1.0f), zero(0.0f);
    for (int j = 0; j < n; j += kLanes) {
        const vfloat r = vload(x + j) * sv;
        const vfloat t = xsimd::trunc(r);
        const vfloat frac = xsimd::abs(r - t);  // exact: r and t share sign and exponent range
        const vfloat away = xsimd::select(r < zero, -one, one);
        const vfloat rounded = xsimd::select(frac >= half, t + away, t);
        store_int8(xsimd::batch_cast<int32_t>(rounded), q + j);
    }
}

void quantize_q8_0(const float* x, block_q8_0* b, int64_t nb) {
    static_assert(QK8_0 % kLanes == 0);
    for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
        const float d = max_magnitude(x, QK8_0) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = scale_to_f16(d);
        round_away_to_int8(x, id, b[i].qs, QK8_0);
    }
}

void quantize_q8_K(const float* x, block_q8_K* b, int64_t nb) {
    static_assert(QK_K % kLanes == 0);
    const vfloat cap(127.0f);
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        // The value of largest magnitude, the first of equal ones (its sign decides the scale's).
        const float amax = max_magnitude(x, QK_K);
        if (!amax) {
            b[i] = block_q8_K{};
            continue;
        }
        int first = 0;
        while (std::fabs(x[first]) != amax) ++first;
        const float iscale = -127.f / x[first];
        // nearest_int (ties to even, for |v| < 2^22) is the vector round-to-nearest under the default mode.
        // The values lie in [-127, 127]: |x| <= amax and |iscale| = 127 / amax. bsums[g]: the sum of group g's 16.
        const vfloat sv(iscale);
        static_assert(16 % kLanes == 0);
        for (int g = 0; g < QK_K / 16; ++g) {
            vint32 sum(0);
            for (int j = 16 * g; j < 16 * (g + 1); j += kLanes) {
                const vint32 q = xsimd::batch_cast<int32_t>(xsimd::min(xsimd::nearbyint(vload(x + j) * sv), cap));
                store_int8(q, b[i].qs + j);
                sum += q;
            }
            b[i].bsums[g] = int16_t(xsimd::hadd(sum));
        }
        b[i].d = 1 / iscale;
    }
}

}  // namespace

void quantize_activation_row(DType w, const float* x, void* dst, int64_t k) {
    switch (activation_type(w)) {
        case DType::Q8_0:
            if (k % QK8_0 == 0) return quantize_q8_0(x, static_cast<block_q8_0*>(dst), k / QK8_0);
            break;
        case DType::Q8_K:
            if (k % QK_K == 0) return quantize_q8_K(x, static_cast<block_q8_K*>(dst), k / QK_K);
            break;
        default:
            break;
    }
    quantize_activations(w, x, dst, k);  // float activations, or a length the reference will refuse by name
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
