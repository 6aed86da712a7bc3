// One kernel level's entry points, as a table of plain function pointers: the cpu backend holds the
// table of the level it resolved at construction (no global switch), and tests and tools reach a given
// level's kernels through it. Each level's kernels are the same sources (backends/cpu/*.cpp except the
// level-independent files CMakeLists.txt names) compiled with that level's flags into the namespace
// tessera::cpu::<level>; kernel_table.cpp fills the table there.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "backends/cpu/attention_plan.h"
#include "backends/cpu/cpu_level.h"
#include "backends/cpu/cpu_parallel.h"
#include "core/tensor.h"

namespace tessera::cpu {

struct CpuKernels {
    CpuLevel level;
    bool emulated;    // the level's emulated twin (cpu_level.h): its instructions come from SIMDe
    int float_lanes;  // floats per SIMD vector of this level's float kernels

    // The backend's kernels, one pair per op family (cpu_ops.h): `*_ok` says whether the kernel takes the
    // node as laid out (as in the cuda backend).
    bool (*mul_mat_ok)(const Tensor& node);
    void (*mul_mat)(Tensor* dst, ThreadPool& pool, Scratch& scratch);
    bool (*mul_mat_in_place)(const Tensor& node);  // see cpu_ops.h's mul_mat_group
    void (*mul_mat_group)(Tensor* const* dsts, int count, ThreadPool& pool, Scratch& scratch);
    bool (*mul_mat_id_ok)(const Tensor& node);
    void (*mul_mat_id)(Tensor* dst, ThreadPool& pool, Scratch& scratch);
    bool (*elementwise_ok)(const Tensor& node);
    void (*elementwise)(Tensor* dst, ThreadPool& pool);
    bool (*norm_rope_softmax_ok)(const Tensor& node);
    void (*norm_rope_softmax)(Tensor* dst, ThreadPool& pool);
    bool (*copy_ok)(const Tensor& node);
    void (*copy)(Tensor* dst, ThreadPool& pool, Scratch& scratch);
    void (*attention)(Tensor* dst, ThreadPool& pool);

    // Pieces the kernel tests and benchmarks check on their own (see quant_dot.h, cpu_simd.h,
    // attention_plan.h for their contracts).
    DType (*activation_type)(DType w);
    size_t (*activation_row_bytes)(DType w, int64_t k);
    void (*quantize_activations)(DType w, const float* x, void* dst, int64_t k);
    void (*dot_tile)(DType w, int64_t k, const void* weights, size_t w_stride, int64_t nr, const void* acts,
                     size_t act_stride, int64_t nc, float* out, int64_t out_row_stride);
    int (*dot_tile_width)(DType w);
    void (*convert_f32_to_f16)(const float* src, uint16_t* dst, int64_t n);
    void (*convert_f32_to_bf16)(const float* src, uint16_t* dst, int64_t n);
    void (*convert_to_f32)(DType t, const void* src, float* dst, int64_t n);
    // sums[i] = sum of lanes[i * float_lanes .. (i + 1) * float_lanes), i < 16 (the register reduction).
    void (*reduce16)(const float* lanes, float* sums);
    AttentionPlan (*plan_attention_shape)(int64_t n_head, int64_t n_kv_head, int64_t d_k, int64_t d_v, int64_t n_q,
                                          int64_t n_kv, int n_threads);
    int64_t (*attention_kv_tile)(int64_t d_k, int64_t d_v, int64_t heads_per_unit);
    int64_t (*attention_q_tile)(int64_t group);
    size_t (*attention_scratch_bytes)(const Tensor& dst, int n_threads);

    KernelLevel kernel_level() const { return {level, emulated}; }
    std::string name() const { return kernel_level_name(kernel_level()); }  // as TESSERA_CPU takes it
};

// The table of `level` (which must be compiled in: cpu_level_compiled). Tables are immutable.
const CpuKernels& kernels_for(CpuLevel level);
// The table of a level or of its emulated twin (which must be compiled in: cpu_level_emulation_compiled).
const CpuKernels& kernels_for(KernelLevel level);
// The table a backend created now uses: kernels_for(resolve_kernel_level(requested)).
const CpuKernels& kernels_in_use(const std::string& requested = "");

}  // namespace tessera::cpu
