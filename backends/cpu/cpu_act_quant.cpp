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
    alignas(64) float lanes[kLanes];
    m.store_aligned(lanes);
    float amax = 0.0f;
    for (int j = 0; j < kLanes; ++j) amax = std::max(amax, lanes[j]);
    return amax;
}

// n floats scaled by s and rounded as std::round does (halves away from zero), as int8.
void round_away_to_int8(const float* x, float s, int8_t* q, int n) {
    const vfloat sv(s), half(0.5f), one(1.0f), zero(0.0f);
    alignas(64) int32_t tmp[kLanes];
    for (int j = 0; j < n; j += kLanes) {
        const vfloat r = vload(x + j) * sv;
        const vfloat t = xsimd::trunc(r);
        const vfloat frac = xsimd::abs(r - t);  // exact: r and t share sign and exponent range
        const vfloat away = xsimd::select(r < zero, -one, one);
        const vfloat rounded = xsimd::select(frac >= half, t + away, t);
        xsimd::batch_cast<int32_t>(rounded).store_aligned(tmp);
        for (int l = 0; l < kLanes; ++l) q[j + l] = int8_t(tmp[l]);
    }
}

void quantize_q8_0(const float* x, block_q8_0* b, int64_t nb) {
    static_assert(QK8_0 % kLanes == 0);
    for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
        const float d = max_magnitude(x, QK8_0) / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        round_away_to_int8(x, id, b[i].qs, QK8_0);
    }
}

void quantize_q8_K(const float* x, block_q8_K* b, int64_t nb) {
    static_assert(QK_K % kLanes == 0);
    const vfloat cap(127.0f);
    alignas(64) int32_t tmp[kLanes];
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
        const vfloat sv(iscale);
        for (int j = 0; j < QK_K; j += kLanes) {
            const vfloat q = xsimd::min(xsimd::nearbyint(vload(x + j) * sv), cap);
            xsimd::batch_cast<int32_t>(q).store_aligned(tmp);
            for (int l = 0; l < kLanes; ++l) b[i].qs[j + l] = int8_t(tmp[l]);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) sum += b[i].qs[j * 16 + l];
            b[i].bsums[j] = int16_t(sum);
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
