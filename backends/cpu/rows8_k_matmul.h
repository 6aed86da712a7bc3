// Matmul on K-quant weights in the interleaved-rows layout (rows8_k_layout.h), which the cpu backend makes at
// load at the avx2 and avx512 levels. Declared at every level so the matmul dispatch compiles everywhere;
// only a level with AVX2 computes with them, and mul_mat_ok takes such weights only there. Private to
// backends/cpu.
#pragma once
#include "backends/cpu/kernel_level.h"
#include <cstddef>
#include <cstdint>

#include "backends/cpu/cpu_ops.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

// Whether this level's kernels read rows8 K-quant weights (of type t: Q4_K, Q5_K, Q6_K, IQ4_XS).
bool rows8_k_compiled(DType t);
// Floats of per-thread scratch rows8_k_panel needs for `job`.
size_t rows8_k_scratch_floats(const MatmulJob& job);
// out for weight rows [r0, r1) (r0 a multiple of 8) of a job whose weights are rows8 K-quant strips;
// activations already quantized (activation_type: Q8_K), row j at qact + j * qstride.
void rows8_k_panel(const MatmulJob& job, int64_t r0, int64_t r1, const char* qact, size_t qstride, float* scratch);

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
