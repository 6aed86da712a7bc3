// MXFP4 (OCP Microscaling FP4): 32 E2M1 values (sign, 2 exponent bits, 1 mantissa bit: 0, 0.5 .. 6) sharing one
// E8M0 scale byte e (the power of two 2^(e - 127)). Stored as llama.cpp stores it: the values doubled to the
// integers of kMXFP4Grid and the scale halved (mxfp4_half_scale), so value = kMXFP4Grid[q] * 2^(e - 128).
//
// Quantizer (llama.cpp's, deterministic): e = floor(log2(max |x|)) - 2 + 127, so the half scale is
// d = 2^(floor(log2(max |x|)) - 3) and the largest value lies in [8 d, 16 d): the grid's top level, 12 d, covers
// up to 1.5x the start of that range and larger values clip to it. Each value then goes to the nearest level
// (the first of equally near ones in table order).
#pragma GCC optimize("fp-contract=off")
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/quant.h"

namespace tessera {

namespace {

int64_t blocks_of(int64_t n) {
    TESSERA_CHECK(n >= 0 && n % QK_MXFP4 == 0, "mxfp4: row of %lld elements is not a multiple of the block size %d",
                  static_cast<long long>(n), QK_MXFP4);
    return n / QK_MXFP4;
}

// The level nearest to x at half-scale d; on ties the lower table index (so +0 over -0).
uint8_t nearest_level(float x, float d) {
    uint8_t best = 0;
    float best_err = std::fabs(kMXFP4Grid[0] * d - x);
    for (uint8_t i = 1; i < 16; ++i) {
        const float err = std::fabs(kMXFP4Grid[i] * d - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return best;
}

// The shared exponent for a block whose largest magnitude is amax (0 for a block of zeros). Kept inside the
// byte's range for magnitudes the format cannot reach (below 2^-127 or non-finite).
uint8_t shared_exponent(float amax) {
    if (!(amax > 0.0f)) return 0;
    if (!std::isfinite(amax)) return 254;
    const float e = std::floor(std::log2(amax)) - 2 + 127;
    return uint8_t(e < 0 ? 0 : (e > 254 ? 254 : e));
}

}  // namespace

void dequantize_row_mxfp4(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_mxfp4*>(src);
    const int64_t nb = blocks_of(n);
    for (int64_t i = 0; i < nb; ++i) {
        const float d = mxfp4_half_scale(b[i].e);
        float* y = dst + i * QK_MXFP4;
        for (int j = 0; j < QK_MXFP4 / 2; ++j) {
            y[j] = kMXFP4Grid[b[i].qs[j] & 0x0F] * d;
            y[j + QK_MXFP4 / 2] = kMXFP4Grid[b[i].qs[j] >> 4] * d;
        }
    }
}

void quantize_row_mxfp4(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_mxfp4*>(dst);
    const int64_t nb = blocks_of(n);
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK_MXFP4;
        float amax = 0.0f;
        for (int j = 0; j < QK_MXFP4; ++j) amax = std::max(amax, std::fabs(x[j]));
        b[i].e = shared_exponent(amax);
        const float d = mxfp4_half_scale(b[i].e);
        for (int j = 0; j < QK_MXFP4 / 2; ++j)
            b[i].qs[j] = uint8_t(nearest_level(x[j], d) | nearest_level(x[j + QK_MXFP4 / 2], d) << 4);
    }
}

}  // namespace tessera
