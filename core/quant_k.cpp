// The K-quant GGUF types (super-blocks of 256 weights): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K.
// Dequantizers give the same floats as llama.cpp's (same expressions in the same order). Quantizers
// implement the public reference algorithms (per sub-block scale/min search minimizing weighted
// squared or absolute error, then the sub-block scales themselves quantized against one f16 super-scale)
// so that the same input gives the same bytes as llama.cpp's reference quantizers.
//
// The scale searches live in core/quant_search.h. Contraction off: see core/quant.cpp. A fused multiply-add
// in the error sums flips search decisions.
#pragma GCC optimize("fp-contract=off")
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/quant.h"
#include "core/quant_search.h"
#include "core/quant_util.h"

namespace tessera {

using namespace quant_detail;

namespace {

int64_t superblocks_of(int64_t n, const char* type) {
    TESSERA_CHECK(n >= 0 && n % QK_K == 0, "%s: row of %lld elements is not a multiple of the block size %d", type,
                  static_cast<long long>(n), QK_K);
    return n / QK_K;
}

// Q3_K's symmetric search (q in -nmax..nmax-1, returned unshifted + nmax): start from the max-magnitude
// scale, then coordinate descent: up to 5 sweeps that move single levels to their least-squares optimum
// whenever that raises sum(w x l)^2 / sum(w l^2) (w = x^2).
float search_scale_q3(int n, int nmax, const float* x, int8_t* L) {
    const SignedMax max = signed_max(n, x);
    if (max.magnitude < kGroupMaxEps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.0f;
    }
    float sumlx, suml2;
    symmetric_fit(n, nmax, -nmax / max.value, x, L, 0, &sumlx, &suml2);
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = nearest_int(x[i] * sl2 / slx);
                new_l = clampv(new_l, -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = int8_t(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
    return sumlx / suml2;
}

// Q4_K / Q5_K pack eight 6-bit scales and eight 6-bit mins into 12 bytes: bytes 0-3 hold scales 0-3
// (low 6 bits) and the top 2 bits of scales 4-7; bytes 4-7 mins 0-3 and the top 2 bits of mins 4-7;
// bytes 8-11 the low 4 bits of scale j+4 (low nibble) and min j+4 (high nibble).
void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = uint8_t((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

void pack_scale_min_k4(const uint8_t ls[8], const uint8_t lm[8], uint8_t* q) {
    std::memset(q, 0, K_SCALE_SIZE);
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            q[j - 4] |= uint8_t((ls[j] >> 4) << 6);
            q[j - 0] |= uint8_t((lm[j] >> 4) << 6);
        }
    }
}

// Q3_K: sixteen 6-bit scales in 12 bytes: bytes 0-7 the low nibbles (scale j in byte j%8, high nibble
// for j >= 8), bytes 8-11 the top 2 bits (scale j at bits 2*(j/4) of byte 8 + j%4). Stored as scale + 32.
int q3_scale(const uint8_t* s, int j) {
    const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

// Sub-block weights for the Q4_K/Q5_K search: rms of the group plus each value's magnitude, so large
// values matter more but no value is ignored.
void rms_plus_abs_weights(const float* x, float* w) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[l] * x[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[l]);
}

// Shared by Q4_K and Q5_K: 8 sub-blocks of 32 with (scale, min) each, quantized to 6 bits against
// f16 super-scales d and dmin; then each value's level recomputed against the rounded scales.
void quantize_superblock_k4(const float* x, int nmax, float rmin, int nstep, uint16_t* d_out, uint16_t* dmin_out,
                            uint8_t* packed_scales, uint8_t* L) {
    float weights[QK_K], scales[8], mins[8];
    for (int j = 0; j < 8; ++j) rms_plus_abs_weights(x + 32 * j, weights + 32 * j);
    search_scale_min_groups(8, 32, nmax, x, weights, L, scales, mins, rmin, 0.1f, nstep, false);
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = uint8_t(std::min(63, nearest_int(inv_scale * scales[j])));
        lm[j] = uint8_t(std::min(63, nearest_int(inv_min * mins[j])));
    }
    pack_scale_min_k4(ls, lm, packed_scales);
    *d_out = f2h(max_scale / 63.f);
    *dmin_out = f2h(max_min / 63.f);
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, packed_scales, &sc, &m);
        const float d = h2f(*d_out) * sc;
        if (!d) continue;
        const float dm = h2f(*dmin_out) * m;
        for (int ii = 0; ii < 32; ++ii) L[32 * j + ii] = uint8_t(clampv(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax));
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Q2_K: 16 sub-blocks of 16, each with a 4-bit scale (low nibble) and 4-bit min (high nibble) against
// f16 d and dmin; value = d * sc * q - dmin * m, q in 0..3. qs: per 128 values, byte l holds
// values l, l+32, l+64, l+96 at bit shifts 0, 2, 4, 6.

void dequantize_row_q2_K(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q2_K*>(src);
    const int64_t nb = superblocks_of(n, "q2_K");
    float* y = dst;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d), mn = h2f(b[i].dmin);
        const uint8_t* q = b[i].qs;
        int is = 0;
        for (int half = 0; half < QK_K; half += 128) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                for (int part = 0; part < 2; ++part) {
                    const uint8_t sc = b[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = mn * (sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * int8_t((q[l + 16 * part] >> shift) & 3) - ml;
                }
                shift += 2;
            }
            q += 32;
        }
    }
}

void quantize_row_q2_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q2_K*>(dst);
    const int64_t nb = superblocks_of(n, "q2_K");
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK_K;
        uint8_t L[QK_K];
        float weights[QK_K], mins[16], scales[16];
        for (int l = 0; l < QK_K; ++l) weights[l] = std::fabs(x[l]);
        search_scale_min_groups(16, 16, 3, x, weights, L, scales, mins, -0.5f, 0.1f, 15, true);
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; ++j) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; ++j) b[i].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
            b[i].d = f2h(max_scale / q4scale);
        } else {
            for (int j = 0; j < 16; ++j) b[i].scales[j] = 0;
            b[i].d = f2h(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; ++j) b[i].scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
            b[i].dmin = f2h(max_min / q4scale);
        } else {
            b[i].dmin = f2h(0.f);
        }
        for (int j = 0; j < 16; ++j) {
            const float d = h2f(b[i].d) * (b[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = h2f(b[i].dmin) * (b[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = uint8_t(clampv(nearest_int((x[16 * j + ii] + dm) / d), 0, 3));
        }
        for (int j = 0; j < QK_K; j += 128)
            for (int l = 0; l < 32; ++l)
                b[i].qs[j / 4 + l] =
                    uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

// ---------------------------------------------------------------------------------------------
// Q3_K: 16 sub-blocks of 16 with signed 6-bit scales (see q3_scale) against f16 d; q in -4..3 stored as
// 2 low bits in qs (Q2_K's order) and the high bit in hmask (bit b of byte l: value 32*b + l); a set
// high bit means q >= 0 (i.e. the stored 0..7 level minus 4 without subtracting 4).

void dequantize_row_q3_K(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q3_K*>(src);
    const int64_t nb = superblocks_of(n, "q3_K");
    float* y = dst;
    for (int64_t i = 0; i < nb; ++i) {
        const float d_all = h2f(b[i].d);
        const uint8_t* q = b[i].qs;
        const uint8_t* hm = b[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int half = 0; half < QK_K; half += 128) {
            int shift = 0;
            for (int j = 0; j < 4; ++j) {
                for (int part = 0; part < 2; ++part) {
                    const float dl = d_all * q3_scale(b[i].scales, is++);
                    for (int l = 16 * part; l < 16 * part + 16; ++l)
                        *y++ = dl * (int8_t((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
                shift += 2;
                m = uint8_t(m << 1);
            }
            q += 32;
        }
    }
}

void quantize_row_q3_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q3_K*>(dst);
    const int64_t nb = superblocks_of(n, "q3_K");
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK_K;
        int8_t L[QK_K];
        float scales[16];
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; ++j) {
            scales[j] = search_scale_q3(16, 4, x + 16 * j, L + 16 * j);
            const float scale = std::fabs(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }
        std::memset(b[i].scales, 0, sizeof b[i].scales);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; ++j) {
                int l = clampv(nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8)
                    b[i].scales[j] = uint8_t(l & 0xF);
                else
                    b[i].scales[j - 8] |= uint8_t((l & 0xF) << 4);
                l >>= 4;
                b[i].scales[j % 4 + 8] |= uint8_t(l << (2 * (j / 4)));
            }
            b[i].d = f2h(1 / iscale);
        } else {
            b[i].d = f2h(0.f);
        }
        for (int j = 0; j < 16; ++j) {
            const float d = h2f(b[i].d) * q3_scale(b[i].scales, j);
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = int8_t(clampv(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
        }
        std::memset(b[i].hmask, 0, sizeof b[i].hmask);
        int m = 0;
        uint8_t hm = 1;
        for (int j = 0; j < QK_K; ++j) {
            if (L[j] > 3) {
                b[i].hmask[m] |= hm;
                L[j] = int8_t(L[j] - 4);
            }
            if (++m == QK_K / 8) {
                m = 0;
                hm = uint8_t(hm << 1);
            }
        }
        for (int j = 0; j < QK_K; j += 128)
            for (int l = 0; l < 32; ++l)
                b[i].qs[j / 4 + l] =
                    uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

// ---------------------------------------------------------------------------------------------
// Q4_K: 8 sub-blocks of 32 with 6-bit scale and min (see get_scale_min_k4); value = d*sc*q - dmin*m.
// qs: per 64 values, byte l holds value l (low nibble) and value l + 32 (high nibble).

void dequantize_row_q4_K(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q4_K*>(src);
    const int64_t nb = superblocks_of(n, "q4_K");
    float* y = dst;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d), mn = h2f(b[i].dmin);
        const uint8_t* q = b[i].qs;
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
            uint8_t sc, m;
            get_scale_min_k4(is + 0, b[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = mn * m;
            get_scale_min_k4(is + 1, b[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = mn * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

void quantize_row_q4_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q4_K*>(dst);
    const int64_t nb = superblocks_of(n, "q4_K");
    for (int64_t i = 0; i < nb; ++i) {
        uint8_t L[QK_K];
        quantize_superblock_k4(src + i * QK_K, 15, -1.f, 20, &b[i].d, &b[i].dmin, b[i].scales, L);
        uint8_t* q = b[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
    }
}

// ---------------------------------------------------------------------------------------------
// Q5_K: Q4_K plus a fifth bit per value in qh: for the p-th 64-value chunk, bit 2p of qh[l] is value
// l's high bit and bit 2p + 1 value l + 32's.

void dequantize_row_q5_K(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q5_K*>(src);
    const int64_t nb = superblocks_of(n, "q5_K");
    float* y = dst;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d), mn = h2f(b[i].dmin);
        const uint8_t* ql = b[i].qs;
        const uint8_t* qh = b[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32) {
            uint8_t sc, m;
            get_scale_min_k4(is + 0, b[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = mn * m;
            get_scale_min_k4(is + 1, b[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = mn * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 = uint8_t(u1 << 2);
            u2 = uint8_t(u2 << 2);
        }
    }
}

void quantize_row_q5_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q5_K*>(dst);
    const int64_t nb = superblocks_of(n, "q5_K");
    for (int64_t i = 0; i < nb; ++i) {
        uint8_t L[QK_K];
        quantize_superblock_k4(src + i * QK_K, 31, -0.5f, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
        uint8_t* qh = b[i].qh;
        uint8_t* ql = b[i].qs;
        std::memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n0 = 0; n0 < QK_K; n0 += 64, ql += 32) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n0 + j];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                int l2 = L[n0 + j + 32];
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = uint8_t(l1 | (l2 << 4));
            }
            m1 = uint8_t(m1 << 2);
            m2 = uint8_t(m2 << 2);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q6_K: 16 sub-blocks of 16 with int8 scales against f16 d; q in -32..31 stored +32 as 4 low bits (ql)
// and 2 high bits (qh). Per 128 values: ql[l] = v[l] | v[l+64] << 4, ql[l+32] = v[l+32] | v[l+96] << 4,
// qh[l] = high bits of v[l], v[l+32], v[l+64], v[l+96] at shifts 0, 2, 4, 6.

void dequantize_row_q6_K(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q6_K*>(src);
    const int64_t nb = superblocks_of(n, "q6_K");
    float* y = dst;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(b[i].d);
        const uint8_t* ql = b[i].ql;
        const uint8_t* qh = b[i].qh;
        const int8_t* sc = b[i].scales;
        for (int n0 = 0; n0 < QK_K; n0 += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = int8_t((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = int8_t((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = int8_t((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = int8_t((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

void quantize_row_q6_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q6_K*>(dst);
    const int64_t nb = superblocks_of(n, "q6_K");
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK_K;
        int8_t L[QK_K];
        float scales[16];
        float max_scale = 0, max_abs_scale = 0;
        search_scale_sym_groups(16, 16, 32, x, L, scales);
        for (int ib = 0; ib < 16; ++ib) {
            const float scale = scales[ib];
            const float abs_scale = std::fabs(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < kGroupMaxEps) {
            std::memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        b[i].d = f2h(1 / iscale);
        for (int ib = 0; ib < 16; ++ib) b[i].scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
        for (int j = 0; j < 16; ++j) {
            const float d = h2f(b[i].d) * b[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = int8_t(clampv(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
        }
        uint8_t* ql = b[i].ql;
        uint8_t* qh = b[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = uint8_t(q1 | (q3 << 4));
                ql[l + 32] = uint8_t(q2 | (q4 << 4));
                qh[l] = uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q8_K: float scale d, 256 int8 values, and the sum of each 16 values (bsums) that the K-quant dot
// products use for their min terms. Scale maps the signed largest-magnitude value onto -127.

void dequantize_row_q8_K(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const block_q8_K*>(src);
    const int64_t nb = superblocks_of(n, "q8_K");
    for (int64_t i = 0; i < nb; ++i)
        for (int j = 0; j < QK_K; ++j) dst[i * QK_K + j] = b[i].d * b[i].qs[j];
}

void quantize_row_q8_K(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<block_q8_K*>(dst);
    const int64_t nb = superblocks_of(n, "q8_K");
    for (int64_t i = 0; i < nb; ++i) {
        const float* x = src + i * QK_K;
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; ++j) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (!amax) {
            b[i].d = 0;
            std::memset(b[i].qs, 0, sizeof b[i].qs);
            std::memset(b[i].bsums, 0, sizeof b[i].bsums);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; ++j) b[i].qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += b[i].qs[j * 16 + ii];
            b[i].bsums[j] = int16_t(sum);
        }
        b[i].d = 1 / iscale;
    }
}

}  // namespace tessera
