// Shared by the CUDA backend's files: error checking that turns CUDA failures into tessera::Error, the
// per-backend context every op runs in (one stream, one cuBLAS handle, grow-only scratch, a device error
// flag), tensor geometry passed to kernels by value, and the entry points each op file provides.
//
// Every entry point is asynchronous on ctx.stream; the backend synchronizes once per graph. A `*_ok`
// function says whether the op file's kernels handle a node's types and layout; the backend computes the
// rest on the host with the reference ops (see cuda_host_fallback.cpp), so the CUDA backend supports
// exactly what the reference does.
#pragma once
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/tensor.h"

namespace tessera::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line);

#define TESSERA_CUDA(expr)                                                                            \
    do {                                                                                              \
        const cudaError_t tessera_cuda_err_ = (expr);                                                 \
        if (tessera_cuda_err_ != cudaSuccess)                                                         \
            ::tessera::cuda::throw_cuda_error(tessera_cuda_err_, #expr, __FILE__, __LINE__);          \
    } while (0)

#define TESSERA_CUBLAS(expr)                                                                          \
    do {                                                                                              \
        const cublasStatus_t tessera_cublas_st_ = (expr);                                             \
        if (tessera_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                              \
            ::tessera::cuda::throw_cublas_error(tessera_cublas_st_, #expr, __FILE__, __LINE__);       \
    } while (0)

// Kernel launches and dynamic shared memory are spelled through these two macros so the kernels also compile
// with a host compiler against the CPU emulation in tests/cuda_emu (which defines them for itself):
//   TESSERA_LAUNCH(grid, block, smem, stream, kernel)(args...)  is  kernel<<<grid, block, smem, stream>>>(args...)
//   TESSERA_DYNAMIC_SHARED(type, name);                          is  extern __shared__ type name[];
// The kernel comes last because a template kernel's name may hold commas (kernel<A, B>).
#ifdef __CUDACC__
#define TESSERA_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define TESSERA_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// Checks the last kernel launch (bad configuration, no kernel image for this GPU).
#define TESSERA_CUDA_LAUNCHED() TESSERA_CUDA(cudaGetLastError())

// Device memory handed out by size and reused across ops and graphs. Each slot is independent, so one op
// may hold several buffers at once (e.g. converted activations and dequantized weights).
class Scratch {
public:
    Scratch() = default;
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    ~Scratch();
    // At least `bytes` of device memory; contents undefined. Valid until the next get() on the same slot.
    // Growing frees the old block, so the caller's stream must be done with it: get() synchronizes first.
    void* get(int slot, size_t bytes, cudaStream_t stream);

    static constexpr int kSlots = 4;

private:
    void* ptr_[kSlots] = {};
    size_t size_[kSlots] = {};
};

// What a kernel found wrong in the data (a row id out of range, ...). Kernels record the node they ran for
// with atomicCAS(error_flag, 0, node_tag) so the first error wins; the backend reads the flag after the
// graph and names the node.
struct Context {
    int device = 0;
    cudaStream_t stream = nullptr;
    cublasHandle_t cublas = nullptr;
    int sm_count = 0;
    int compute_capability = 0;  // major * 10 + minor
    int* error_flag = nullptr;   // one int of device memory, 0 = no error
    int node_tag = 0;            // 1 + index of the node being computed
    Scratch scratch;
};

// A tensor's shape and byte strides, passed to kernels by value.
struct Geometry {
    int64_t ne[4];
    int64_t nb[4];
};

inline Geometry geometry(const Tensor& t) {
    Geometry g;
    for (int i = 0; i < 4; ++i) {
        g.ne[i] = t.ne[i];
        g.nb[i] = int64_t(t.nb[i]);
    }
    return g;
}

inline unsigned blocks_for(int64_t n, int per_block) { return unsigned((n + per_block - 1) / per_block); }

// ---- entry points, one op file each ----

// mul_mat for F32/F16/BF16 weights (cuBLAS) and quantized weights (matrix-vector kernels for few columns,
// dequantize + cuBLAS for prefill). cuda_matmul.cu
bool mul_mat_ok(const Tensor& node);
void mul_mat(const Tensor& node, Context& ctx);
bool mul_mat_id_ok(const Tensor& node);
void mul_mat_id(const Tensor& node, Context& ctx);

// The fused attention op (tiled online softmax; split-KV for one query token). cuda_attention.cu
bool attention_ok(const Tensor& node);
void attention(const Tensor& node, Context& ctx);

// add, mul, div, scale, silu, gelu, gelu_erf, sigmoid, softcap, swiglu, geglu. cuda_elementwise.cu
bool elementwise_ok(const Tensor& node);
void elementwise(const Tensor& node, Context& ctx);

// rms_norm, norm, rope, softmax. cuda_norm_rope_softmax.cu
bool norm_rope_softmax_ok(const Tensor& node);
void norm_rope_softmax(const Tensor& node, Context& ctx);

// get_rows, set_rows, cont (and cast), cpy. cuda_copy.cu
bool copy_ok(const Tensor& node);
void copy(const Tensor& node, Context& ctx);

// Any other node the reference supports: sources are copied to the host, the reference computes, the
// result is copied back. Synchronous. cuda_host_fallback.cpp
void host_fallback(Tensor& node, Context& ctx);

}  // namespace tessera::cuda
