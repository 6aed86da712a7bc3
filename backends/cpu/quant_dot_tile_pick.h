// Private to backends/cpu/quant_dot*.cpp: from a family of tile kernels to the TileFn that legacy_tile,
// k_tile and their 512-bit twins hand out for an R x C tile (1 <= R <= kTileRows, 1 <= C <= kTileCols).
//
// A kernel file describes its kernels as one pass template:
//     template <class W, int R, int C> struct Pass {
//         static constexpr int kMaxCols = ...;  // the widest pass for R rows (may depend on R)
//         static void run(nblocks, w, w_stride, a, a_stride, out, out_row_stride);  // an R x C tile
//     };
// and this header does the rest, once for every file: a tile wider than kMaxCols runs as column passes of
// kMaxCols (each pass re-reads the R weight rows, which is why passes are as wide as the registers allow),
// and the run-time (R, C) picks its compile-time instantiation.
#pragma once
#include "backends/cpu/quant_dot_kernels.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot {

template <template <class, int, int> class Pass, class W, int R, int C>
void tile_in_passes(int64_t nblocks, const uint8_t* w, size_t w_stride, const uint8_t* a, size_t a_stride,
                    float* out, int64_t out_row_stride) {
    constexpr int kMax = Pass<W, R, 1>::kMaxCols;
    static_assert(kMax >= 1, "a pass covers at least one column");
    if constexpr (C <= kMax) {
        Pass<W, R, C>::run(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
    } else {
        Pass<W, R, kMax>::run(nblocks, w, w_stride, a, a_stride, out, out_row_stride);
        tile_in_passes<Pass, W, R, C - kMax>(nblocks, w, w_stride, a + size_t(kMax) * a_stride, a_stride,
                                             out + kMax, out_row_stride);
    }
}

// The switches below are written out for kTileRows = 4 and kTileCols = 8.
static_assert(kTileRows == 4 && kTileCols == 8, "quant_dot_tile_pick.h: extend the switches");

template <template <class, int, int> class Pass, class W, int R>
TileFn pick_tile_cols(int C) {
    switch (C) {
        case 1: return tile_in_passes<Pass, W, R, 1>;
        case 2: return tile_in_passes<Pass, W, R, 2>;
        case 3: return tile_in_passes<Pass, W, R, 3>;
        case 4: return tile_in_passes<Pass, W, R, 4>;
        case 5: return tile_in_passes<Pass, W, R, 5>;
        case 6: return tile_in_passes<Pass, W, R, 6>;
        case 7: return tile_in_passes<Pass, W, R, 7>;
        case 8: return tile_in_passes<Pass, W, R, 8>;
    }
    return nullptr;
}

// The R x C tile of weight type W (its traits class), or nullptr for R or C out of range.
template <template <class, int, int> class Pass, class W>
TileFn pick_tile(int R, int C) {
    switch (R) {
        case 1: return pick_tile_cols<Pass, W, 1>(C);
        case 2: return pick_tile_cols<Pass, W, 2>(C);
        case 3: return pick_tile_cols<Pass, W, 3>(C);
        case 4: return pick_tile_cols<Pass, W, 4>(C);
    }
    return nullptr;
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL::qdot
