// Tile kernels for the 32-element weight types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4) against Q8_0
// activations.
//
// Per 32-element block, weights are unpacked once per row into unsigned bytes u = q + offset (Q4_0: offset
// 8, Q5_0: 16, Q8_0 and IQ4_NL: 128, MXFP4: 16; the _1 types are already unsigned; IQ4_NL's and MXFP4's q
// are their grid levels, looked up by one byte shuffle) and shared by the C activation columns; each
// activation block's sum is computed once per column and shared by the R rows. Then for every (row, col):
//     sum(q * x) = sum(u * x) - offset * sum(x)     one u8 x s8 dot, the correction as its accumulator input
//     acc += float(that) * (d_w * d_x)              (+ m_w * d_x * sum(x) for the _1 types)
// Sums of x are exact integers here, so llama.cpp's Q8_1 activations (which carry d * sum(x) rounded to
// f16) are not needed: one activation format serves all five types and is slightly more exact.
#include "backends/cpu/quant_dot_legacy_blocks.h"
#include "backends/cpu/quant_dot_tile_pick.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

#if TESSERA_QDOT_AVX2

namespace {

// Four weight rows x C columns (in pairs) for the nibble types (Q4_0, Q4_1: u in [0, 15]), the shape of a
// decode batch of several sequences (C = its tokens). tile_paired below turns every (row, column pair)
// block dot into float on its own and keeps 4 x C/2 accumulators, which spill past 16 registers at C = 8;
// a batch of 2-8 tokens then cost ~3.5x a single token's step (TinyLlama Q4_0, 4 tokens, 2-core EPYC), the
// kernel bound by instructions, not by reading the weights. Here per column pair:
//   - the two 16-value halves' u8 x s8 products are summed in int16 before widening (|sum| <= 4 * 15 * 127
//     = 7620 fits), one widening per (row, pair) instead of two;
//   - the four rows' int32 dots are gathered into one vector [rows 0-3 of column c0 | rows 0-3 of c1] by
//     32/64-bit unpacks, so the conversion, the scale product and the FMA happen once per four rows;
//   - one accumulator per pair holds all four rows: C/2 registers.
template <class W, int C>
void tile_nibbles_rows4(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride,
                        float* out, int64_t out_row_stride) {
    using Block = typename W::Block;
    constexpr int P = (C + 1) / 2;
    constexpr bool kOffset = W::kOffsetShift >= 0;
    const __m256i ones8 = _mm256_set1_epi8(1);
    [[maybe_unused]] const __m256i ones16 = _mm256_set1_epi16(1);
    const Block* rows[4];
    TESSERA_UNROLL for (int r = 0; r < 4; ++r) rows[r] = reinterpret_cast<const Block*>(w + size_t(r) * w_stride);
    // Both 16-value halves of a block for columns c0 and c1 (or c0 twice): the sum of u x x over 32 values,
    // four int32 partial sums per column.
    auto dot = [&](__m256i u1, __m256i x1, __m256i u2, __m256i x2) {
#if TESSERA_QDOT_VNNI
        return _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u1, x1), u2, x2);
#else
        return _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(u1, x1), _mm256_maddubs_epi16(u2, x2)), ones16);
#endif
    };
    __m256 acc[P];
    TESSERA_UNROLL for (int q = 0; q < P; ++q) acc[q] = _mm256_setzero_ps();

    for (int64_t b = 0; b < nblocks; ++b) {
        __m256i x1[P], x2[P];
        __m256 dx[P];
        [[maybe_unused]] __m256i corr[P];
        [[maybe_unused]] __m256 xsum[P];
        TESSERA_UNROLL for (int q = 0; q < P; ++q) {
            const int c0 = 2 * q, c1 = 2 * q + 1 < C ? 2 * q + 1 : 2 * q;
            const block_q8_0& b0 = reinterpret_cast<const block_q8_0*>(a + size_t(c0) * a_stride)[b];
            const block_q8_0& b1 = reinterpret_cast<const block_q8_0*>(a + size_t(c1) * a_stride)[b];
            x1[q] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(b1.qs), reinterpret_cast<const __m128i*>(b0.qs));
            x2[q] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(b1.qs + 16),
                                        reinterpret_cast<const __m128i*>(b0.qs + 16));
            dx[q] = _mm256_set_m128(_mm_set1_ps(h2f(b1.d)), _mm_set1_ps(h2f(b0.d)));
            // The column's sum of x, in every lane of its half (the dots below are whole sums per lane too).
            __m256i s = dot(ones8, x1[q], ones8, x2[q]);
            s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0x4E));
            s = _mm256_add_epi32(s, _mm256_shuffle_epi32(s, 0xB1));
            if constexpr (kOffset) corr[q] = _mm256_slli_epi32(s, kOffset ? W::kOffsetShift : 0);
            if constexpr (W::kHasMin) xsum[q] = _mm256_mul_ps(_mm256_cvtepi32_ps(s), dx[q]);
        }
        // The four rows' scales (and mins), [rows 0-3 | rows 0-3].
        __m128i h = _mm_cvtsi32_si128(rows[0][b].d);
        h = _mm_insert_epi16(h, rows[1][b].d, 1);
        h = _mm_insert_epi16(h, rows[2][b].d, 2);
        h = _mm_insert_epi16(h, rows[3][b].d, 3);
        const __m128 dw4 = _mm_cvtph_ps(h);
        const __m256 dw = _mm256_set_m128(dw4, dw4);
        [[maybe_unused]] __m256 mw;
        if constexpr (W::kHasMin) {
            __m128i hm = _mm_cvtsi32_si128(rows[0][b].m);
            hm = _mm_insert_epi16(hm, rows[1][b].m, 1);
            hm = _mm_insert_epi16(hm, rows[2][b].m, 2);
            hm = _mm_insert_epi16(hm, rows[3][b].m, 3);
            const __m128 mw4 = _mm_cvtph_ps(hm);
            mw = _mm256_set_m128(mw4, mw4);
        }
        __m256i p[4][P];
        TESSERA_UNROLL for (int r = 0; r < 4; ++r) {
            const __m256i u = W::unpack(rows[r][b]);
            const __m256i u1 = _mm256_permute2x128_si256(u, u, 0x00);  // values 0-15 in both lanes
            const __m256i u2 = _mm256_permute2x128_si256(u, u, 0x11);  // values 16-31 in both lanes
            TESSERA_UNROLL for (int q = 0; q < P; ++q) p[r][q] = dot(u1, x1[q], u2, x2[q]);
        }
        TESSERA_UNROLL for (int q = 0; q < P; ++q) {
            // Per 128-bit lane: [r0, r1, r0, r1] and [r2, r3, r2, r3] partial pairs, then [r0, r1, r2, r3].
            const __m256i p01 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[0][q], p[1][q]), _mm256_unpackhi_epi32(p[0][q], p[1][q]));
            const __m256i p23 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2][q], p[3][q]), _mm256_unpackhi_epi32(p[2][q], p[3][q]));
            __m256i d = _mm256_add_epi32(_mm256_unpacklo_epi64(p01, p23), _mm256_unpackhi_epi64(p01, p23));
            if constexpr (kOffset) d = _mm256_sub_epi32(d, corr[q]);
            acc[q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(dw, dx[q]), acc[q]);
            if constexpr (W::kHasMin) acc[q] = _mm256_fmadd_ps(xsum[q], mw, acc[q]);
        }
    }
    TESSERA_UNROLL for (int q = 0; q < P; ++q) {
        alignas(32) float v[8];
        _mm256_store_ps(v, acc[q]);
        TESSERA_UNROLL for (int r = 0; r < 4; ++r) {
            out[r * out_row_stride + 2 * q] = v[r];
            if (2 * q + 1 < C) out[r * out_row_stride + 2 * q + 1] = v[4 + r];
        }
    }
}

template <class W, int R, int C>
void tile(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
          int64_t out_row_stride) {
    using Block = typename W::Block;
    constexpr bool kOffset = W::kOffsetShift >= 0;
    constexpr bool kSignTrick = W::kOffsetShift == -2;
    const __m256i ones = _mm256_set1_epi8(1);
    __m256 acc[R][C];
    TESSERA_UNROLL for (int r = 0; r < R; ++r)
        TESSERA_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();

    for (int64_t b = 0; b < nblocks; ++b) {
        if constexpr (C == 1) prefetch_next_tile<R, sizeof(Block)>(w, w_stride, b);
        __m256i xq[C], corr[C];
        __m256 dx[C], xsum[C];
        TESSERA_UNROLL for (int c = 0; c < C; ++c) {
            const block_q8_0& xb = reinterpret_cast<const block_q8_0*>(a + size_t(c) * a_stride)[b];
            xq[c] = loadu256(xb.qs);
            dx[c] = _mm256_set1_ps(h2f(xb.d));
            if constexpr (kOffset || W::kHasMin) {
                const __m256i s = dot_u8s8(_mm256_setzero_si256(), ones, xq[c]);
                if constexpr (kOffset) corr[c] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(s, kOffset ? W::kOffsetShift : 0));
                if constexpr (W::kHasMin) xsum[c] = _mm256_mul_ps(_mm256_cvtepi32_ps(s), dx[c]);
            }
        }
        TESSERA_UNROLL for (int r = 0; r < R; ++r) {
            const Block& wb = reinterpret_cast<const Block*>(w + size_t(r) * w_stride)[b];
            const __m256i u = W::unpack(wb);
            const __m256 dw = _mm256_set1_ps(W::scale(wb));
            [[maybe_unused]] __m256i au;
            if constexpr (kSignTrick) au = _mm256_sign_epi8(u, u);
            [[maybe_unused]] __m256 mw;
            if constexpr (W::kHasMin) mw = _mm256_set1_ps(W::min(wb));
            TESSERA_UNROLL for (int c = 0; c < C; ++c) {
                __m256i p;
                if constexpr (kSignTrick)
                    p = dot_u8s8(_mm256_setzero_si256(), au, _mm256_sign_epi8(xq[c], u));
                else if constexpr (kOffset)
                    p = dot_u8s8(corr[c], u, xq[c]);
                else
                    p = dot_u8s8(_mm256_setzero_si256(), u, xq[c]);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, dx[c]), acc[r][c]);
                if constexpr (W::kHasMin) acc[r][c] = _mm256_fmadd_ps(xsum[c], mw, acc[r][c]);
            }
        }
    }
    TESSERA_UNROLL for (int r = 0; r < R; ++r)
        TESSERA_UNROLL for (int c = 0; c < C; ++c) out[r * out_row_stride + c] = hsum(acc[r][c]);
}

// Decode (one activation column) over four rows, for the types without a min term. The one-column kernel
// above turns each row's block dot into float on its own: per row and block a conversion, a scalar scale
// conversion, a product with d_x, a broadcast and an FMA, and decode is bound by those instructions, not by
// memory (Q4_0 on a 2-core EPYC reached 14 GB/s of a 26 GB/s read bandwidth). Here the four rows' int32
// dots are first gathered into one vector, [rows 0-3 over values 0-15 | rows 0-3 over values 16-31], so the
// conversion, the scale product and the FMA happen once per four rows, and the four f16 scales are widened
// by one instruction. Where the u8 x s8 pair sums are small (u < 32: Q4_0, Q5_0, MXFP4, at most
// 2 * 31 * 128 = 7936), the rows are interleaved by 16-bit horizontal adds (four pair sums still fit an
// int16) and widened once; otherwise each row is widened and the four are interleaved by 32-bit unpacks.
template <class W>
void tile_rows4(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t, float* out,
                int64_t out_row_stride) {
    using Block = typename W::Block;
    constexpr bool kOffset = W::kOffsetShift >= 0;
    constexpr bool kSignTrick = W::kOffsetShift == -2;
    constexpr bool kNarrow = kOffset && W::kOffsetShift <= 4;
    static_assert(!W::kHasMin, "the _1 types keep tile<W, R, 1>");
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    const Block* rows[4];
    TESSERA_UNROLL for (int r = 0; r < 4; ++r) rows[r] = reinterpret_cast<const Block*>(w + size_t(r) * w_stride);
    const auto* x = reinterpret_cast<const block_q8_0*>(a);
    __m256 acc = _mm256_setzero_ps();

    for (int64_t b = 0; b < nblocks; ++b) {
        prefetch_next_tile<4, sizeof(Block)>(w, w_stride, b);
        const __m256i xq = loadu256(x[b].qs);
        __m256i dots;
        if constexpr (kNarrow) {
            __m256i p[4];
            TESSERA_UNROLL for (int r = 0; r < 4; ++r) p[r] = _mm256_maddubs_epi16(W::unpack(rows[r][b]), xq);
            // Per 128-bit lane: [row 0: 4 sums, row 1: 4 sums], then [row 0: 2, row 1: 2, row 2: 2, row 3: 2].
            const __m256i p01 = _mm256_hadd_epi16(p[0], p[1]), p23 = _mm256_hadd_epi16(p[2], p[3]);
            dots = _mm256_madd_epi16(_mm256_hadd_epi16(p01, p23), ones16);
        } else {
            __m256i p[4];
            TESSERA_UNROLL for (int r = 0; r < 4; ++r) {
                const __m256i u = W::unpack(rows[r][b]);
                if constexpr (kSignTrick)
                    p[r] = dot_u8s8(_mm256_setzero_si256(), _mm256_sign_epi8(u, u), _mm256_sign_epi8(xq, u));
                else
                    p[r] = dot_u8s8(_mm256_setzero_si256(), u, xq);
            }
            // Per 128-bit lane: [r0 a, r1 a, r0 b, r1 b] (a, b: sums of two lanes), then [r0, r1, r2, r3].
            const __m256i p01 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[0], p[1]), _mm256_unpackhi_epi32(p[0], p[1]));
            const __m256i p23 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2], p[3]), _mm256_unpackhi_epi32(p[2], p[3]));
            dots = _mm256_add_epi32(_mm256_unpacklo_epi64(p01, p23), _mm256_unpackhi_epi64(p01, p23));
        }
        if constexpr (kOffset) {  // - offset * (sum of x over each 16-value half), in every lane of that half
            __m256i xs = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, xq), ones16);
            xs = _mm256_add_epi32(xs, _mm256_shuffle_epi32(xs, 0x4E));
            xs = _mm256_add_epi32(xs, _mm256_shuffle_epi32(xs, 0xB1));
            dots = _mm256_sub_epi32(dots, _mm256_slli_epi32(xs, kOffset ? W::kOffsetShift : 0));
        }
        __m128 dw;
        if constexpr (requires { rows[0][b].d; }) {  // f16 scales: gathered, then widened together
            __m128i h = _mm_cvtsi32_si128(rows[0][b].d);
            h = _mm_insert_epi16(h, rows[1][b].d, 1);
            h = _mm_insert_epi16(h, rows[2][b].d, 2);
            h = _mm_insert_epi16(h, rows[3][b].d, 3);
            dw = _mm_cvtph_ps(h);
        } else {
            dw = _mm_setr_ps(W::scale(rows[0][b]), W::scale(rows[1][b]), W::scale(rows[2][b]), W::scale(rows[3][b]));
        }
        const __m128 s = _mm_mul_ps(dw, _mm_set1_ps(h2f(x[b].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), _mm256_set_m128(s, s), acc);
    }
    const __m128 sum = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    alignas(16) float v[4];
    _mm_store_ps(v, sum);
    TESSERA_UNROLL for (int r = 0; r < 4; ++r) out[r * out_row_stride] = v[r];
}

// Two activation columns per register: the 16-value halves of a block from columns c0 and c1 share one
// vector ([c0 half | c1 half]), the weights' half duplicated in both 128-bit lanes. Two dots then cover a
// block for both columns, and the int -> float conversion, the scale product and the FMA are done once per
// column pair instead of once per column: the float ports, which bound the one-column kernel above at
// prefill, do half the work. Used for C >= 2; an odd last column is paired with itself (its second
// copy's sum is dropped).
template <class W, int R, int C>
void tile_paired(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
                 int64_t out_row_stride) {
    if constexpr (R == 4 && (std::is_same_v<W, Q4_0W> || std::is_same_v<W, Q4_1W>))
        return tile_nibbles_rows4<W, C>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
    using Block = typename W::Block;
    constexpr int P = (C + 1) / 2;
    constexpr bool kOffset = W::kOffsetShift >= 0;
    constexpr bool kSignTrick = W::kOffsetShift == -2;
    const __m256i ones = _mm256_set1_epi8(1);
    __m256 acc[R][P];
    TESSERA_UNROLL for (int r = 0; r < R; ++r)
        TESSERA_UNROLL for (int q = 0; q < P; ++q) acc[r][q] = _mm256_setzero_ps();

    for (int64_t b = 0; b < nblocks; ++b) {
        __m256i x1[P], x2[P], corr[P];
        __m256 dx[P], xsum[P];
        TESSERA_UNROLL for (int q = 0; q < P; ++q) {
            const int c0 = 2 * q, c1 = 2 * q + 1 < C ? 2 * q + 1 : 2 * q;
            const block_q8_0& b0 = reinterpret_cast<const block_q8_0*>(a + size_t(c0) * a_stride)[b];
            const block_q8_0& b1 = reinterpret_cast<const block_q8_0*>(a + size_t(c1) * a_stride)[b];
            x1[q] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(b1.qs), reinterpret_cast<const __m128i*>(b0.qs));
            x2[q] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(b1.qs + 16),
                                        reinterpret_cast<const __m128i*>(b0.qs + 16));
            dx[q] = _mm256_set_m128(_mm_set1_ps(h2f(b1.d)), _mm_set1_ps(h2f(b0.d)));
            if constexpr (kOffset || W::kHasMin) {
                const __m256i s = dot_u8s8(dot_u8s8(_mm256_setzero_si256(), ones, x1[q]), ones, x2[q]);
                if constexpr (kOffset) corr[q] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(s, W::kOffsetShift));
                if constexpr (W::kHasMin) xsum[q] = _mm256_mul_ps(_mm256_cvtepi32_ps(s), dx[q]);
            }
        }
        TESSERA_UNROLL for (int r = 0; r < R; ++r) {
            const Block& wb = reinterpret_cast<const Block*>(w + size_t(r) * w_stride)[b];
            const __m256i u = W::unpack(wb);
            const __m256i u1 = _mm256_permute2x128_si256(u, u, 0x00);  // values 0-15 in both lanes
            const __m256i u2 = _mm256_permute2x128_si256(u, u, 0x11);  // values 16-31 in both lanes
            const __m256 dw = _mm256_set1_ps(W::scale(wb));
            [[maybe_unused]] __m256i au1, au2;
            if constexpr (kSignTrick) {
                au1 = _mm256_sign_epi8(u1, u1);
                au2 = _mm256_sign_epi8(u2, u2);
            }
            [[maybe_unused]] __m256 mw;
            if constexpr (W::kHasMin) mw = _mm256_set1_ps(W::min(wb));
            TESSERA_UNROLL for (int q = 0; q < P; ++q) {
                __m256i p;
                if constexpr (kSignTrick)
                    p = dot_u8s8(dot_u8s8(_mm256_setzero_si256(), au1, _mm256_sign_epi8(x1[q], u1)), au2,
                                 _mm256_sign_epi8(x2[q], u2));
                else
                    p = dot_u8s8(dot_u8s8(kOffset ? corr[q] : _mm256_setzero_si256(), u1, x1[q]), u2, x2[q]);
                acc[r][q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, dx[q]), acc[r][q]);
                if constexpr (W::kHasMin) acc[r][q] = _mm256_fmadd_ps(xsum[q], mw, acc[r][q]);
            }
        }
    }
    TESSERA_UNROLL for (int r = 0; r < R; ++r) {
        TESSERA_UNROLL for (int q = 0; q < P; ++q) {
            const __m128 lo = _mm256_castps256_ps128(acc[r][q]), hi = _mm256_extractf128_ps(acc[r][q], 1);
            __m128 s = _mm_hadd_ps(lo, hi);  // lo0+lo1, lo2+lo3, hi0+hi1, hi2+hi3
            s = _mm_hadd_ps(s, s);           // column 2q, column 2q + 1, ...
            out[r * out_row_stride + 2 * q] = _mm_cvtss_f32(s);
            if (2 * q + 1 < C) out[r * out_row_stride + 2 * q + 1] = _mm_cvtss_f32(_mm_shuffle_ps(s, s, 1));
        }
    }
}

// Decode's one column four rows at a time where it can (else unpaired), wider tiles in column pairs; every
// width in one pass.
template <class W, int R, int C>
struct Pass {
    static constexpr int kMaxCols = kTileCols;
    static void run(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
                    int64_t out_row_stride) {
        if constexpr (C == 1 && R == 4 && !W::kHasMin)
            tile_rows4<W>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
        else if constexpr (C == 1)
            tile<W, R, 1>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
        else
            tile_paired<W, R, C>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
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

#elif !TESSERA_QDOT_NEON  // aarch64: quant_dot_neon*.cpp

TileFn legacy_tile(DType, int, int) { return nullptr; }

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot
