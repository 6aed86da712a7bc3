// Quantized mul_mat inner loop for the cpu backend: activation conversion and the dot tiles.
//
// Activation types (what llama.cpp does too, and why):
//   Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights -> Q8_0 activations: one scale per 32 values matches the weight
//     blocks, so each block's dot is an exact int8 x int8 sum scaled once; the _1 types' min term needs
//     sum(x) per block, which the kernel takes exactly from the int8 values (see quant_dot_legacy.cpp).
//   Q2_K .. Q6_K (and Q8_K) weights -> Q8_K activations: one float scale per 256 values plus exact sums of
//     each 16, so a whole super-block accumulates in integers and the min/offset terms come from the sums.
//   IQ4_NL, MXFP4 -> Q8_0 and IQ4_XS -> Q8_K, as llama.cpp pairs them: same block length, and each grid
//     level is an int8 (kIQ4Grid, kMXFP4Grid), so a block's dot is again one integer sum scaled once.
//   Anything else (F32, F16, BF16) -> activations stay F32; that path is dequantize-and-dot, not fast.
// The error this adds is the activation rounding: |x - x_q| <= d_x / 2 per element (d_x = max|x| / 127
// of its block), i.e. about |w| |x| 2^-8 per product in the worst case.
//
// dot_tile walks the nr x nc output in kTileRows x kTileCols register tiles: each tile keeps its R x C
// accumulators in registers over the whole k, unpacks every weight block once for C columns and loads every
// activation block once for R rows, which is what makes prefill compute-bound rather than load-bound.
#include "backends/cpu/quant_dot.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/cpu/quant_dot_kernels.h"
#include "core/error.h"
#include "core/quant.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

DType activation_type(DType w) {
    switch (w) {
        case DType::Q4_0:
        case DType::Q4_1:
        case DType::Q5_0:
        case DType::Q5_1:
        case DType::Q8_0:
        case DType::IQ4_NL:
        case DType::MXFP4:
            return DType::Q8_0;
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K:
        case DType::Q8_K:
        case DType::IQ4_XS:
            return DType::Q8_K;
        default:
            return DType::F32;
    }
}

size_t activation_row_bytes(DType w, int64_t k) { return row_bytes(activation_type(w), k); }

void quantize_activations(DType w, const float* x, void* dst, int64_t k) {
    const DType a = activation_type(w);
    if (a == DType::F32) {
        std::memcpy(dst, x, size_t(k) * sizeof(float));
        return;
    }
#if TESSERA_QDOT_AVX512
    if (qdot::quantize_activations512(a, x, dst, k)) return;
#endif
    type_traits(a).from_float(x, dst, k);
}

namespace {

// Portable path (no SIMD kernel for this build or type): dequantize each weight row and each activation
// row to float, then dot. Same math as the kernels up to float rounding.
void dot_tile_portable(DType w, int64_t k, const void* weights, size_t w_stride, int64_t nr, const void* acts,
                       size_t act_stride, int64_t nc, float* out, int64_t out_row_stride) {
    const TypeTraits& wt = type_traits(w);
    TESSERA_CHECK(wt.to_float != nullptr, "dot_tile: weight type %s cannot be converted to float", wt.name);
    const DType at = activation_type(w);
    std::vector<float> xf(size_t(k) * size_t(nc));
    for (int64_t c = 0; c < nc; ++c)
        type_traits(at).to_float(static_cast<const char*>(acts) + size_t(c) * act_stride, xf.data() + c * k, k);
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t r = 0; r < nr; ++r) {
        wt.to_float(static_cast<const char*>(weights) + size_t(r) * w_stride, row.data(), k);
        for (int64_t c = 0; c < nc; ++c) {
            const float* x = xf.data() + c * k;
            float s = 0;
            for (int64_t i = 0; i < k; ++i) s += row[size_t(i)] * x[i];
            out[r * out_row_stride + c] = s;
        }
    }
}

}  // namespace

void dot_tile(DType w, int64_t k, const void* weights, size_t w_stride, int64_t nr, const void* acts,
              size_t act_stride, int64_t nc, float* out, int64_t out_row_stride) {
    if (nr <= 0 || nc <= 0) return;
    const TypeTraits& wt = type_traits(w);
    TESSERA_CHECK(k >= 0 && k % wt.block_size == 0, "dot_tile: k = %lld is not a multiple of %s's block size %lld",
                  static_cast<long long>(k), wt.name, static_cast<long long>(wt.block_size));
    const bool is_k = activation_type(w) == DType::Q8_K;
    // The level's widest kernel for the type: 512-bit where the level has one, else 256-bit.
    auto pick = [&](int R, int C) {
#if TESSERA_QDOT_AVX512
        if (const qdot::TileFn f = is_k ? qdot::k_tile512(w, R, C) : qdot::legacy_tile512(w, R, C)) return f;
#endif
        return is_k ? qdot::k_tile(w, R, C) : qdot::legacy_tile(w, R, C);
    };
    if (activation_type(w) == DType::F32 || pick(1, 1) == nullptr) {
        dot_tile_portable(w, k, weights, w_stride, nr, acts, act_stride, nc, out, out_row_stride);
        return;
    }
    const int64_t nblocks = k / wt.block_size;
    const auto* wp = static_cast<const uint8_t*>(weights);
    const auto* ap = static_cast<const uint8_t*>(acts);
    for (int64_t r0 = 0; r0 < nr; r0 += qdot::kTileRows) {
        const int R = int(std::min<int64_t>(qdot::kTileRows, nr - r0));
        for (int64_t c0 = 0; c0 < nc; c0 += qdot::kTileCols) {
            const int C = int(std::min<int64_t>(qdot::kTileCols, nc - c0));
            pick(R, C)(nblocks, wp + size_t(r0) * w_stride, w_stride, ap + size_t(c0) * act_stride, act_stride,
                       out + r0 * out_row_stride + c0, out_row_stride);
        }
    }
}

int dot_tile_width(DType w) {
    const DType a = activation_type(w);
    if (a == DType::F32) return 0;
#if TESSERA_QDOT_AVX512
    if ((a == DType::Q8_K ? qdot::k_tile512(w, 1, 1) : qdot::legacy_tile512(w, 1, 1)) != nullptr) return 512;
#endif
    return (a == DType::Q8_K ? qdot::k_tile(w, 1, 1) : qdot::legacy_tile(w, 1, 1)) != nullptr ? 256 : 0;
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
