// Internal to the CUDA matmul files (cuda_matmul.cu, cuda_matmul_id.cu): the matrix-vector kernel's
// parameters and launcher, activation packing and weight re-alignment. The kernels live in cuda_matmul.cu.
#pragma once
#include <cstdint>

#include "backends/cuda/cuda_common.cuh"

namespace tessera::cuda::mm {

// Up to this many activation columns a product runs as matrix-vector (every weight byte read once);
// more go through dequantize + cuBLAS.
constexpr int64_t kMatvecMaxCols = 8;

// One launch computes nz independent problems out[:, 0..m) = W x[:, 0..m), W n x k. Problem z is split
// as z0 = z % nz0, z1 = z / nz0 and picks its matrices by strides:
//   weight: w + (z0 / w_div0) * w_nb0 + (z1 / w_div1) * w_nb1   (mul_mat: the batch broadcast), or, when
//           ids is set, w + ids[z0, z1] * w_nb0 (mul_mat_id: z0 = slot, z1 = token);
//   activations: x + z0 * x_z0 + z1 * x_z1, column c at + c * x_col (floats; 16-byte aligned, see below);
//   output: out + z0 * o_z0 + z1 * o_z1, column c at + c * o_col (floats).
struct MatvecParams {
    const uint8_t* w = nullptr;
    int64_t w_row = 0;  // bytes between weight rows
    int64_t n = 0, k = 0;
    int m = 1;  // columns, 1..kMatvecMaxCols
    int64_t nz0 = 1, nz = 1;
    int64_t w_nb0 = 0, w_nb1 = 0, w_div0 = 1, w_div1 = 1;
    const float* x = nullptr;
    int64_t x_col = 0, x_z0 = 0, x_z1 = 0;
    float* out = nullptr;
    int64_t o_col = 0, o_z0 = 0, o_z1 = 0;
    // mul_mat_id only
    const uint8_t* ids = nullptr;
    int64_t ids_nb0 = 0, ids_nb1 = 0;  // bytes
    int64_t n_expert = 0;
    int* error_flag = nullptr;
    int node_tag = 0;
};

// The weight types the kernels decode (F32, F16, BF16 and the ten GGUF block types of cuda_quant.cuh).
bool weight_type_ok(DType t);

// Requirements of launch_matvec on its pointers (0 for a type it does not handle): every weight block
// starts on a multiple of
// weight_align(t) bytes (see cuda_quant.cuh), x and every column and problem offset of x on 16 bytes.
int weight_align(DType t);
void launch_matvec(DType t, const MatvecParams& p, cudaStream_t stream);

// True when p and every stride nb[d] of a dim d in [first, 4) with ne[d] > 1 are multiples of align.
bool strides_aligned(const void* p, const Tensor& t, int first, int64_t align);

// Weights as launch_matvec needs them: the tensor itself when its blocks are aligned, else a copy in
// scratch slot 2 with each row's pitch rounded up to 16 bytes (matrices packed one after another).
struct WeightRows {
    const uint8_t* data;
    int64_t nb1, nb2, nb3;
};
WeightRows matvec_weights(const Tensor& w, Context& ctx);

// Activations as launch_matvec needs them: x rows of the F32 tensor t (any strides that are multiples of
// 4 bytes). The tensor itself when it qualifies, else a packed copy in scratch slot 1 with rows of
// round_up(k, 4) floats. Strides returned in floats.
struct ActivationRows {
    const float* data;
    int64_t s1, s2, s3;
};
ActivationRows matvec_activations(const Tensor& t, Context& ctx);

}  // namespace tessera::cuda::mm
