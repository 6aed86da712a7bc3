// Tile kernels for the K-quant weight types (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) against Q8_K activations.
//
// Q8_K activations (one float scale per 256 values plus exact 16-value sums, llama.cpp's choice too) let
// a whole super-block accumulate in integers: per 32 values and (row, col), one u8 x s8 pairwise product
// to int16 and one int16 x int16 multiply-add by the sub-block scale into int32. Only at the end of the
// super-block does anything go to float (d_w * d_x). Weight levels are unpacked as unsigned bytes:
//     Q2_K u = q (0..3)       value = d*sc*q - dmin*m        min term from the activation's bsums
//     Q3_K u = q + 4 (0..7)   value = d*sc*(u - 4)           offset term from bsums
//     Q4_K u = q (0..15)      value = d*sc*q - dmin*m
//     Q5_K u = q (0..31)      value = d*sc*q - dmin*m
//     Q6_K u = q + 32 (0..63) value = d*sc*(u - 32)
// All u <= 63, so the u8 x s8 pair sums (<= 2 * 63 * 127) never saturate int16.
#include "backends/cpu/quant_dot_kernels.h"

#include <cstring>

namespace tessera::cpu::qdot {

#if TESSERA_QDOT_AVX2

namespace {

// Per weight row and super-block: the sub-block scales as int16 multipliers for each 32-value group
// (lanes 0-7 cover values 0-15 of the group, lanes 8-15 values 16-31), and the per-16-value multipliers
// of the activation sums: mins (subtracted, times dmin) or the level offset (subtracted, times d).
struct Prepared {
    alignas(32) int16_t scale[8][16];
    alignas(32) int16_t sum_mul[16];
    float d, dmin;  // dmin: weight of the min term (0 when the type has none)
};

inline void fill_pair(int16_t* dst, int lo, int hi) {
    for (int l = 0; l < 8; ++l) dst[l] = int16_t(lo);
    for (int l = 8; l < 16; ++l) dst[l] = int16_t(hi);
}

inline void k4_scale_min(int j, const uint8_t* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}

// 2-bit field k (0..3) of each byte of v, i.e. (v >> 2k) & 3.
inline __m256i bits2(__m256i v, int k) { return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), _mm256_set1_epi8(3)); }
// Bit g of each byte of v, moved to bit `to`.
inline __m256i bit_to(__m256i v, int g, int to) {
    const __m256i b = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(g)), _mm256_set1_epi8(1));
    return _mm256_sll_epi16(b, _mm_cvtsi32_si128(to));
}

struct Q2_KW {
    using Block = block_q2_K;
    static constexpr int kOffsetShift = -1;
    static void prepare(const Block& b, Prepared& p) {
        for (int g = 0; g < 8; ++g) fill_pair(p.scale[g], b.scales[2 * g] & 0xF, b.scales[2 * g + 1] & 0xF);
        for (int s = 0; s < 16; ++s) p.sum_mul[s] = int16_t(b.scales[s] >> 4);
        p.d = h2f(b.d);
        p.dmin = h2f(b.dmin);
    }
    // values 32g .. 32g + 31: half h = g / 4 uses qs[32h ..], field g % 4
    static __m256i unpack(const Block& b, int g) { return bits2(loadu256(b.qs + 32 * (g / 4)), g % 4); }
};

struct Q3_KW {
    using Block = block_q3_K;
    static constexpr int kOffsetShift = 2;  // offset 4
    static void prepare(const Block& b, Prepared& p) {
        int sc[16];
        for (int j = 0; j < 16; ++j) {
            const int lo = j < 8 ? (b.scales[j] & 0xF) : (b.scales[j - 8] >> 4);
            const int hi = (b.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
            sc[j] = (lo | (hi << 4)) - 32;
        }
        for (int g = 0; g < 8; ++g) fill_pair(p.scale[g], sc[2 * g], sc[2 * g + 1]);
        for (int s = 0; s < 16; ++s) p.sum_mul[s] = int16_t(sc[s]);
        p.d = h2f(b.d);
        p.dmin = 0;
    }
    // low 2 bits as Q2_K; the high bit of value 32g + l is bit g of hmask[l]
    static __m256i unpack(const Block& b, int g) {
        return _mm256_or_si256(bits2(loadu256(b.qs + 32 * (g / 4)), g % 4), bit_to(loadu256(b.hmask), g, 2));
    }
};

struct Q4_KW {
    using Block = block_q4_K;
    static constexpr int kOffsetShift = -1;
    static void prepare(const Block& b, Prepared& p) {
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            k4_scale_min(j, b.scales, &sc, &m);
            fill_pair(p.scale[j], sc, sc);
            p.sum_mul[2 * j] = p.sum_mul[2 * j + 1] = int16_t(m);
        }
        p.d = h2f(b.d);
        p.dmin = h2f(b.dmin);
    }
    // 64-value chunk g / 2 at qs[32 * (g / 2)]: low nibbles are values 0-31, high nibbles 32-63
    static __m256i unpack(const Block& b, int g) {
        const __m256i v = loadu256(b.qs + 32 * (g / 2));
        return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(4 * (g % 2))), _mm256_set1_epi8(0x0F));
    }
};

struct Q5_KW {
    using Block = block_q5_K;
    static constexpr int kOffsetShift = -1;
    static void prepare(const Block& b, Prepared& p) {
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            k4_scale_min(j, b.scales, &sc, &m);
            fill_pair(p.scale[j], sc, sc);
            p.sum_mul[2 * j] = p.sum_mul[2 * j + 1] = int16_t(m);
        }
        p.d = h2f(b.d);
        p.dmin = h2f(b.dmin);
    }
    // Q4_K's nibbles plus the fifth bit of value 32g + l: bit g of qh[l]
    static __m256i unpack(const Block& b, int g) {
        const __m256i v = loadu256(b.qs + 32 * (g / 2));
        const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(4 * (g % 2))), _mm256_set1_epi8(0x0F));
        return _mm256_or_si256(lo, bit_to(loadu256(b.qh), g, 4));
    }
};

struct Q6_KW {
    using Block = block_q6_K;
    static constexpr int kOffsetShift = 5;  // offset 32
    static void prepare(const Block& b, Prepared& p) {
        for (int g = 0; g < 8; ++g) fill_pair(p.scale[g], b.scales[2 * g], b.scales[2 * g + 1]);
        for (int s = 0; s < 16; ++s) p.sum_mul[s] = int16_t(b.scales[s]);
        p.d = h2f(b.d);
        p.dmin = 0;
    }
    // half h = g / 4 (ql + 64h, qh + 32h); field k = g % 4: low 4 bits from ql[32 * (k & 1) + l] (nibble k >> 1),
    // high 2 bits from qh[l] bits 2k..2k+1
    static __m256i unpack(const Block& b, int g) {
        const int h = g / 4, k = g % 4;
        const __m256i ql = loadu256(b.ql + 64 * h + 32 * (k & 1));
        const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(ql, _mm_cvtsi32_si128(4 * (k >> 1))), _mm256_set1_epi8(0x0F));
        const __m256i hi = _mm256_sll_epi16(bits2(loadu256(b.qh + 32 * h), k), _mm_cvtsi32_si128(4));
        return _mm256_or_si256(lo, hi);
    }
};

template <class W, int R, int C>
void tile(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
          int64_t out_row_stride) {
    using Block = typename W::Block;
    __m256 acc[R][C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    Prepared prep[R];

    for (int64_t b = 0; b < nblocks; ++b) {
        const Block* wb[R];
        const block_q8_K* xb[C];
        for (int r = 0; r < R; ++r) {
            wb[r] = reinterpret_cast<const Block*>(w + size_t(r) * w_stride) + b;
            W::prepare(*wb[r], prep[r]);
        }
        for (int c = 0; c < C; ++c) xb[c] = reinterpret_cast<const block_q8_K*>(a + size_t(c) * a_stride) + b;

        __m256i isum[R][C];
        for (int r = 0; r < R; ++r)
            for (int c = 0; c < C; ++c) isum[r][c] = _mm256_setzero_si256();
        for (int g = 0; g < 8; ++g) {
            __m256i x[C];
            for (int c = 0; c < C; ++c) x[c] = loadu256(xb[c]->qs + 32 * g);
            for (int r = 0; r < R; ++r) {
                const __m256i u = W::unpack(*wb[r], g);
                const __m256i sc = loadu256(prep[r].scale[g]);
                for (int c = 0; c < C; ++c) isum[r][c] = dot_s16(isum[r][c], _mm256_maddubs_epi16(u, x[c]), sc);
            }
        }
        for (int c = 0; c < C; ++c) {
            const __m256i bsums = loadu256(xb[c]->bsums);
            for (int r = 0; r < R; ++r) {
                const __m256i s = _mm256_madd_epi16(loadu256(prep[r].sum_mul), bsums);
                __m256i is = isum[r][c];
                if constexpr (W::kOffsetShift >= 0) is = _mm256_sub_epi32(is, _mm256_slli_epi32(s, W::kOffsetShift));
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(prep[r].d * xb[c]->d), acc[r][c]);
                if constexpr (W::kOffsetShift < 0)
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(-prep[r].dmin * xb[c]->d), acc[r][c]);
            }
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) out[r * out_row_stride + c] = hsum(acc[r][c]);
}

template <class W, int R>
TileFn pick_c(int C) {
    switch (C) {
        case 1: return tile<W, R, 1>;
        case 2: return tile<W, R, 2>;
        case 3: return tile<W, R, 3>;
        case 4: return tile<W, R, 4>;
    }
    return nullptr;
}

template <class W>
TileFn pick(int R, int C) {
    switch (R) {
        case 1: return pick_c<W, 1>(C);
        case 2: return pick_c<W, 2>(C);
        case 3: return pick_c<W, 3>(C);
        case 4: return pick_c<W, 4>(C);
    }
    return nullptr;
}

}  // namespace

TileFn k_tile(DType w, int R, int C) {
    switch (w) {
        case DType::Q2_K: return pick<Q2_KW>(R, C);
        case DType::Q3_K: return pick<Q3_KW>(R, C);
        case DType::Q4_K: return pick<Q4_KW>(R, C);
        case DType::Q5_K: return pick<Q5_KW>(R, C);
        case DType::Q6_K: return pick<Q6_KW>(R, C);
        default: return nullptr;
    }
}

#else

TileFn k_tile(DType, int, int) { return nullptr; }

#endif

}  // namespace tessera::cpu::qdot
