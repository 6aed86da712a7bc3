// This level's CpuKernels table (see cpu_kernels.h). Compiled once per kernel level, like the kernels.
#include "backends/cpu/attention.h"
#include "backends/cpu/attention_plan.h"
#include "backends/cpu/cpu_act_quant.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/cpu_simd.h"
#include "backends/cpu/quant_dot.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

namespace {

void reduce16_flat(const float* lanes, float* sums) {
    vfloat acc[16];
    for (int i = 0; i < 16; ++i) acc[i] = vload(lanes + i * kLanes);
    reduce16(acc, sums);
}

}  // namespace

const CpuKernels& kernel_table() {
    static constexpr CpuKernels table{
        CpuLevel::TESSERA_CPU_LEVEL_ID,
#ifdef TESSERA_CPU_EMULATED
        true,
#else
        false,
#endif
        kLanes,
        mul_mat_ok,
        mul_mat,
        mul_mat_in_place,
        mul_mat_group,
        mul_mat_id_ok,
        mul_mat_id,
        elementwise_ok,
        elementwise,
        norm_rope_softmax_ok,
        norm_rope_softmax,
        copy_ok,
        copy,
        attention,
        activation_type,
        activation_row_bytes,
        quantize_activation_row,  // the SIMD form of quant_dot.h's quantize_activations, same bytes
        dot_tile,
        dot_tile_width,
        convert_f32_to_f16,
        convert_f32_to_bf16,
        convert_to_f32,
        reduce16_flat,
        plan_attention_shape,
        attention_kv_tile,
        attention_q_tile,
        attention_scratch_bytes,
    };
    return table;
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
