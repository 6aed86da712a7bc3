// Dot products between quantized weight rows and activations, the inner loop
// of mul_mat for GGUF quant types on the cpu backend. Activations are first
// converted once per row into the block type that pairs with the weight type
// (which one is this file's choice: see activation_type()).
#pragma once
#include "backends/cpu/kernel_level.h"
#include <cstddef>
#include <cstdint>

#include "core/types.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

// The type activations are converted to for weights of type w (F32 means "kept in float").
DType activation_type(DType w);
// Bytes one converted activation row of k elements takes.
size_t activation_row_bytes(DType w, int64_t k);
// Converts k floats into activation_type(w) (k a multiple of w's block size).
void quantize_activations(DType w, const float* x, void* dst, int64_t k);

// out[r * out_row_stride + c] = dot(weight row r, activation row c) for r < nr, c < nc.
// weight rows are w_stride bytes apart, activation rows act_stride bytes apart, each k elements.
void dot_tile(DType w, int64_t k, const void* weights, size_t w_stride, int64_t nr, const void* acts,
              size_t act_stride, int64_t nc, float* out, int64_t out_row_stride);

// Width in bits of the SIMD kernel dot_tile uses for weights of type w at this level: 512, 256, or 0 for
// the portable dequantize-and-dot path (for tests and benchmarks: which code a level really runs).
int dot_tile_width(DType w);

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
