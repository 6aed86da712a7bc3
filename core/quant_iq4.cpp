// IQ4_NL and IQ4_XS: 4-bit indices into a fixed non-linear grid (kIQ4Grid, int8 levels from -127 to 113),
// one f16 scale per 32 values (IQ4_NL), or per 256 values with a 6-bit signed sub-scale per 32 (IQ4_XS).
//
// Dequantizers give llama.cpp's floats (the same products). The quantizers follow llama-quantize's search
// for these types when no importance matrix is given, so the same floats give the same bytes:
//   per group of 32, weights w_j = x_j^2; start from the scale that puts the largest-magnitude value on the
//   grid's end (-127), fit the least-squares scale d = sum(w q x) / sum(w q^2) to the nearest levels, then
//   try 15 nearby inverse scales (itry - 127) / max, itry = -7..7, keeping the one whose fit has the largest
//   sum(w q x)^2 / sum(w q^2) (the least weighted squared error at its own best scale).
//   IQ4_NL stores that d as f16 and re-picks the levels against it. IQ4_XS quantizes the 8 group scales to
//   6-bit integers l in -32..31 against d_super = -(the largest-magnitude group scale) / 32, then re-picks
//   each group's levels against d_super * l.
//
// Contraction off, as in core/quant.cpp: the search compares rounded float sums, and a fused multiply-add
// would change which candidate wins.
#pragma GCC optimize("fp-contract=off")
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/quant.h"
#include "core/quant_util.h"

namespace tessera {

using namespace quant_detail;

namespace {

constexpr int kGroup = 32;
constexpr int kSearchSteps = 7;  // itry = -7..7 around the grid's end

int64_t groups_of(int64_t n, int64_t qk, const char* type) {
    TESSERA_CHECK(n >= 0 && n % qk == 0, "%s: row of %lld elements is not a multiple of the block size %lld", type,
                  static_cast<long long>(n), static_cast<long long>(qk));
    return n / qk;
}

// For each integer i from the grid's first level to one below its last, the index of the first level above
// i. The levels are integers, so the first level above any x in that range is the first above floor(x): one
// table read instead of a scan over the levels, whose unpredictable exits made the quantizer's search (16
// fits of 32 values per group) take most of `tessera quantize`'s time for these types.
constexpr int kGridFirst = kIQ4Grid[0], kGridLast = kIQ4Grid[15];
struct LevelAbove {
    uint8_t index[kGridLast - kGridFirst];
};
constexpr LevelAbove make_level_above() {
    LevelAbove t{};
    for (int i = kGridFirst; i < kGridLast; ++i) {
        int hi = 1;
        while (kIQ4Grid[hi] <= i) ++hi;
        t.index[i - kGridFirst] = uint8_t(hi);
    }
    return t;
}
constexpr LevelAbove kLevelAbove = make_level_above();

// Index of the grid level nearest to x; an exact midpoint goes to the upper level (llama.cpp's rule).
int nearest_level(float x) {
    if (x <= kGridFirst) return 0;
    if (x >= kGridLast) return 15;
    if (x != x) return 1;  // NaN: what a scan over the levels from the second one gives
    int floor_x = int(x);  // truncation is exact; floor below it for negative non-integers
    if (float(floor_x) > x) --floor_x;
    const int hi = kLevelAbove.index[floor_x - kGridFirst];  // kIQ4Grid[hi - 1] <= x < kIQ4Grid[hi]
    return x - kIQ4Grid[hi - 1] < kIQ4Grid[hi] - x ? hi - 1 : hi;
}

// The best scale for one group of 32 (0 for a group of zeros), by the search described at the top.
float search_group_scale(const float* x) {
    float w[kGroup];
    float amax = 0, max = 0;  // largest |x| and the signed value that has it (the first one on ties)
    for (int j = 0; j < kGroup; ++j) {
        w[j] = x[j] * x[j];
        if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    if (amax < kGroupMaxEps) return 0.0f;
    // Weighted sums of q x and q^2 over the levels nearest to x * inv_scale.
    auto fit = [&](float inv_scale, float* sum_qx, float* sum_q2) {
        float qx = 0, q2 = 0;
        for (int j = 0; j < kGroup; ++j) {
            const float q = kIQ4Grid[nearest_level(inv_scale * x[j])];
            qx += w[j] * q * x[j];
            q2 += w[j] * q * q;
        }
        *sum_qx = qx;
        *sum_q2 = q2;
    };
    float sum_qx, sum_q2;
    fit(1 / (max / -float(kIQ4Grid[0])), &sum_qx, &sum_q2);
    float d = sum_q2 > 0 ? sum_qx / sum_q2 : 0.0f;
    float best = d * sum_qx;
    for (int itry = -kSearchSteps; itry <= kSearchSteps; ++itry) {
        fit(float(itry + kIQ4Grid[0]) / max, &sum_qx, &sum_q2);
        if (sum_q2 > 0 && sum_qx * sum_qx > best * sum_q2) {
            d = sum_qx / sum_q2;
            best = d * sum_qx;
        }
    }
    return d;
}

// Levels of one group of 32 against scale d, packed two per byte (j low nibble, j + 16 high).
void pack_group(const float* x, float d, uint8_t* qs) {
    const float id = d != 0.0f ? 1 / d : 0.0f;
    for (int j = 0; j < kGroup / 2; ++j)
        qs[j] = uint8_t(nearest_level(id * x[j]) | nearest_level(id * x[j + kGroup / 2]) << 4);
}

}  // namespace

void dequantize_row_iq4_nl(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_iq4_nl*>(src);
    const int64_t nb = groups_of(n, QK4_NL, "iq4_nl");
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        float* y = dst + i * QK4_NL;
        for (int j = 0; j < QK4_NL / 2; ++j) {
            y[j] = d * kIQ4Grid[b[i].qs[j] & 0x0F];
            y[j + QK4_NL / 2] = d * kIQ4Grid[b[i].qs[j] >> 4];
        }
    }
}

void dequantize_row_iq4_xs(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_iq4_xs*>(src);
    const int64_t nb = groups_of(n, QK_K, "iq4_xs");
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        for (int g = 0; g < QK_K / kGroup; ++g) {
            const int ls = ((b[i].scales_l[g / 2] >> (4 * (g % 2))) & 0x0F) | (((b[i].scales_h >> (2 * g)) & 3) << 4);
            const float dl = d * float(ls - 32);
            const uint8_t* qs = b[i].qs + g * (kGroup / 2);
            float* y = dst + i * QK_K + g * kGroup;
            for (int j = 0; j < kGroup / 2; ++j) {
                y[j] = dl * kIQ4Grid[qs[j] & 0x0F];
                y[j + kGroup / 2] = dl * kIQ4Grid[qs[j] >> 4];
            }
        }
    }
}

void quantize_row_iq4_nl(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_iq4_nl*>(dst);
    const int64_t nb = groups_of(n, QK4_NL, "iq4_nl");
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK4_NL;
        const float d = search_group_scale(x);
        b[i].d = f2h(d);
        pack_group(x, d, b[i].qs);  // against the unrounded d, as llama.cpp
    }
}

void quantize_row_iq4_xs(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_iq4_xs*>(dst);
    const int64_t nb = groups_of(n, QK_K, "iq4_xs");
    constexpr int kGroups = QK_K / kGroup;
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK_K;
        float scales[kGroups];
        float amax_scale = 0, max_scale = 0;
        for (int g = 0; g < kGroups; ++g) {
            scales[g] = search_group_scale(x + g * kGroup);
            if (std::fabs(scales[g]) > amax_scale) {
                amax_scale = std::fabs(scales[g]);
                max_scale = scales[g];
            }
        }
        // The largest-magnitude group scale maps onto -32, the asymmetric end of the 6-bit range.
        const float d = -max_scale / 32;
        const float id = d != 0.0f ? 1 / d : 0.0f;
        b[i].d = f2h(d);
        b[i].scales_h = 0;
        std::memset(b[i].scales_l, 0, sizeof(b[i].scales_l));
        for (int g = 0; g < kGroups; ++g) {
            const int l = clampv(nearest_int(id * scales[g]), -32, 31);
            pack_group(x + g * kGroup, d * float(l), b[i].qs + g * (kGroup / 2));
            const int ls = l + 32;
            b[i].scales_l[g / 2] |= uint8_t((ls & 0x0F) << (4 * (g % 2)));
            b[i].scales_h |= uint16_t((ls >> 4) << (2 * g));
        }
    }
}

}  // namespace tessera
