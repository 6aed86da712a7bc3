// Activation rows converted for the quantized mul_mat (Q8_0 / Q8_K blocks, chosen by activation_type() in
// quant_dot.h), in SIMD lanes with exactly the bytes of core's reference quantizers.
#pragma once
#include "backends/cpu/kernel_level.h"
#include <cstdint>

#include "core/types.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

// Converts k floats into activation_type(w) blocks at dst: the same bytes as quantize_activations().
void quantize_activation_row(DType w, const float* x, void* dst, int64_t k);

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
