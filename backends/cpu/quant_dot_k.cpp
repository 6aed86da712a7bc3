// Tile kernels for the K-quant weight types (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and IQ4_XS against Q8_K activations.
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
// IQ4_XS's levels (kIQ4Grid, -127..113, one 6-bit scale per 32 values) span too much for an offset: they stay
// signed and go in as |level| x (x with the level's sign), exact and at most 2 * 127 * 127 per pair; no
// activation-sum term.
#include "backends/cpu/quant_dot_k_blocks.h"
#include "backends/cpu/quant_dot_k_rows4.h"
#include "backends/cpu/quant_dot_tile_pick.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

#if TESSERA_QDOT_AVX2

namespace {

template <class W, int R, int C>
void tile(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
          int64_t out_row_stride) {
    using Block = typename W::Block;
    constexpr bool kSigned = W::kOffsetShift == -2;
    __m256 acc[R][C];
    TESSERA_UNROLL for (int r = 0; r < R; ++r)
        TESSERA_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    Prepared prep[R];

    for (int64_t b = 0; b < nblocks; ++b) {
        if constexpr (C == 1) prefetch_next_tile<R, sizeof(Block)>(w, w_stride, b);
        const Block* wb[R];
        const block_q8_K* xb[C];
        TESSERA_UNROLL for (int r = 0; r < R; ++r) {
            wb[r] = reinterpret_cast<const Block*>(w + size_t(r) * w_stride) + b;
            W::prepare(*wb[r], prep[r]);
        }
        TESSERA_UNROLL for (int c = 0; c < C; ++c) xb[c] = reinterpret_cast<const block_q8_K*>(a + size_t(c) * a_stride) + b;

        __m256i isum[R][C];
        TESSERA_UNROLL for (int r = 0; r < R; ++r)
            TESSERA_UNROLL for (int c = 0; c < C; ++c) isum[r][c] = _mm256_setzero_si256();
        TESSERA_UNROLL for (int g = 0; g < 8; ++g) {
            __m256i x[C];
            TESSERA_UNROLL for (int c = 0; c < C; ++c) x[c] = loadu256(xb[c]->qs + 32 * g);
            TESSERA_UNROLL for (int r = 0; r < R; ++r) {
                const __m256i u = W::unpack(*wb[r], g);
                const __m256i sc = group_scales(prep[r].sc16, g);
                if constexpr (kSigned) {
                    const __m256i au = _mm256_sign_epi8(u, u);
                    TESSERA_UNROLL for (int c = 0; c < C; ++c)
                        isum[r][c] = dot_s16(isum[r][c], _mm256_maddubs_epi16(au, _mm256_sign_epi8(x[c], u)), sc);
                } else {
                    TESSERA_UNROLL for (int c = 0; c < C; ++c)
                        isum[r][c] = dot_s16(isum[r][c], _mm256_maddubs_epi16(u, x[c]), sc);
                }
            }
        }
        if constexpr (kSigned) {
            TESSERA_UNROLL for (int c = 0; c < C; ++c)
                TESSERA_UNROLL for (int r = 0; r < R; ++r)
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][c]), _mm256_set1_ps(prep[r].d * xb[c]->d), acc[r][c]);
            continue;
        }
        TESSERA_UNROLL for (int c = 0; c < C; ++c) {
            const __m256i bsums = loadu256(xb[c]->bsums);
            TESSERA_UNROLL for (int r = 0; r < R; ++r) {
                const __m256i s = _mm256_madd_epi16(prep[r].mul16, bsums);
                __m256i is = isum[r][c];
                if constexpr (W::kOffsetShift >= 0) is = _mm256_sub_epi32(is, _mm256_slli_epi32(s, W::kOffsetShift));
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(prep[r].d * xb[c]->d), acc[r][c]);
                if constexpr (W::kOffsetShift < 0)
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(-prep[r].dmin * xb[c]->d), acc[r][c]);
            }
        }
    }
    TESSERA_UNROLL for (int r = 0; r < R; ++r)
        TESSERA_UNROLL for (int c = 0; c < C; ++c) out[r * out_row_stride + c] = hsum(acc[r][c]);
}

// Types whose decode has the four-row kernel of quant_dot_k_rows4.h (the types of Q4_K_M / Q5_K_M files).
template <class W>
constexpr bool kHasRows4 = std::is_same_v<W, Q4_KW> || std::is_same_v<W, Q5_KW> || std::is_same_v<W, Q6_KW>;

// Decode's full four-row tiles by k_rows4 where the type has it; everything else (row tails, wider tiles) by tile.
template <class W, int R, int C>
struct Pass {
    static constexpr int kMaxCols = kTileCols;
    static void run(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
                    int64_t out_row_stride) {
        if constexpr (R == 4 && C == 1 && kHasRows4<W>)
            k_rows4<W>(nblocks, w, w_stride, a, out, out_row_stride);
        else
            tile<W, R, C>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
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

#elif !TESSERA_QDOT_NEON  // aarch64: quant_dot_neon*.cpp

TileFn k_tile(DType, int, int) { return nullptr; }

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot
