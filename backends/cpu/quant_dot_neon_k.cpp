// aarch64 tile kernels for the K-quant weight types (Q2_K .. Q6_K) and IQ4_XS against Q8_K activations; the
// x86 ones are in quant_dot_k.cpp, the shared building blocks in quant_dot_neon.h.
//
// A super-block (256 values) accumulates in integers: per 32 values and (row, col) one or two int8 dots into
// int32 lanes, times the sub-block's integer scale; only at the end of the super-block is anything converted
// to float (d_w * d_x). The min terms of Q2_K/Q4_K/Q5_K come from the activations' exact 16-value sums:
//     value = d*sc*q - dmin*m   =>   dot = d*d_x*sum_g(sc_g * sum(q*x)) - dmin*d_x*sum_j(m_j * bsum_j)
// Levels are unpacked signed (Q3_K: q - 4, Q6_K: q - 32, IQ4_XS: grid levels) or, where a min term carries
// the offset, unsigned (Q2_K: 0..3, Q4_K: 0..15, Q5_K: 0..31); every one fits an int8.
#include "backends/cpu/quant_dot_neon.h"
#include "backends/cpu/quant_dot_tile_pick.h"

#if TESSERA_QDOT_NEON

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

namespace {

using neon::Group32;

inline float h2f(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

inline uint32_t load32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Per weight row and super-block: the integer scale of each 16 values (sc16; a 32-value sub-block's scale
// in both of its halves) and, for the types with mins, the min of each 16 values (as int16 lanes).
struct Prepared {
    int16_t sc[16];
    int16x8_t m_lo, m_hi;  // mins of 16-value groups 0-7 and 8-15 (zero when the type has none)
    float d, dmin;
};

// Bits 2k..2k+1 of each byte (Q2_K's and Q3_K's low bits).
inline uint8x16_t bits2(uint8x16_t v, int k) { return vandq_u8(vshlq_u8(v, vdupq_n_s8(int8_t(-2 * k))), vdupq_n_u8(3)); }
// (bit g of each byte) << to.
inline uint8x16_t bit_to(uint8x16_t v, int g, int to) {
    return vandq_u8(vtstq_u8(v, vdupq_n_u8(uint8_t(1u << g))), vdupq_n_u8(uint8_t(1u << to)));
}
inline int8x16_t s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }

// Q4_K / Q5_K 12-byte packing -> 8 scales and 8 mins of the 32-value sub-blocks (6 bits each).
inline void k4_scales_mins(const uint8_t* q, Prepared& p) {
    const uint32_t a = load32(q), b = load32(q + 4), c = load32(q + 8);
    const uint32_t sc[2] = {a & 0x3f3f3f3fu, (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u)};
    const uint32_t mn[2] = {b & 0x3f3f3f3fu, ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u)};
    uint8_t s8v[8], m8v[8];
    std::memcpy(s8v, sc, 8);
    std::memcpy(m8v, mn, 8);
    for (int j = 0; j < 8; ++j) p.sc[2 * j] = p.sc[2 * j + 1] = s8v[j];
    const uint8x8_t m = vld1_u8(m8v);
    const uint8x16_t m2 = vzip1q_u8(vcombine_u8(m, m), vcombine_u8(m, m));  // each min twice: per 16 values
    p.m_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m2)));
    p.m_hi = vreinterpretq_s16_u16(vmovl_high_u8(m2));
}

struct Q2_KW {
    using Block = block_q2_K;
    static constexpr bool kPer32 = false;  // one scale per 16 values
    static constexpr bool kHasMin = true;
    static void prepare(const Block& b, Prepared& p) {
        for (int j = 0; j < 16; ++j) p.sc[j] = b.scales[j] & 0xF;
        const uint8x16_t m = vshrq_n_u8(vld1q_u8(b.scales), 4);
        p.m_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(m)));
        p.m_hi = vreinterpretq_s16_u16(vmovl_high_u8(m));
        p.d = h2f(b.d);
        p.dmin = h2f(b.dmin);
    }
    // values 32g .. 32g + 31: field g % 4 of qs[32 * (g / 4) ..]
    static Group32 unpack(const Block& b, int g) {
        const uint8_t* q = b.qs + 32 * (g / 4);
        return {s8(bits2(vld1q_u8(q), g % 4)), s8(bits2(vld1q_u8(q + 16), g % 4))};
    }
};

struct Q3_KW {
    using Block = block_q3_K;
    static constexpr bool kPer32 = false;  // one scale per 16 values
    static constexpr bool kHasMin = false;
    // 12 bytes: low nibbles of bytes 0-7 are scales 0-7, high nibbles scales 8-15; byte 8 + j % 4 holds the
    // top 2 bits of scale j at bits 2 * (j / 4). Stored with +32.
    static void prepare(const Block& b, Prepared& p) {
        const uint8_t* q = b.scales;
        for (int j = 0; j < 16; ++j) {
            const int lo = j < 8 ? q[j] & 0xF : q[j - 8] >> 4;
            const int hi = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
            p.sc[j] = int16_t((lo | (hi << 4)) - 32);
        }
        p.m_lo = p.m_hi = vdupq_n_s16(0);
        p.d = h2f(b.d);
        p.dmin = 0;
    }
    // low 2 bits as Q2_K, the high bit of value 32g + l is bit g of hmask[l]; level = that - 4
    static Group32 unpack(const Block& b, int g) {
        const uint8_t* q = b.qs + 32 * (g / 4);
        const uint8x16_t l0 = vorrq_u8(bits2(vld1q_u8(q), g % 4), bit_to(vld1q_u8(b.hmask), g, 2));
        const uint8x16_t l1 = vorrq_u8(bits2(vld1q_u8(q + 16), g % 4), bit_to(vld1q_u8(b.hmask + 16), g, 2));
        return {neon::sub(s8(l0), 4), neon::sub(s8(l1), 4)};
    }
};

// Q4_K's and Q5_K's 4-bit fields: 64-value chunk g / 2 at qs[32 * (g / 2)], low nibbles its values 0-31,
// high nibbles 32-63.
inline Group32 k4_nibbles(const uint8_t* qs, int g) {
    const uint8_t* q = qs + 32 * (g / 2);
    const uint8x16_t v0 = vld1q_u8(q), v1 = vld1q_u8(q + 16);
    if (g % 2 == 0) return {s8(vandq_u8(v0, vdupq_n_u8(0x0F))), s8(vandq_u8(v1, vdupq_n_u8(0x0F)))};
    return {s8(vshrq_n_u8(v0, 4)), s8(vshrq_n_u8(v1, 4))};
}

struct Q4_KW {
    using Block = block_q4_K;
    static constexpr bool kHasMin = true;
    static constexpr bool kPer32 = true;
    static void prepare(const Block& b, Prepared& p) {
        k4_scales_mins(b.scales, p);
        p.d = h2f(b.d);
        p.dmin = h2f(b.dmin);
    }
    static Group32 unpack(const Block& b, int g) { return k4_nibbles(b.qs, g); }
};

struct Q5_KW {
    using Block = block_q5_K;
    static constexpr bool kHasMin = true;
    static constexpr bool kPer32 = true;
    static void prepare(const Block& b, Prepared& p) {
        k4_scales_mins(b.scales, p);
        p.d = h2f(b.d);
        p.dmin = h2f(b.dmin);
    }
    // Q4_K's nibbles plus the fifth bit of value 32g + l: bit g of qh[l]
    static Group32 unpack(const Block& b, int g) {
        const Group32 n = k4_nibbles(b.qs, g);
        return {neon::add(n.lo, s8(bit_to(vld1q_u8(b.qh), g, 4))), neon::add(n.hi, s8(bit_to(vld1q_u8(b.qh + 16), g, 4)))};
    }
};

struct Q6_KW {
    using Block = block_q6_K;
    static constexpr bool kPer32 = false;  // one scale per 16 values
    static constexpr bool kHasMin = false;
    static void prepare(const Block& b, Prepared& p) {
        for (int j = 0; j < 16; ++j) p.sc[j] = b.scales[j];
        p.m_lo = p.m_hi = vdupq_n_s16(0);
        p.d = h2f(b.d);
        p.dmin = 0;
    }
    // half h = g / 4 (ql + 64h, qh + 32h); field k = g % 4: low 4 bits from ql[32 * (k & 1) + l] (nibble
    // k >> 1), high 2 bits from qh[l] bits 2k..2k+1; level = that - 32
    static Group32 unpack(const Block& b, int g) {
        const int h = g / 4, k = g % 4;
        const uint8_t* ql = b.ql + 64 * h + 32 * (k & 1);
        const uint8_t* qh = b.qh + 32 * h;
        auto half = [&](int o) {
            const uint8x16_t l = vld1q_u8(ql + o);
            const uint8x16_t lo = (k >> 1) ? vshrq_n_u8(l, 4) : vandq_u8(l, vdupq_n_u8(0x0F));
            return neon::sub(s8(vorrq_u8(lo, vshlq_n_u8(bits2(vld1q_u8(qh + o), k), 4))), 32);
        };
        return {half(0), half(16)};
    }
};

struct IQ4_XSW {
    using Block = block_iq4_xs;
    static constexpr bool kHasMin = false;
    static constexpr bool kPer32 = true;
    // group g's scale ls - 32: ls = low nibble g of scales_l | bits 2g..2g+1 of scales_h << 4
    static void prepare(const Block& b, Prepared& p) {
        for (int g = 0; g < 8; ++g) {
            const int ls = ((b.scales_l[g / 2] >> (4 * (g % 2))) & 0xF) | (((b.scales_h >> (2 * g)) & 3) << 4);
            p.sc[2 * g] = p.sc[2 * g + 1] = int16_t(ls - 32);
        }
        p.m_lo = p.m_hi = vdupq_n_s16(0);
        p.d = h2f(b.d);
        p.dmin = 0;
    }
    // values 32g .. 32g + 31: the 16 bytes at qs + 16g, low nibbles first
    static Group32 unpack(const Block& b, int g) { return neon::grid_levels(b.qs + 16 * g, vld1q_s8(kIQ4Grid)); }
};

// sum_j m_j * bsum_j over the 16 groups of 16 values (exact: |m| <= 63, |bsum| <= 16 * 127).
inline int32_t min_dot(const Prepared& p, const block_q8_K& x) {
    const int32x4_t s = vmull_s16(vget_low_s16(p.m_lo), vld1_s16(x.bsums));
    const int32x4_t t = vmlal_high_s16(vmlal_s16(s, vget_high_s16(p.m_lo), vld1_s16(x.bsums + 4)), p.m_hi,
                                       vld1q_s16(x.bsums + 8));
    return vaddvq_s32(vmlal_s16(t, vget_low_s16(p.m_hi), vld1_s16(x.bsums + 8)));
}

template <class W, int R, int C>
void pass(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
          int64_t out_row_stride) {
    using Block = typename W::Block;
    float32x4_t acc[R][C];
    float mins[R][C];
    TESSERA_UNROLL for (int r = 0; r < R; ++r) TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        acc[r][c] = vdupq_n_f32(0.0f);
        mins[r][c] = 0.0f;
    }
    Prepared prep[R];
    for (int64_t b = 0; b < nblocks; ++b) {
        const Block* wb[R];
        const block_q8_K* xb[C];
        TESSERA_UNROLL for (int r = 0; r < R; ++r) {
            wb[r] = reinterpret_cast<const Block*>(w + size_t(r) * w_stride) + b;
            W::prepare(*wb[r], prep[r]);
        }
        TESSERA_UNROLL for (int c = 0; c < C; ++c) xb[c] = reinterpret_cast<const block_q8_K*>(a + size_t(c) * a_stride) + b;
        int32x4_t isum[R][C];
        TESSERA_UNROLL for (int r = 0; r < R; ++r) TESSERA_UNROLL for (int c = 0; c < C; ++c) isum[r][c] = vdupq_n_s32(0);
        TESSERA_UNROLL for (int g = 0; g < 8; ++g) {
            Group32 x[C];
            TESSERA_UNROLL for (int c = 0; c < C; ++c) x[c] = {vld1q_s8(xb[c]->qs + 32 * g), vld1q_s8(xb[c]->qs + 32 * g + 16)};
            TESSERA_UNROLL for (int r = 0; r < R; ++r) {
                const Group32 q = W::unpack(*wb[r], g);
                const int16_t s0 = prep[r].sc[2 * g], s1 = prep[r].sc[2 * g + 1];
                TESSERA_UNROLL for (int c = 0; c < C; ++c) {
                    if constexpr (W::kPer32) {  // one scale for the 32 values
                        const int32x4_t p = neon::dot16(neon::dot16(vdupq_n_s32(0), q.lo, x[c].lo), q.hi, x[c].hi);
                        isum[r][c] = vmlaq_n_s32(isum[r][c], p, s0);
                    } else {
                        isum[r][c] = vmlaq_n_s32(isum[r][c], neon::dot16(vdupq_n_s32(0), q.lo, x[c].lo), s0);
                        isum[r][c] = vmlaq_n_s32(isum[r][c], neon::dot16(vdupq_n_s32(0), q.hi, x[c].hi), s1);
                    }
                }
            }
        }
        TESSERA_UNROLL for (int r = 0; r < R; ++r) TESSERA_UNROLL for (int c = 0; c < C; ++c) {
            acc[r][c] = vfmaq_n_f32(acc[r][c], vcvtq_f32_s32(isum[r][c]), prep[r].d * xb[c]->d);
            if constexpr (W::kHasMin) mins[r][c] -= prep[r].dmin * xb[c]->d * float(min_dot(prep[r], *xb[c]));
        }
    }
    TESSERA_UNROLL for (int r = 0; r < R; ++r) TESSERA_UNROLL for (int c = 0; c < C; ++c)
        out[r * out_row_stride + c] = vaddvq_f32(acc[r][c]) + mins[r][c];
}

// Column passes of at most 8 / R columns: R x C int32 and float accumulators within NEON's 32 registers.
template <class W, int R, int C>
struct Pass {
    static constexpr int kMaxCols = 8 / R > 0 ? 8 / R : 1;
    static void run(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
                    int64_t out_row_stride) {
        pass<W, R, C>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
    }
};

}  // namespace

TileFn k_tile(DType w, int R, int C) {
    switch (w) {
        case DType::Q2_K: return pick_tile<Pass, Q2_KW>(R, C);
        case DType::Q3_K: return pick_tile<Pass, Q3_KW>(R, C);
        case DType::Q4_K: return pick_tile<Pass, Q4_KW>(R, C);
        case DType::Q5_K: return pick_tile<Pass, Q5_KW>(R, C);
        case DType::Q6_K: return pick_tile<Pass, Q6_KW>(R, C);
        case DType::IQ4_XS: return pick_tile<Pass, IQ4_XSW>(R, C);
        default: return nullptr;
    }
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot

#endif  // TESSERA_QDOT_NEON
