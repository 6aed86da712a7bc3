// The CUDA matmul kernels (device code only; the launches are in cuda_matmul.cu): the matrix-vector
// kernel for decode, F16 dequantization for prefill and strided row packing. Kept apart from the host
// code so that they can be compiled and run on the CPU under an emulation of CUDA's thread model when no
// GPU is at hand.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "backends/cuda/cuda_matmul.cuh"
#include "backends/cuda/cuda_quant.cuh"

namespace tessera::cuda::mm {

constexpr int kMatvecThreads = 128;  // 4 warps, all on the same rows
constexpr int kMatvecWarps = kMatvecThreads / 32;
constexpr int kMatvecRows = 4;       // weight rows per block

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ float dot4(const float* q, float4 x) { return q[0] * x.x + q[1] * x.y + q[2] * x.z + q[3] * x.w; }

// See MatvecParams. grid.x: blocks of kMatvecRows rows; grid.y strides over the problems.
// NC is the compile-time column capacity (1 or kMatvecMaxCols); p.m <= NC columns are computed.
template <class Q, int NC>
__global__ void __launch_bounds__(kMatvecThreads) matvec_kernel(const MatvecParams p) {
    __shared__ float partial[kMatvecWarps][kMatvecRows][NC];
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
    const int64_t row0 = int64_t(blockIdx.x) * kMatvecRows;
    const int slices = int(p.k / Q::kElems) * Q::kSlices;  // full slices per row

    for (int64_t z = blockIdx.y; z < p.nz; z += gridDim.y) {  // z is uniform over the block
        const int64_t z0 = z % p.nz0, z1 = z / p.nz0;
        float* out = p.out + z0 * p.o_z0 + z1 * p.o_z1;
        int64_t wmat;
        if (p.ids) {
            const int32_t id = *reinterpret_cast<const int32_t*>(p.ids + z0 * p.ids_nb0 + z1 * p.ids_nb1);
            if (id < 0 || id >= p.n_expert) {  // data error: the first one wins; this output stays zero
                if (blockIdx.x == 0 && threadIdx.x == 0) atomicCAS(p.error_flag, 0, p.node_tag);
                for (int i = int(threadIdx.x); i < kMatvecRows * p.m; i += kMatvecThreads) {
                    const int64_t row = row0 + i % kMatvecRows;
                    if (row < p.n) out[(i / kMatvecRows) * p.o_col + row] = 0.0f;
                }
                continue;
            }
            wmat = int64_t(id) * p.w_nb0;
        } else {
            wmat = (z0 / p.w_div0) * p.w_nb0 + (z1 / p.w_div1) * p.w_nb1;
        }
        const uint8_t* rows[kMatvecRows];
#pragma unroll
        for (int r = 0; r < kMatvecRows; ++r)  // rows past the end re-read the last one; never stored
            rows[r] = p.w + wmat + min(row0 + r, p.n - 1) * p.w_row;
        const float* x = p.x + z0 * p.x_z0 + z1 * p.x_z1;

        float acc[kMatvecRows][NC];
#pragma unroll
        for (int r = 0; r < kMatvecRows; ++r)
#pragma unroll
            for (int c = 0; c < NC; ++c) acc[r][c] = 0.0f;

        for (int s = int(threadIdx.x); s < slices; s += kMatvecThreads) {
            const int blk = s / Q::kSlices, sl = s % Q::kSlices;
            Slice w[kMatvecRows];
#pragma unroll
            for (int r = 0; r < kMatvecRows; ++r) Q::load(rows[r] + int64_t(blk) * Q::kBytes, sl, w[r]);
            const int64_t e0 = int64_t(blk) * Q::kElems + Q::run(sl, 0);
            const int64_t e1 = int64_t(blk) * Q::kElems + Q::run(sl, 1);
#pragma unroll
            for (int c = 0; c < NC; ++c) {
                if (c >= p.m) break;
                const float* xc = x + c * p.x_col;
                const float4 xa = __ldg(reinterpret_cast<const float4*>(xc + e0));
                const float4 xb = __ldg(reinterpret_cast<const float4*>(xc + e1));
#pragma unroll
                for (int r = 0; r < kMatvecRows; ++r) {
                    if constexpr (Q::kScaled)
                        acc[r][c] += w[r].scale[0] * dot4(w[r].q, xa) + w[r].scale[1] * dot4(w[r].q + 4, xb);
                    else
                        acc[r][c] += dot4(w[r].q, xa) + dot4(w[r].q + 4, xb);
                }
                if constexpr (Q::kOffset) {  // sum(q * scale + offset) x = scale * q.x + offset * sum(x)
                    const float sa = (xa.x + xa.y) + (xa.z + xa.w), sb = (xb.x + xb.y) + (xb.z + xb.w);
#pragma unroll
                    for (int r = 0; r < kMatvecRows; ++r) acc[r][c] += w[r].offset[0] * sa + w[r].offset[1] * sb;
                }
            }
        }
        if constexpr (Q::kTail) {  // float weights: the last k % 8 elements, one at a time
            for (int64_t i = int64_t(slices) * 8 + threadIdx.x; i < p.k; i += kMatvecThreads) {
#pragma unroll
                for (int r = 0; r < kMatvecRows; ++r) {
                    const float wv = Q::scalar(rows[r], i);
#pragma unroll
                    for (int c = 0; c < NC; ++c)
                        if (c < p.m) acc[r][c] += wv * x[c * p.x_col + i];
                }
            }
        }

#pragma unroll
        for (int r = 0; r < kMatvecRows; ++r)
#pragma unroll
            for (int c = 0; c < NC; ++c) {
                const float v = warp_sum(acc[r][c]);
                if (lane == 0) partial[warp][r][c] = v;
            }
        __syncthreads();
        if (threadIdx.x < kMatvecRows * NC) {
            const int r = int(threadIdx.x) / NC, c = int(threadIdx.x) % NC;
            if (c < p.m && row0 + r < p.n) {
                float v = 0.0f;
#pragma unroll
                for (int wi = 0; wi < kMatvecWarps; ++wi) v += partial[wi][r][c];
                out[c * p.o_col + row0 + r] = v;
            }
        }
        __syncthreads();  // partial is rewritten for the next problem
    }
}

// Dequantizes rows x k of a quantized matrix (row stride w_row bytes) to F16 rows of ld elements, one
// slice per thread, with the reference's floats rounded to nearest F16.
template <class Q>
__global__ void dequant_f16_kernel(const uint8_t* w, int64_t w_row, int64_t rows, int64_t k, __half* out, int64_t ld) {
    const int64_t per_row = k / Q::kElems * Q::kSlices;
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= rows * per_row) return;
    const int64_t row = t / per_row, s = t % per_row;
    const int64_t blk = s / Q::kSlices;
    const int sl = int(s % Q::kSlices);
    Slice v;
    Q::load(w + row * w_row + blk * Q::kBytes, sl, v);
    __half* o = out + row * ld + blk * Q::kElems;
#pragma unroll
    for (int r = 0; r < 2; ++r) {  // 4 consecutive elements: two 4-byte aligned half2 stores (ld % 8 == 0)
        __half2* dst = reinterpret_cast<__half2*>(o + Q::run(sl, r));
        dst[0] = __halves2half2(__float2half_rn(dequant_value<Q>(v, 4 * r)), __float2half_rn(dequant_value<Q>(v, 4 * r + 1)));
        dst[1] = __halves2half2(__float2half_rn(dequant_value<Q>(v, 4 * r + 2)), __float2half_rn(dequant_value<Q>(v, 4 * r + 3)));
    }
}

__device__ __forceinline__ void store_as(float* d, float v) { *d = v; }
__device__ __forceinline__ void store_as(__half* d, float v) { *d = __float2half_rn(v); }

// Element (i0, i1, i2, i3) of a strided F32 or BF16 tensor to dst[((i3 * ne2 + i2) * ne1 + i1) * ld + i0].
template <DType kIn, class Out>
__global__ void pack_rows_kernel(const uint8_t* src, Geometry g, Out* dst, int64_t ld) {
    const int64_t total = g.ne[0] * g.ne[1] * g.ne[2] * g.ne[3];
    for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += int64_t(gridDim.x) * blockDim.x) {
        const int64_t i0 = idx % g.ne[0];
        const int64_t row = idx / g.ne[0];  // (i3 * ne2 + i2) * ne1 + i1
        const int64_t i1 = row % g.ne[1], i2 = (row / g.ne[1]) % g.ne[2], i3 = row / (g.ne[1] * g.ne[2]);
        const uint8_t* p = src + i0 * g.nb[0] + i1 * g.nb[1] + i2 * g.nb[2] + i3 * g.nb[3];
        float v;
        if constexpr (kIn == DType::F32)
            v = *reinterpret_cast<const float*>(p);
        else
            v = __uint_as_float(uint32_t(*reinterpret_cast<const uint16_t*>(p)) << 16);
        store_as(dst + row * ld + i0, v);
    }
}

}  // namespace tessera::cuda::mm
