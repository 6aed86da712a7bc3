// The 32-element ("legacy") GGUF quant types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
// Dequantizers produce the same floats as llama.cpp's (same expression, same order); quantizers follow
// the public reference algorithms so that quantizing the same floats gives the same bytes.
// K-quants are in core/quant_k.cpp.
//
// Floating-point contraction is switched off for this file: the reference algorithms round after every
// multiply and add, and a fused multiply-add (which -march=native would otherwise allow) changes which
// integer some values round to, i.e. the bytes.
#pragma GCC optimize("fp-contract=off")
#include <cmath>

#include "core/error.h"
#include "core/quant.h"
#include "core/quant_util.h"

namespace tessera {

using namespace quant_detail;

namespace {

int64_t blocks_of(int64_t n, int64_t qk, const char* type) {
    TESSERA_CHECK(n >= 0 && n % qk == 0, "%s: row of %lld elements is not a multiple of the block size %lld", type,
                  static_cast<long long>(n), static_cast<long long>(qk));
    return n / qk;
}

// Largest |x| and the signed value that has it (the first one on ties).
void signed_absmax(const float* x, int n, float* amax_out, float* max_out) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    *amax_out = amax;
    *max_out = max;
}

void minmax(const float* x, int n, float* mn, float* mx) {
    float lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < n; ++j) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Q4_0: 32 weights, one f16 scale d; q in 0..15, value = (q - 8) * d. Byte j holds element j in its
// low nibble and element j + 16 in its high nibble. The scale is chosen so the largest-magnitude value
// maps exactly onto -8 (d = max / -8, signed), which uses the asymmetric extra level on that side.

void dequantize_row_q4_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q4_0*>(src);
    const int64_t nb = blocks_of(n, QK4_0, "q4_0");
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const int x0 = (b[i].qs[j] & 0x0F) - 8;
            const int x1 = (b[i].qs[j] >> 4) - 8;
            dst[i * QK4_0 + j] = x0 * d;
            dst[i * QK4_0 + j + QK4_0 / 2] = x1 * d;
        }
    }
}

void quantize_row_q4_0(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q4_0*>(dst);
    const int64_t nb = blocks_of(n, QK4_0, "q4_0");
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK4_0;
        float amax, max;
        signed_absmax(x, QK4_0, &amax, &max);
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[j + QK4_0 / 2] * id;
            // truncation of (v + 8.5) is round-half-up of v + 8 for the non-negative range used here
            const uint8_t q0 = uint8_t(std::min<int>(15, int8_t(x0 + 8.5f)));
            const uint8_t q1 = uint8_t(std::min<int>(15, int8_t(x1 + 8.5f)));
            b[i].qs[j] = uint8_t(q0 | (q1 << 4));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q4_1: 32 weights, f16 scale d and f16 minimum m; value = q * d + m, q in 0..15, same nibble order as Q4_0.

void dequantize_row_q4_1(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q4_1*>(src);
    const int64_t nb = blocks_of(n, QK4_1, "q4_1");
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const int x0 = b[i].qs[j] & 0x0F;
            const int x1 = b[i].qs[j] >> 4;
            dst[i * QK4_1 + j] = x0 * d + m;
            dst[i * QK4_1 + j + QK4_1 / 2] = x1 * d + m;
        }
    }
}

void quantize_row_q4_1(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q4_1*>(dst);
    const int64_t nb = blocks_of(n, QK4_1, "q4_1");
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK4_1;
        float mn, mx;
        minmax(x, QK4_1, &mn, &mx);
        const float d = (mx - mn) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        b[i].m = f2h(mn);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const float x0 = (x[j] - mn) * id;
            const float x1 = (x[j + QK4_1 / 2] - mn) * id;
            const uint8_t q0 = uint8_t(std::min<int>(15, int8_t(x0 + 0.5f)));
            const uint8_t q1 = uint8_t(std::min<int>(15, int8_t(x1 + 0.5f)));
            b[i].qs[j] = uint8_t(q0 | (q1 << 4));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q5_0 / Q5_1: like Q4_0 / Q4_1 with a fifth bit per weight in qh (a little-endian uint32): bit j is
// element j's high bit, bit j + 16 element j + 16's. Q5_0: value = (q - 16) * d with d = max / -16.

namespace {
uint32_t load_qh(const uint8_t* p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
void store_qh(uint8_t* p, uint32_t v) {
    for (int k = 0; k < 4; ++k) p[k] = uint8_t(v >> (8 * k));
}
}  // namespace

void dequantize_row_q5_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q5_0*>(src);
    const int64_t nb = blocks_of(n, QK5_0, "q5_0");
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const int h0 = int((qh >> j) << 4) & 0x10;
            const int h1 = int(qh >> (j + 12)) & 0x10;
            const int x0 = ((b[i].qs[j] & 0x0F) | h0) - 16;
            const int x1 = ((b[i].qs[j] >> 4) | h1) - 16;
            dst[i * QK5_0 + j] = x0 * d;
            dst[i * QK5_0 + j + QK5_0 / 2] = x1 * d;
        }
    }
}

void quantize_row_q5_0(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q5_0*>(dst);
    const int64_t nb = blocks_of(n, QK5_0, "q5_0");
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK5_0;
        float amax, max;
        signed_absmax(x, QK5_0, &amax, &max);
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[j + QK5_0 / 2] * id;
            const uint8_t q0 = uint8_t(std::min<int>(31, int8_t(x0 + 16.5f)));
            const uint8_t q1 = uint8_t(std::min<int>(31, int8_t(x1 + 16.5f)));
            b[i].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= uint32_t((q0 & 0x10u) >> 4) << j;
            qh |= uint32_t((q1 & 0x10u) >> 4) << (j + QK5_0 / 2);
        }
        store_qh(b[i].qh, qh);
    }
}

void dequantize_row_q5_1(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q5_1*>(src);
    const int64_t nb = blocks_of(n, QK5_1, "q5_1");
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const int h0 = int((qh >> j) << 4) & 0x10;
            const int h1 = int(qh >> (j + 12)) & 0x10;
            const int x0 = (b[i].qs[j] & 0x0F) | h0;
            const int x1 = (b[i].qs[j] >> 4) | h1;
            dst[i * QK5_1 + j] = x0 * d + m;
            dst[i * QK5_1 + j + QK5_1 / 2] = x1 * d + m;
        }
    }
}

void quantize_row_q5_1(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q5_1*>(dst);
    const int64_t nb = blocks_of(n, QK5_1, "q5_1");
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK5_1;
        float mn, mx;
        minmax(x, QK5_1, &mn, &mx);
        const float d = (mx - mn) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        b[i].m = f2h(mn);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const float x0 = (x[j] - mn) * id;
            const float x1 = (x[j + QK5_1 / 2] - mn) * id;
            // no clamp: (max - min) * id rounds to at most 31.something, truncated to 31
            const uint8_t q0 = uint8_t(x0 + 0.5f);
            const uint8_t q1 = uint8_t(x1 + 0.5f);
            b[i].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= uint32_t((q0 & 0x10u) >> 4) << j;
            qh |= uint32_t((q1 & 0x10u) >> 4) << (j + QK5_1 / 2);
        }
        store_qh(b[i].qh, qh);
    }
}

// ---------------------------------------------------------------------------------------------
// Q8_0: 32 int8 weights and an f16 scale d = amax / 127; q = round(x / d) (half away from zero).
// Q8_1 adds s = d * sum(q) (f16), which the _1 weight types' dot products use for their minimum term.

void dequantize_row_q8_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q8_0*>(src);
    const int64_t nb = blocks_of(n, QK8_0, "q8_0");
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < QK8_0; ++j) dst[i * QK8_0 + j] = b[i].qs[j] * d;
    }
}

void quantize_row_q8_0(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_0*>(dst);
    const int64_t nb = blocks_of(n, QK8_0, "q8_0");
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        for (int j = 0; j < QK8_0; ++j) b[i].qs[j] = int8_t(std::round(x[j] * id));
    }
}

void dequantize_row_q8_1(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q8_1*>(src);
    const int64_t nb = blocks_of(n, QK8_1, "q8_1");
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < QK8_1; ++j) dst[i * QK8_1 + j] = b[i].qs[j] * d;
    }
}

void quantize_row_q8_1(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_1*>(dst);
    const int64_t nb = blocks_of(n, QK8_1, "q8_1");
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK8_1;
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; ++j) {
            b[i].qs[j] = int8_t(std::round(x[j] * id));
            sum += b[i].qs[j];
        }
        b[i].s = f2h(float(sum) * d);
    }
}

}  // namespace tessera
