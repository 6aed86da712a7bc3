// The cpu backend's kernels, one entry per op family. Each kernel file
// owns its layout checks: `*_ok` says whether the kernel takes the node as
// laid out, and the backend falls back to the reference otherwise.
// Private to backends/cpu.
#pragma once
#include "backends/cpu/kernel_level.h"
#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/cpu/cpu_parallel.h"
#include "core/tensor.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

// One 2-D product: out[j * out_stride + i] = dot(weight row i, activation row j),
// i < n, j < m. Activations are contiguous f32 rows.
struct MatmulJob {
    DType wtype = DType::F32;
    const char* w = nullptr;  // weight row 0
    size_t w_stride = 0;      // bytes between weight rows
    int64_t n = 0, k = 0;
    const float* act = nullptr;  // activation row 0
    size_t act_stride = 0;       // floats between activation rows
    int64_t m = 0;
    float* out = nullptr;
    size_t out_stride = 0;  // floats between output columns (one per activation row)
    bool amx_repacked = false;  // w is in amx_repack.h's tile layout (the amx level's kernels only)
    bool rows8_repacked = false;  // w is in rows8_layout.h's (Q4_0) or rows8_k_layout.h's (K-quants) interleaved rows (levels with AVX2)
};

// Weight types the matmul fast path computes (f32/f16/bf16 directly, the rest through quant_dot.h).
bool matmul_weight_type_ok(DType t);
// Runs the jobs, all threads sharing the work (weight row panels of every job).
void run_matmul_jobs(const std::vector<MatmulJob>& jobs, ThreadPool& pool, Scratch& scratch);

bool mul_mat_ok(const Tensor& node);
void mul_mat(Tensor* dst, ThreadPool& pool, Scratch& scratch);
// Products whose activations mul_mat reads in place (not packed into scratch first) can run together:
// mul_mat_group runs such nodes' products as one job list, on one fork/join of the pool, converting an
// activation shared by several of them once. The nodes must not read each other's results.
bool mul_mat_in_place(const Tensor& node);
void mul_mat_group(Tensor* const* dsts, int count, ThreadPool& pool, Scratch& scratch);
bool mul_mat_id_ok(const Tensor& node);
void mul_mat_id(Tensor* dst, ThreadPool& pool, Scratch& scratch);

bool elementwise_ok(const Tensor& node);  // add/mul/div/scale/unary/glu
void elementwise(Tensor* dst, ThreadPool& pool);

bool norm_rope_softmax_ok(const Tensor& node);  // rms_norm, norm, rope, softmax
void norm_rope_softmax(Tensor* dst, ThreadPool& pool);

bool copy_ok(const Tensor& node);  // get_rows, cont/cast, cpy
void copy(Tensor* dst, ThreadPool& pool, Scratch& scratch);

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
