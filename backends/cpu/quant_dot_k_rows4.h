// Private to backends/cpu/quant_dot_k.cpp: decode (one activation column) over four weight rows for Q4_K,
// Q5_K and Q6_K, the types of Q4_K_M / Q5_K_M files.
//
// Why a kernel of its own: decode is bound by instructions, not memory, on a 2-core Zen 3 (a 512-row Q4_K
// matvec that fits in L2 runs no faster per core than one streaming from DRAM), and the R x C tile spends
// about half of its instructions outside the 5.5 per 32 values the dot needs: per row and super-block it
// decoded the 12 scale bytes with a dozen scalar steps and four inserts, widened d and dmin one at a time,
// turned both integer sums into floats with their own broadcast and FMA, and, with four rows' eight groups
// interleaved, spilled a third of its vectors to the stack. Here each row's super-block runs start to end
// (few live registers), its scales come out of two 64-bit words, and the four rows' integer sums are
// gathered into one vector, [row 0-3 main sums | row 0-3 min sums], so the conversion to float, the scale
// product and the FMA happen once per four rows. The scale of each 32 values still multiplies the u8 x s8
// pair sums in int16 (vpmaddwd), exactly as the tile does: the same integers, summed in another order.
#pragma once
#include "backends/cpu/quant_dot_k_blocks.h"

#include <type_traits>

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

#if TESSERA_QDOT_AVX2

namespace {

// Byte shuffles that spread int16 lane i of each 128-bit half over the whole half (vpshufb).
struct Lane16Shuffle {
    alignas(32) int8_t v[8][32];
};
constexpr Lane16Shuffle make_lane16_shuffle() {
    Lane16Shuffle t{};
    for (int i = 0; i < 8; ++i)
        for (int b = 0; b < 32; ++b) t.v[i][b] = int8_t(2 * i + (b % 2));
    return t;
}
constexpr Lane16Shuffle kLane16 = make_lane16_shuffle();

inline __m256i spread_lane16(__m256i v, int i) {
    return _mm256_shuffle_epi8(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(kLane16.v[i])));
}

// GCC re-associates a chain of integer adds into a tree: it computes all of a super-block's products first
// and, four rows at a time, spills them to the stack. An empty asm that "changes" the running sum keeps the
// chain in order (no instruction is emitted).
inline void keep_in_order(__m256i& v) { asm("" : "+x"(v)); }

inline uint64_t load64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

// The sums of each vector's eight int32 lanes, as [a b c d] in each 128-bit half (half sums: a's total is
// lane 0 + lane 4). Three shuffle-and-add steps per pair of vectors instead of a horizontal sum per vector.
inline __m256i sum_lanes4(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}

// Q4_K / Q5_K 12-byte scales as [scale 0-7 | min 0-7] in int16 lanes (see k4_scales_mins for the packing):
// the low six bits of bytes 0-7 are scales and mins 0-3, bytes 8-11 give the low four bits of scales and
// mins 4-7 (low / high nibble) and bits 6-7 of bytes 0-7 their top two bits. Two 64-bit words, then one
// byte shuffle from [sc 0-3, m 0-3, sc 4-7, m 4-7] into order and one widening.
inline __m256i k4_scales_mins16(const uint8_t* q) {
    const uint64_t a = load64(q), c = load32(q + 8);
    const uint64_t lo = a & 0x3f3f3f3f3f3f3f3full;
    const uint64_t hi = ((c | (c << 28)) & 0x0f0f0f0f0f0f0f0full) | ((a >> 2) & 0x3030303030303030ull);
    const __m128i v = _mm_set_epi64x(int64_t(hi), int64_t(lo));
    const __m128i order = _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15);
    return _mm256_cvtepu8_epi16(_mm_shuffle_epi8(v, order));
}

// One Q4_K / Q5_K row's super-block against activation block x: `main` = sum of scale * q * x_q, `mins` =
// sum of min * (x_q summed over each 32 values), each spread over eight int32 lanes. bs32: the activation's
// 32-value sums in the high half's int16 lanes, zeros in the low half (the mins' half of sm).
template <bool kFifthBit, class Block>
inline void k4_row(const Block& b, const int8_t* xq, __m256i bs32, __m256i& main, __m256i& mins) {
    const __m256i sm = k4_scales_mins16(b.scales);
    const __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00);
    __m256i qh;
    if constexpr (kFifthBit) qh = loadu256(b.qh);
    __m256i acc = _mm256_setzero_si256();
    TESSERA_UNROLL for (int j = 0; j < 4; ++j) {  // values 64j .. 64j + 63: groups 2j (low nibbles), 2j + 1
        __m256i lo = k4_nibbles(b.qs, 2 * j), hi = k4_nibbles(b.qs, 2 * j + 1);
        if constexpr (kFifthBit) {
            lo = _mm256_or_si256(lo, bit_to(qh, 2 * j, 4));
            hi = _mm256_or_si256(hi, bit_to(qh, 2 * j + 1, 4));
        }
        acc = dot_s16(acc, _mm256_maddubs_epi16(lo, loadu256(xq + 64 * j)), spread_lane16(sc, 2 * j));
        acc = dot_s16(acc, _mm256_maddubs_epi16(hi, loadu256(xq + 64 * j + 32)), spread_lane16(sc, 2 * j + 1));
        keep_in_order(acc);
    }
    main = acc;
    mins = _mm256_madd_epi16(sm, bs32);
}

// One Q6_K row's super-block: sum of scale * (q - 32) * x_q over eight int32 lanes. Per 128 values, the two
// 32-byte loads of low nibbles and one of high bits give four groups (the masks and shifts of each 2-bit
// field chosen so that no 16-bit shift carries bits across bytes).
inline __m256i q6_row(const block_q6_K& b, const int8_t* xq, __m256i bsums) {
    const __m256i sc16 = widen_s8(b.scales);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i acc = _mm256_setzero_si256();
    TESSERA_UNROLL for (int h = 0; h < 2; ++h) {
        const __m256i q1 = loadu256(b.ql + 64 * h), q2 = loadu256(b.ql + 64 * h + 32), qh = loadu256(b.qh + 32 * h);
        __m256i u[4];
        u[0] = _mm256_or_si256(_mm256_and_si256(q1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)), 4));
        u[1] = _mm256_or_si256(_mm256_and_si256(q2, m4), _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x0C)), 2));
        u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q1, 4), m4), _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
        u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q2, 4), m4),
                               _mm256_srli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(char(0xC0))), 2));
        TESSERA_UNROLL for (int k = 0; k < 4; ++k) {
            const int g = 4 * h + k;
            acc = dot_s16(acc, _mm256_maddubs_epi16(u[k], loadu256(xq + 32 * g)), group_scales(sc16, g));
            keep_in_order(acc);
        }
    }
    // u = q + 32 was dotted: take 32 * scale * (x_q summed over each 16 values) back off.
    return _mm256_sub_epi32(acc, _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 5));
}

// out[r * out_row_stride] for rows r = 0..3; acc holds row r's float sum in lanes r and r + 4.
inline void store_rows4(__m256 acc, float* out, int64_t out_row_stride) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    alignas(16) float v[4];
    _mm_store_ps(v, s);
    TESSERA_UNROLL for (int r = 0; r < 4; ++r) out[r * out_row_stride] = v[r];
}

template <class W>
void k_rows4(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, float* out, int64_t out_row_stride) {
    using Block = typename W::Block;
    const Block* rows[4];
    TESSERA_UNROLL for (int r = 0; r < 4; ++r) rows[r] = reinterpret_cast<const Block*>(w + size_t(r) * w_stride);
    const auto* x = reinterpret_cast<const block_q8_K*>(a);
    __m256 acc = _mm256_setzero_ps();

    for (int64_t b = 0; b < nblocks; ++b) {
        prefetch_next_tile<4, sizeof(Block)>(w, w_stride, b);
        const __m256i bsums = loadu256(x[b].bsums);
        if constexpr (std::is_same_v<Block, block_q6_K>) {
            __m256i dot[4];
            TESSERA_UNROLL for (int r = 0; r < 4; ++r) dot[r] = q6_row(rows[r][b], x[b].qs, bsums);
            const __m256i s = sum_lanes4(dot[0], dot[1], dot[2], dot[3]);  // [rows 0-3 | rows 0-3]
            __m128i h = _mm_cvtsi32_si128(rows[0][b].d);
            h = _mm_insert_epi16(h, rows[1][b].d, 1);
            h = _mm_insert_epi16(h, rows[2][b].d, 2);
            h = _mm_insert_epi16(h, rows[3][b].d, 3);
            const __m128 d = _mm_mul_ps(_mm_cvtph_ps(h), _mm_set1_ps(x[b].d));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set_m128(d, d), acc);
        } else {
            // The activation's 32-value sums (each at most 32 * 127: int16) in the high half, zeros low.
            const __m256i b32x = _mm256_madd_epi16(bsums, _mm256_set1_epi16(1));
            const __m128i b32 = _mm_packs_epi32(_mm256_castsi256_si128(b32x), _mm256_extracti128_si256(b32x, 1));
            const __m256i bs32 = _mm256_inserti128_si256(_mm256_setzero_si256(), b32, 1);
            __m256i dot[4], mins[4];
            TESSERA_UNROLL for (int r = 0; r < 4; ++r)
                k4_row<std::is_same_v<Block, block_q5_K>>(rows[r][b], x[b].qs, bs32, dot[r], mins[r]);
            const __m256i sd = sum_lanes4(dot[0], dot[1], dot[2], dot[3]);
            const __m256i sm = sum_lanes4(mins[0], mins[1], mins[2], mins[3]);
            const __m256i s = _mm256_add_epi32(_mm256_permute2x128_si256(sd, sm, 0x20), _mm256_permute2x128_si256(sd, sm, 0x31));
            // d and dmin (adjacent f16s at the block's start) of the four rows -> [d 0-3 | dmin 0-3] * [dx | -dx]
            const __m128i dd = _mm_setr_epi32(int(load32(reinterpret_cast<const uint8_t*>(&rows[0][b]))),
                                              int(load32(reinterpret_cast<const uint8_t*>(&rows[1][b]))),
                                              int(load32(reinterpret_cast<const uint8_t*>(&rows[2][b]))),
                                              int(load32(reinterpret_cast<const uint8_t*>(&rows[3][b]))));
            const __m128i order = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
            const __m256 dx = _mm256_set_m128(_mm_set1_ps(-x[b].d), _mm_set1_ps(x[b].d));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(_mm256_cvtph_ps(_mm_shuffle_epi8(dd, order)), dx), acc);
        }
    }
    store_rows4(acc, out, out_row_stride);  // Q4_K / Q5_K: lanes 0-3 the main terms, 4-7 the (negated) min terms
}

}  // namespace

#endif  // TESSERA_QDOT_AVX2

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot
