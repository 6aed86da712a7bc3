// aarch64 tile kernels for the 32-element weight types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4) against
// Q8_0 activations; the x86 ones are in quant_dot_legacy.cpp, the shared building blocks in quant_dot_neon.h.
//
// Per block, each weight row is unpacked once into its 32 signed levels q (Q4_0: nibble - 8, Q5_0: 5 bits
// - 16, Q8_0: as stored, IQ4_NL/MXFP4: grid levels; the _1 types' unsigned levels with their min kept
// aside) and shared by the C activation columns. Then for every (row, col):
//     acc += float(sum(q * x)) * (d_w * d_x)        the int8 dot exact in int32, scaled once per block
//     (+ m_w * d_x * sum(x) for the _1 types, sum(x) exact from the int8 activations)
// With i8mm, pairs of rows and pairs of columns go through SMMLA: four instructions give the 2x2 block of
// 32-value dots that would take eight SDOTs.
#include "backends/cpu/quant_dot_neon.h"
#include "backends/cpu/quant_dot_tile_pick.h"

#if TESSERA_QDOT_NEON

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

namespace {

using neon::Group32;

inline float h2f(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }

struct Q4_0W {
    using Block = block_q4_0;
    static constexpr bool kHasMin = false;
    static Group32 unpack(const Block& b) {
        const Group32 n = neon::nibbles(b.qs);
        return {neon::sub(n.lo, 8), neon::sub(n.hi, 8)};
    }
    static float scale(const Block& b) { return h2f(b.d); }
    static float min(const Block&) { return 0; }
};
struct Q4_1W {
    using Block = block_q4_1;
    static constexpr bool kHasMin = true;
    static Group32 unpack(const Block& b) { return neon::nibbles(b.qs); }
    static float scale(const Block& b) { return h2f(b.d); }
    static float min(const Block& b) { return h2f(b.m); }
};
struct Q5_0W {
    using Block = block_q5_0;
    static constexpr bool kHasMin = false;
    static Group32 unpack(const Block& b) {
        const Group32 n = neon::nibbles(b.qs), h = neon::fifth_bits(b.qh);
        return {neon::sub(neon::add(n.lo, h.lo), 16), neon::sub(neon::add(n.hi, h.hi), 16)};
    }
    static float scale(const Block& b) { return h2f(b.d); }
    static float min(const Block&) { return 0; }
};
struct Q5_1W {
    using Block = block_q5_1;
    static constexpr bool kHasMin = true;
    static Group32 unpack(const Block& b) {
        const Group32 n = neon::nibbles(b.qs), h = neon::fifth_bits(b.qh);
        return {neon::add(n.lo, h.lo), neon::add(n.hi, h.hi)};
    }
    static float scale(const Block& b) { return h2f(b.d); }
    static float min(const Block& b) { return h2f(b.m); }
};
struct Q8_0W {
    using Block = block_q8_0;
    static constexpr bool kHasMin = false;
    static Group32 unpack(const Block& b) { return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16)}; }
    static float scale(const Block& b) { return h2f(b.d); }
    static float min(const Block&) { return 0; }
};
struct IQ4_NLW {
    using Block = block_iq4_nl;
    static constexpr bool kHasMin = false;
    static Group32 unpack(const Block& b) { return neon::grid_levels(b.qs, vld1q_s8(kIQ4Grid)); }
    static float scale(const Block& b) { return h2f(b.d); }
    static float min(const Block&) { return 0; }
};
struct MXFP4W {
    using Block = block_mxfp4;
    static constexpr bool kHasMin = false;
    static Group32 unpack(const Block& b) { return neon::grid_levels(b.qs, vld1q_s8(kMXFP4Grid)); }
    static float scale(const Block& b) { return mxfp4_half_scale(b.e); }
    static float min(const Block&) { return 0; }
};

// One activation column's block: its levels, scale and (for the _1 types) d_x * sum(x).
struct Col {
    Group32 x;
    float d, dsum;
};
template <class W>
inline Col load_col(const uint8_t* a, size_t a_stride, int c, int64_t b) {
    const block_q8_0& xb = reinterpret_cast<const block_q8_0*>(a + size_t(c) * a_stride)[b];
    Col col{{vld1q_s8(xb.qs), vld1q_s8(xb.qs + 16)}, h2f(xb.d), 0.0f};
    if constexpr (W::kHasMin) col.dsum = col.d * float(vaddlvq_s8(col.x.lo) + vaddlvq_s8(col.x.hi));
    return col;
}

// R rows x C columns with SDOT (or SMULL/SADALP): R x C float accumulators of 4 lanes.
template <class W, int R, int C>
void dot_pass(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
              int64_t out_row_stride) {
    using Block = typename W::Block;
    float32x4_t acc[R][C];
    float mins[R][C];  // the _1 types' min terms
    TESSERA_UNROLL for (int r = 0; r < R; ++r) TESSERA_UNROLL for (int c = 0; c < C; ++c) {
        acc[r][c] = vdupq_n_f32(0.0f);
        mins[r][c] = 0.0f;
    }
    for (int64_t b = 0; b < nblocks; ++b) {
        Col x[C];
        TESSERA_UNROLL for (int c = 0; c < C; ++c) x[c] = load_col<W>(a, a_stride, c, b);
        TESSERA_UNROLL for (int r = 0; r < R; ++r) {
            const Block& wb = reinterpret_cast<const Block*>(w + size_t(r) * w_stride)[b];
            const Group32 q = W::unpack(wb);
            const float dw = W::scale(wb);
            TESSERA_UNROLL for (int c = 0; c < C; ++c) {
                const int32x4_t p = neon::dot16(neon::dot16(vdupq_n_s32(0), q.lo, x[c].x.lo), q.hi, x[c].x.hi);
                acc[r][c] = vfmaq_n_f32(acc[r][c], vcvtq_f32_s32(p), dw * x[c].d);
                if constexpr (W::kHasMin) mins[r][c] += W::min(wb) * x[c].dsum;
            }
        }
    }
    TESSERA_UNROLL for (int r = 0; r < R; ++r) TESSERA_UNROLL for (int c = 0; c < C; ++c)
        out[r * out_row_stride + c] = vaddvq_f32(acc[r][c]) + mins[r][c];
}

#if defined(__ARM_FEATURE_MATMUL_INT8)
// [a's bytes 0-7 | b's bytes 0-7] and [a's 8-15 | b's 8-15]: two rows (or columns) of 8 values side by side,
// the operand layout of SMMLA.
inline int8x16_t pair_lo(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}
inline int8x16_t pair_hi(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}

// R rows x C columns (both even) with SMMLA: one accumulator per 2x2 block, lanes [r0c0, r0c1, r1c0, r1c1].
template <class W, int R, int C>
void mmla_pass(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
               int64_t out_row_stride) {
    static_assert(R % 2 == 0 && C % 2 == 0, "SMMLA works on pairs of rows and columns");
    using Block = typename W::Block;
    constexpr int RP = R / 2, CP = C / 2;
    float32x4_t acc[RP][CP];
    TESSERA_UNROLL for (int i = 0; i < RP; ++i) TESSERA_UNROLL for (int j = 0; j < CP; ++j) acc[i][j] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nblocks; ++b) {
        int8x16_t xp[CP][4];
        float32x4_t dx[CP], dsum[CP];  // [c0, c1, c0, c1]
        TESSERA_UNROLL for (int j = 0; j < CP; ++j) {
            const Col c0 = load_col<W>(a, a_stride, 2 * j, b), c1 = load_col<W>(a, a_stride, 2 * j + 1, b);
            xp[j][0] = pair_lo(c0.x.lo, c1.x.lo);
            xp[j][1] = pair_hi(c0.x.lo, c1.x.lo);
            xp[j][2] = pair_lo(c0.x.hi, c1.x.hi);
            xp[j][3] = pair_hi(c0.x.hi, c1.x.hi);
            const float d2[4] = {c0.d, c1.d, c0.d, c1.d}, s2[4] = {c0.dsum, c1.dsum, c0.dsum, c1.dsum};
            dx[j] = vld1q_f32(d2);
            dsum[j] = vld1q_f32(s2);
        }
        TESSERA_UNROLL for (int i = 0; i < RP; ++i) {
            const Block& w0 = reinterpret_cast<const Block*>(w + size_t(2 * i) * w_stride)[b];
            const Block& w1 = reinterpret_cast<const Block*>(w + size_t(2 * i + 1) * w_stride)[b];
            const Group32 q0 = W::unpack(w0), q1 = W::unpack(w1);
            const int8x16_t wp[4] = {pair_lo(q0.lo, q1.lo), pair_hi(q0.lo, q1.lo), pair_lo(q0.hi, q1.hi),
                                     pair_hi(q0.hi, q1.hi)};
            const float dw2[4] = {W::scale(w0), W::scale(w0), W::scale(w1), W::scale(w1)};
            const float32x4_t dw = vld1q_f32(dw2);
            [[maybe_unused]] float32x4_t mw;
            if constexpr (W::kHasMin) {
                const float m2[4] = {W::min(w0), W::min(w0), W::min(w1), W::min(w1)};
                mw = vld1q_f32(m2);
            }
            TESSERA_UNROLL for (int j = 0; j < CP; ++j) {
                int32x4_t p = vmmlaq_s32(vdupq_n_s32(0), wp[0], xp[j][0]);
                p = vmmlaq_s32(p, wp[1], xp[j][1]);
                p = vmmlaq_s32(p, wp[2], xp[j][2]);
                p = vmmlaq_s32(p, wp[3], xp[j][3]);
                acc[i][j] = vfmaq_f32(acc[i][j], vcvtq_f32_s32(p), vmulq_f32(dw, dx[j]));
                if constexpr (W::kHasMin) acc[i][j] = vfmaq_f32(acc[i][j], mw, dsum[j]);
            }
        }
    }
    TESSERA_UNROLL for (int i = 0; i < RP; ++i) TESSERA_UNROLL for (int j = 0; j < CP; ++j) {
        float* o = out + 2 * i * out_row_stride + 2 * j;
        o[0] = vgetq_lane_f32(acc[i][j], 0);
        o[1] = vgetq_lane_f32(acc[i][j], 1);
        o[out_row_stride] = vgetq_lane_f32(acc[i][j], 2);
        o[out_row_stride + 1] = vgetq_lane_f32(acc[i][j], 3);
    }
}
#endif

// One pass over the blocks for R rows x C columns: SMMLA for the even part where there is i8mm, SDOT for
// the rest (decode's single column, an odd row count).
template <class W, int R, int C>
void pass(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
          int64_t out_row_stride) {
#if defined(__ARM_FEATURE_MATMUL_INT8)
    if constexpr (R % 2 == 0 && C >= 2) {
        constexpr int CE = C - C % 2;
        mmla_pass<W, R, CE>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
        if constexpr (CE < C)
            dot_pass<W, R, 1>(nblocks, w, w_stride, a + size_t(CE) * a_stride, a_stride, out + CE, out_row_stride);
        return;
    }
#endif
    dot_pass<W, R, C>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
}

// Passes of at most 8 / R columns, so a pass's accumulators (R x C vectors) and columns (2C vectors) stay
// within NEON's 32 registers.
template <class W, int R, int C>
struct Pass {
    static constexpr int kMaxCols = 8 / R > 0 ? 8 / R : 1;
    static void run(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
                    int64_t out_row_stride) {
        pass<W, R, C>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
    }
};

}  // namespace

TileFn legacy_tile(DType w, int R, int C) {
    switch (w) {
        case DType::Q4_0: return pick_tile<Pass, Q4_0W>(R, C);
        case DType::Q4_1: return pick_tile<Pass, Q4_1W>(R, C);
        case DType::Q5_0: return pick_tile<Pass, Q5_0W>(R, C);
        case DType::Q5_1: return pick_tile<Pass, Q5_1W>(R, C);
        case DType::Q8_0: return pick_tile<Pass, Q8_0W>(R, C);
        case DType::IQ4_NL: return pick_tile<Pass, IQ4_NLW>(R, C);
        case DType::MXFP4: return pick_tile<Pass, MXFP4W>(R, C);
        default: return nullptr;
    }
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot

#endif  // TESSERA_QDOT_NEON
