// Row ops over dim 0 and rotary embedding on the CUDA backend: rms_norm, norm, softmax, rope. F32, any
// element-aligned byte strides.
//
// rms_norm / norm / softmax: one thread block per row (rows = ne1 * ne2 * ne3, gridDim.x), threads
// striding over the row, block-wide reductions (warp shuffles, then one value per warp in shared memory).
// They follow the reference's arithmetic: sums and the per-row factors in double, one rounding to f32 at
// the end, so only the summation order differs from the oracle. The row is re-read from global memory for
// each pass instead of being staged, which keeps any row length valid.
//
// rope: one block per (token i2, i3) and group of kRopeHeads heads. The block first builds that token's
// cos/sin table (n_dims / 2 entries, double, in shared memory) exactly as the reference does, YaRN
// included; the ramp bounds and mscale are set up once on the host (core/rope_yarn.h, as every backend
// does). Then its threads rotate every pair of its heads and copy the pass-through dims.
#include <algorithm>
#include <cmath>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_convert.cuh"
#include "core/error.h"
#include "core/ops.h"
#include "core/rope_yarn.h"

namespace tessera::cuda {

namespace {

constexpr int kMaxThreads = 256;
constexpr int kRopeThreads = 128;
constexpr int kRopeHeads = 4;            // heads per rope block (each block rebuilds its token's table)
constexpr int kRopeMaxDims = 4096;       // table of n_dims/2 cos + sin doubles: 32 KiB of shared memory

// Threads for a row of n: whole warps, no more than the row needs, at most kMaxThreads.
int row_threads(int64_t n) { return int(std::min<int64_t>(kMaxThreads, std::max<int64_t>(32, (n + 31) / 32 * 32))); }

// ---- block reductions (blockDim.x a multiple of 32, at most 1024); every thread gets the result ----

__device__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ double warp_max(double v) {
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ double block_sum(double v) {
    __shared__ double part[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();  // part[] may still be read by a previous reduction
    if (lane == 0) part[warp] = v;
    __syncthreads();
    return warp_sum(lane < nwarps ? part[lane] : 0.0);
}

// fmax ignores NaN, as the reference's std::max(mx, x) does when mx starts at -inf.
__device__ double block_max(double v) {
    __shared__ double part[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    return warp_max(lane < nwarps ? part[lane] : -INFINITY);
}

// Byte offset of row blockIdx.x (i1 fastest, then i2, i3) in a tensor of geometry g.
__device__ int64_t row_offset(const Geometry& g) {
    const int64_t r = blockIdx.x;
    const int64_t i1 = r % g.ne[1], i2 = (r / g.ne[1]) % g.ne[2], i3 = r / (g.ne[1] * g.ne[2]);
    return i1 * g.nb[1] + i2 * g.nb[2] + i3 * g.nb[3];
}

__device__ __forceinline__ float ld(const uint8_t* row, int64_t nb0, int64_t i0) {
    return *reinterpret_cast<const float*>(row + i0 * nb0);
}
__device__ __forceinline__ void st(uint8_t* row, int64_t nb0, int64_t i0, float v) {
    *reinterpret_cast<float*>(row + i0 * nb0) = v;
}

// x / sqrt(mean(x^2) + eps)
__global__ void rms_norm_kernel(const uint8_t* a, Geometry ag, uint8_t* out, Geometry og, double eps) {
    const int64_t n = ag.ne[0];
    const uint8_t* x = a + row_offset(ag);
    uint8_t* y = out + row_offset(og);
    double ss = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const double v = ld(x, ag.nb[0], i);
        ss += v * v;
    }
    ss = block_sum(ss);
    const double inv = 1.0 / sqrt(ss / double(n) + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(y, og.nb[0], i, float(double(ld(x, ag.nb[0], i)) * inv));
}

// (x - mean) / sqrt(var + eps), population variance, two passes like the reference.
__global__ void norm_kernel(const uint8_t* a, Geometry ag, uint8_t* out, Geometry og, double eps) {
    const int64_t n = ag.ne[0];
    const uint8_t* x = a + row_offset(ag);
    uint8_t* y = out + row_offset(og);
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += ld(x, ag.nb[0], i);
    const double mean = block_sum(s) / double(n);
    double var = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const double d = double(ld(x, ag.nb[0], i)) - mean;
        var += d * d;
    }
    var = block_sum(var);
    const double inv = 1.0 / sqrt(var / double(n) + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        st(y, og.nb[0], i, float((double(ld(x, ag.nb[0], i)) - mean) * inv));
}

// softmax(x * scale + mask[:, i1]) with the mask (if any) broadcast over dims 2, 3. A row whose every
// value is -inf (fully masked) gives zeros, as the reference.
__global__ void softmax_kernel(const uint8_t* a, Geometry ag, const uint8_t* mask, Geometry mg, uint8_t* out,
                               Geometry og, double scale) {
    const int64_t n = ag.ne[0];
    const uint8_t* x = a + row_offset(ag);
    uint8_t* y = out + row_offset(og);
    const int64_t i1 = int64_t(blockIdx.x) % ag.ne[1];
    const uint8_t* m = mask ? mask + i1 * mg.nb[1] : nullptr;
    auto value = [&](int64_t i) {
        double v = double(ld(x, ag.nb[0], i)) * scale;
        if (m) v += ld(m, mg.nb[0], i);
        return v;
    };
    double mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mx = fmax(mx, value(i));
    mx = block_max(mx);
    if (mx == -INFINITY) {  // the same for every thread of the block
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(y, og.nb[0], i, 0.0f);
        return;
    }
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += exp(value(i) - mx);
    s = block_sum(s);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(y, og.nb[0], i, float(exp(value(i) - mx) / s));
}

struct RopeArgs {
    int n_dims;
    bool neox;
    double base;
    RopeYarn yarn;
};

__global__ void rope_kernel(const uint8_t* x, Geometry xg, const uint8_t* pos, int64_t pos_nb0, const uint8_t* ff,
                            int64_t ff_nb0, uint8_t* out, Geometry og, RopeArgs ra) {
    TESSERA_DYNAMIC_SHARED(double, table);  // cos at [0, half), sin at [half, 2 half)
    const int half = ra.n_dims / 2;
    const int64_t i2 = int64_t(blockIdx.x) % xg.ne[2], i3 = int64_t(blockIdx.x) / xg.ne[2];
    const double p = *reinterpret_cast<const int32_t*>(pos + i2 * pos_nb0);
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        double theta_extrap = p * pow(ra.base, -2.0 * i / ra.n_dims);
        if (ff) theta_extrap /= double(*reinterpret_cast<const float*>(ff + i * ff_nb0));
        const double theta = rope_theta(ra.yarn, i, theta_extrap);
        table[i] = cos(theta) * ra.yarn.mscale;
        table[half + i] = sin(theta) * ra.yarn.mscale;
    }
    __syncthreads();

    const int64_t h0 = int64_t(blockIdx.y) * kRopeHeads;
    const int64_t nh = xg.ne[1] - h0 < kRopeHeads ? xg.ne[1] - h0 : kRopeHeads;
    const uint8_t* xb = x + i2 * xg.nb[2] + i3 * xg.nb[3];
    uint8_t* ob = out + i2 * og.nb[2] + i3 * og.nb[3];
    for (int64_t k = threadIdx.x; k < nh * half; k += blockDim.x) {
        const int64_t h = h0 + k / half;
        const int i = int(k % half);
        const int64_t j0 = ra.neox ? i : 2 * i;
        const int64_t j1 = ra.neox ? i + half : 2 * i + 1;
        const uint8_t* xr = xb + h * xg.nb[1];
        uint8_t* yr = ob + h * og.nb[1];
        const double x0 = ld(xr, xg.nb[0], j0), x1 = ld(xr, xg.nb[0], j1);
        const double c = table[i], s = table[half + i];
        st(yr, og.nb[0], j0, float(x0 * c - x1 * s));
        st(yr, og.nb[0], j1, float(x0 * s + x1 * c));
    }
    const int64_t rest = xg.ne[0] - ra.n_dims;  // pass-through dims
    for (int64_t k = threadIdx.x; k < nh * rest; k += blockDim.x) {
        const int64_t h = h0 + k / rest;
        const int64_t i0 = ra.n_dims + k % rest;
        st(ob + h * og.nb[1], og.nb[0], i0, ld(xb + h * xg.nb[1], xg.nb[0], i0));
    }
}

bool f32_aligned(const Tensor* t) { return t && t->type == DType::F32 && conv::aligned_for(*t, 4); }
bool i32_aligned(const Tensor* t) { return t && t->type == DType::I32 && conv::aligned_for(*t, 4); }

const uint8_t* bytes(const Tensor* t) { return t ? static_cast<const uint8_t*>(t->data) : nullptr; }

bool rope_ok(const Tensor& node) {
    const Tensor* x = node.src[0];
    const Tensor* pos = node.src[1];
    const Tensor* ff = node.src[2];
    const RopeParams rp = rope_params(node);
    const int n_dims = rp.n_dims;
    const int mode = rp.mode;
    if (!i32_aligned(pos) || pos->ne[0] != x->ne[2]) return false;
    if (ff && (!f32_aligned(ff) || ff->ne[0] < n_dims / 2)) return false;
    return (mode == kRopeNormal || mode == kRopeNeox) && n_dims > 0 && n_dims % 2 == 0 && n_dims <= x->ne[0] &&
           n_dims <= kRopeMaxDims;
}

bool softmax_ok(const Tensor& node) {
    const Tensor* a = node.src[0];
    const Tensor* mask = node.src[1];
    if (!mask) return true;
    return f32_aligned(mask) && mask->ne[0] == a->ne[0] && mask->ne[1] >= a->ne[1];
}

void launch_rope(const Tensor& node, Context& ctx) {
    const Tensor& x = *node.src[0];
    const Tensor& pos = *node.src[1];
    const Tensor* ff = node.src[2];
    const RopeParams rp = rope_params(node);
    RopeArgs ra{};
    ra.n_dims = rp.n_dims;
    ra.neox = rp.mode == kRopeNeox;
    ra.base = rp.freq_base;
    ra.yarn = rope_yarn(rp);
    const dim3 grid(unsigned(x.ne[2] * x.ne[3]), unsigned((x.ne[1] + kRopeHeads - 1) / kRopeHeads));
    const size_t shared = size_t(ra.n_dims) * sizeof(double);  // n_dims / 2 cos + n_dims / 2 sin
    TESSERA_LAUNCH(grid, kRopeThreads, shared, ctx.stream, rope_kernel)(
        bytes(&x), geometry(x), bytes(&pos), int64_t(pos.nb[0]), bytes(ff), ff ? int64_t(ff->nb[0]) : 0,
        static_cast<uint8_t*>(node.data), geometry(node), ra);
}

}  // namespace

bool norm_rope_softmax_ok(const Tensor& node) {
    const Tensor* a = node.src[0];
    if (!f32_aligned(a) || !f32_aligned(&node) || !a->same_shape(node)) return false;
    // one block per row (gridDim.x), and for rope one per (token, i3)
    if (a->nrows() > int64_t(INT32_MAX)) return false;
    switch (node.op) {
        case Op::RmsNorm:
        case Op::Norm: return true;
        case Op::SoftMax: return softmax_ok(node);
        case Op::Rope: return rope_ok(node) && (a->ne[1] + kRopeHeads - 1) / kRopeHeads <= 65535;
        default: return false;
    }
}

void norm_rope_softmax(const Tensor& node, Context& ctx) {
    TESSERA_CHECK(norm_rope_softmax_ok(node), "cuda norm/rope/softmax: %s '%s' is not handled here",
                  op_name(node.op), node.name.c_str());
    const Tensor& a = *node.src[0];
    if (a.nelements() == 0) return;
    auto* out = static_cast<uint8_t*>(node.data);
    const unsigned rows = unsigned(a.nrows());
    const int threads = row_threads(a.ne[0]);
    switch (node.op) {
        case Op::RmsNorm:
            TESSERA_LAUNCH(rows, threads, 0, ctx.stream, rms_norm_kernel)(bytes(&a), geometry(a), out, geometry(node),
                                                                          double(norm_eps(node)));
            break;
        case Op::Norm:
            TESSERA_LAUNCH(rows, threads, 0, ctx.stream, norm_kernel)(bytes(&a), geometry(a), out, geometry(node),
                                                                      double(norm_eps(node)));
            break;
        case Op::SoftMax: {
            const Tensor* mask = node.src[1];
            const Geometry mg = mask ? geometry(*mask) : Geometry{};
            TESSERA_LAUNCH(rows, threads, 0, ctx.stream, softmax_kernel)(bytes(&a), geometry(a), bytes(mask), mg, out,
                                                                         geometry(node), double(softmax_scale(node)));
            break;
        }
        case Op::Rope: launch_rope(node, ctx); break;
        default: return;
    }
    TESSERA_CUDA_LAUNCHED();
}

}  // namespace tessera::cuda
