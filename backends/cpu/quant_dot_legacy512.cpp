// 512-bit tile kernels (AVX-512 BW + VNNI) for the 32-element weight types against Q8_0 activations: the
// same arithmetic as quant_dot_legacy.cpp (u = q + offset, one u8 x s8 dot per block with -offset * sum(x)
// as its accumulator input, then acc += float(dot) * d_w * d_x), with the lanes used two ways:
//   decode (one activation column): two weight rows per register, [row r block b | row r+1 block b], the
//     activation block broadcast to both halves: one dpbusd, one conversion and one FMA per two rows.
//   prefill (2..8 columns): four columns per register, the 128-bit lanes holding the same 16 values of
//     four columns' blocks, the weights' 16 values broadcast to all four lanes: two dpbusd, one conversion,
//     one scale product and one FMA per block cover four columns (the 256-bit kernel needs that per two).
// Only built where TESSERA_X86_AVX512 holds (the avx512 level and its emulated twin); elsewhere
// legacy_tile512 returns nullptr and dot_tile uses the 256-bit kernels.
#include "backends/cpu/quant_dot_legacy_blocks.h"
#include "backends/cpu/quant_dot_tile_pick.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

#if TESSERA_QDOT_AVX512

namespace {

const block_q8_0& act_block(const uint8_t* a, size_t a_stride, int c, int64_t b) {
    return reinterpret_cast<const block_q8_0*>(a + size_t(c) * a_stride)[b];
}

// Decode: R rows (paired; an odd last row pairs with itself and its copy is dropped) x 1 column.
template <class W, int R>
void tile_rows(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
               int64_t out_row_stride) {
    using Block = typename W::Block;
    static_assert(W::kOffsetShift != -2, "with VNNI every type has an unsigned form");
    constexpr int P = (R + 1) / 2;
    constexpr bool kOffset = W::kOffsetShift >= 0;
    const __m512i ones = _mm512_set1_epi8(1);
    __m512 acc[P];
    TESSERA_UNROLL for (int p = 0; p < P; ++p) acc[p] = _mm512_setzero_ps();

    for (int64_t b = 0; b < nblocks; ++b) {
        prefetch_next_tile<R, sizeof(Block)>(w, w_stride, b);
        const block_q8_0& xb = act_block(a, a_stride, 0, b);
        const __m512i x = _mm512_broadcast_i64x4(loadu256(xb.qs));
        const float dx = h2f(xb.d);
        [[maybe_unused]] __m512i corr;
        [[maybe_unused]] __m512 xsum;
        if constexpr (kOffset || W::kHasMin) {
            const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, x);
            if constexpr (kOffset) corr = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, kOffset ? W::kOffsetShift : 0));
            if constexpr (W::kHasMin) xsum = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(dx));
        }
        TESSERA_UNROLL for (int p = 0; p < P; ++p) {
            const Block& w0 = reinterpret_cast<const Block*>(w + size_t(2 * p) * w_stride)[b];
            const Block& w1 = reinterpret_cast<const Block*>(w + size_t(2 * p + 1 < R ? 2 * p + 1 : 2 * p) * w_stride)[b];
            const __m512i u = join256(W::unpack(w0), W::unpack(w1));
            const __m512i dot = _mm512_dpbusd_epi32(kOffset ? corr : _mm512_setzero_si512(), u, x);
            acc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), join_ps(W::scale(w0) * dx, W::scale(w1) * dx), acc[p]);
            if constexpr (W::kHasMin) acc[p] = _mm512_fmadd_ps(xsum, join_ps(W::min(w0), W::min(w1)), acc[p]);
        }
    }
    TESSERA_UNROLL for (int p = 0; p < P; ++p) {
        out[2 * p * out_row_stride] = hsum(lo_ps(acc[p]));
        if (2 * p + 1 < R) out[(2 * p + 1) * out_row_stride] = hsum(hi_ps(acc[p]));
    }
}

// Prefill: R rows x C columns (2 <= C <= 8), four columns per register (a group short of four repeats its
// last column; the copies' sums are dropped).
template <class W, int R, int C>
void tile_cols(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
               int64_t out_row_stride) {
    using Block = typename W::Block;
    static_assert(W::kOffsetShift != -2, "with VNNI every type has an unsigned form");
    constexpr int G = (C + 3) / 4;
    constexpr bool kOffset = W::kOffsetShift >= 0;
    const __m512i ones = _mm512_set1_epi8(1);
    __m512 acc[R][G];
    TESSERA_UNROLL for (int r = 0; r < R; ++r)
        TESSERA_UNROLL for (int g = 0; g < G; ++g) acc[r][g] = _mm512_setzero_ps();

    for (int64_t b = 0; b < nblocks; ++b) {
        __m512i x1[G], x2[G];  // values 0-15 / 16-31 of columns 4g .. 4g + 3, one 128-bit lane each
        [[maybe_unused]] __m512i corr[G];
        __m512 dx[G];
        [[maybe_unused]] __m512 xsum[G];
        TESSERA_UNROLL for (int g = 0; g < G; ++g) {
            const block_q8_0* xb[4];
            TESSERA_UNROLL for (int j = 0; j < 4; ++j) xb[j] = &act_block(a, a_stride, 4 * g + j < C ? 4 * g + j : C - 1, b);
            const auto lane = [](const int8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
            x1[g] = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(lane(xb[0]->qs)),
                                                                               lane(xb[1]->qs), 1),
                                                            lane(xb[2]->qs), 2),
                                         lane(xb[3]->qs), 3);
            x2[g] = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(lane(xb[0]->qs + 16)),
                                                                               lane(xb[1]->qs + 16), 1),
                                                            lane(xb[2]->qs + 16), 2),
                                         lane(xb[3]->qs + 16), 3);
            const float d0 = h2f(xb[0]->d), d1 = h2f(xb[1]->d), d2 = h2f(xb[2]->d), d3 = h2f(xb[3]->d);
            dx[g] = _mm512_setr_ps(d0, d0, d0, d0, d1, d1, d1, d1, d2, d2, d2, d2, d3, d3, d3, d3);
            if constexpr (kOffset || W::kHasMin) {
                const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, x1[g]), ones, x2[g]);
                if constexpr (kOffset) corr[g] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, kOffset ? W::kOffsetShift : 0));
                if constexpr (W::kHasMin) xsum[g] = _mm512_mul_ps(_mm512_cvtepi32_ps(s), dx[g]);
            }
        }
        TESSERA_UNROLL for (int r = 0; r < R; ++r) {
            const Block& wb = reinterpret_cast<const Block*>(w + size_t(r) * w_stride)[b];
            const __m256i u = W::unpack(wb);
            const __m512i u1 = _mm512_broadcast_i32x4(_mm256_castsi256_si128(u));       // values 0-15, every lane
            const __m512i u2 = _mm512_broadcast_i32x4(_mm256_extracti128_si256(u, 1));  // values 16-31
            const __m512 dw = _mm512_set1_ps(W::scale(wb));
            [[maybe_unused]] __m512 mw;
            if constexpr (W::kHasMin) mw = _mm512_set1_ps(W::min(wb));
            TESSERA_UNROLL for (int g = 0; g < G; ++g) {
                const __m512i dot =
                    _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(kOffset ? corr[g] : _mm512_setzero_si512(), u1, x1[g]), u2, x2[g]);
                acc[r][g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, dx[g]), acc[r][g]);
                if constexpr (W::kHasMin) acc[r][g] = _mm512_fmadd_ps(xsum[g], mw, acc[r][g]);
            }
        }
    }
    TESSERA_UNROLL for (int r = 0; r < R; ++r) {
        TESSERA_UNROLL for (int g = 0; g < G; ++g) {
            alignas(64) float lanes[16];
            _mm512_store_ps(lanes, acc[r][g]);
            for (int j = 0; j < 4 && 4 * g + j < C; ++j)
                out[r * out_row_stride + 4 * g + j] = (lanes[4 * j] + lanes[4 * j + 1]) + (lanes[4 * j + 2] + lanes[4 * j + 3]);
        }
    }
}

// Decode's one column in row pairs, wider tiles four columns per register; every width in one pass.
template <class W, int R, int C>
struct Pass {
    static constexpr int kMaxCols = kTileCols;
    static void run(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
                    int64_t out_row_stride) {
        if constexpr (C == 1)
            tile_rows<W, R>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
        else
            tile_cols<W, R, C>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
    }
};

}  // namespace

TileFn legacy_tile512(DType w, int R, int C) {
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

#else

TileFn legacy_tile512(DType, int, int) { return nullptr; }

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot
