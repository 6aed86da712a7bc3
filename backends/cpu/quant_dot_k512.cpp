// 512-bit tile kernels (AVX-512 BW + VNNI) for the K-quant weight types with unsigned levels (Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K) against Q8_K activations: quant_dot_k.cpp's arithmetic (u8 x s8 pair sums to int16,
// then int16 x sub-block scale into int32, the whole super-block in integers) over 64 values per
// instruction instead of 32: each register holds two 32-value groups, [group 2j | group 2j + 1], and the
// activations' 64 matching bytes are one load. The scale of each 16-value sub-block is spread over its
// eight int16 lanes by one permute. At the end of a super-block the two halves are added and the rest
// (activation-sum terms, scales, float accumulation) is the 256-bit kernel's.
// IQ4_XS (signed levels, dotted through the sign trick, which has no 512-bit instruction) keeps the
// 256-bit kernel. Only built where TESSERA_X86_AVX512 holds; elsewhere k_tile512 returns nullptr.
#include "backends/cpu/quant_dot_k_blocks.h"
#include "backends/cpu/quant_dot_tile_pick.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

#if TESSERA_QDOT_AVX512

namespace {

// Lane L (int16) of pair j covers values 64j + 2L and 64j + 2L + 1, i.e. 16-value sub-block 4j + L / 8.
struct ScaleIndex {
    alignas(64) int16_t v[4][32];
};
constexpr ScaleIndex make_scale_index() {
    ScaleIndex s{};
    for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l) s.v[j][l] = int16_t(4 * j + l / 8);
    return s;
}
constexpr ScaleIndex kScaleIndex = make_scale_index();

// R rows x C columns, C <= 4 (the R x C int32 accumulators of 16 lanes fill half the register file).
template <class W, int R, int C>
void tile(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
          int64_t out_row_stride) {
    using Block = typename W::Block;
    static_assert(W::kOffsetShift != -2, "signed levels have no 512-bit form here");
    static_assert(C <= 4);
    __m256 acc[R][C];
    TESSERA_UNROLL for (int r = 0; r < R; ++r)
        TESSERA_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    Prepared prep[R];

    for (int64_t b = 0; b < nblocks; ++b) {
        if constexpr (C == 1) prefetch_next_tile<R, sizeof(Block)>(w, w_stride, b);
        const Block* wb[R];
        const block_q8_K* xb[C];
        __m512i sc[R];  // the 16 sub-block scales in both halves (only the low 16 lanes are indexed)
        TESSERA_UNROLL for (int r = 0; r < R; ++r) {
            wb[r] = reinterpret_cast<const Block*>(w + size_t(r) * w_stride) + b;
            W::prepare(*wb[r], prep[r]);
            sc[r] = join256(prep[r].sc16, prep[r].sc16);
        }
        TESSERA_UNROLL for (int c = 0; c < C; ++c) xb[c] = reinterpret_cast<const block_q8_K*>(a + size_t(c) * a_stride) + b;

        __m512i isum[R][C];
        TESSERA_UNROLL for (int r = 0; r < R; ++r)
            TESSERA_UNROLL for (int c = 0; c < C; ++c) isum[r][c] = _mm512_setzero_si512();
        TESSERA_UNROLL for (int j = 0; j < 4; ++j) {
            __m512i x[C];
            TESSERA_UNROLL for (int c = 0; c < C; ++c) x[c] = _mm512_loadu_si512(xb[c]->qs + 64 * j);
            const __m512i idx = _mm512_load_si512(kScaleIndex.v[j]);
            TESSERA_UNROLL for (int r = 0; r < R; ++r) {
                const __m512i u = join256(W::unpack(*wb[r], 2 * j), W::unpack(*wb[r], 2 * j + 1));
                const __m512i s = _mm512_permutexvar_epi16(idx, sc[r]);
                TESSERA_UNROLL for (int c = 0; c < C; ++c)
                    isum[r][c] = _mm512_dpwssd_epi32(isum[r][c], _mm512_maddubs_epi16(u, x[c]), s);
            }
        }
        TESSERA_UNROLL for (int c = 0; c < C; ++c) {
            const __m256i bsums = loadu256(xb[c]->bsums);
            TESSERA_UNROLL for (int r = 0; r < R; ++r) {
                const __m256i s = _mm256_madd_epi16(prep[r].mul16, bsums);
                __m256i is = _mm256_add_epi32(_mm512_castsi512_si256(isum[r][c]), hi_si(isum[r][c]));
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

// Columns 5..8 in a second pass (the weights are unpacked twice, from L1).
template <class W, int R, int C>
struct Pass {
    static constexpr int kMaxCols = 4;
    static void run(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride, float* out,
                    int64_t out_row_stride) {
        tile<W, R, C>(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
    }
};

}  // namespace

TileFn k_tile512(DType w, int R, int C) {
    switch (w) {
        case DType::Q2_K: return pick_tile<Pass, Q2_KW>(R, C);
        case DType::Q3_K: return pick_tile<Pass, Q3_KW>(R, C);
        case DType::Q4_K: return pick_tile<Pass, Q4_KW>(R, C);
        case DType::Q5_K: return pick_tile<Pass, Q5_KW>(R, C);
        case DType::Q6_K: return pick_tile<Pass, Q6_KW>(R, C);
        default: return nullptr;  // IQ4_XS: quant_dot_k.cpp's 256-bit kernel
    }
}

#else

TileFn k_tile512(DType, int, int) { return nullptr; }

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot
