// Elementwise ops on the CUDA backend: add, mul, div (b broadcast over a), scale, silu, gelu (tanh form),
// gelu_erf, sigmoid, softcap, swiglu, geglu, swiglu_clamped. All F32, any element-aligned byte strides.
//
// One kernel body for every kind (a switch on a block-uniform kind). Two launch shapes:
//   - flat: every tensor contiguous and of one shape; one thread per element, grid-stride.
//   - strided: blocks step over rows (i1, i2, i3) in grid y and over i0 in grid x, so the row index
//     arithmetic is once per row; each tensor is read through its own byte strides, b at
//     (i0 % b.ne0, ..., i3 % b.ne3) (the broadcast; the identity for swiglu/geglu, whose shapes match).
//
// Precision: add, mul, div and scale are one correctly rounded f32 operation, which is exactly what the
// reference (double, rounded once) gives; __f*_rn keeps nvcc from fusing anything. The activations use
// the accurate (non-intrinsic) f32 library functions in numerically stable forms: the tanh-gelu as
// x * sigmoid(2u) and the erf-gelu with erfc, so the negative tails keep their relative precision
// instead of cancelling in 1 + tanh / 1 + erf. Expect a few f32 ulps against the double reference.
#include <algorithm>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_convert.cuh"
#include "core/error.h"
#include "core/ops.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>(blocks_for(n, kThreads), int64_t(1) << 30)); }

enum class Kind : int { Add, Mul, Div, Scale, Silu, Gelu, GeluErf, Sigmoid, Softcap, SwiGlu, GeGlu, SwiGluClamped };

__device__ __forceinline__ float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + expf(-x)); }
// 0.5 x (1 + tanh(u)) == x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3) (the reference's constants).
__device__ __forceinline__ float gelu_tanh_f(float x) {
    const float kSqrt2OverPi = 0.7978845608028654f;
    const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
    return x / (1.0f + expf(-2.0f * u));
}
// 0.5 x (1 + erf(x / sqrt 2)) == 0.5 x erfc(-x / sqrt 2).
__device__ __forceinline__ float gelu_erf_f(float x) { return 0.5f * x * erfcf(-x * 0.7071067811865476f); }

// One element of any kind: x from a, y from b (unused by the unary kinds), p and p1 the op's parameters.
__device__ __forceinline__ float apply(Kind k, float x, float y, float p, float p1) {
    switch (k) {
        case Kind::Add: return __fadd_rn(x, y);
        case Kind::Mul: return __fmul_rn(x, y);
        case Kind::Div: return __fdiv_rn(x, y);
        case Kind::Scale: return __fmul_rn(x, p);
        case Kind::Silu: return silu_f(x);
        case Kind::Gelu: return gelu_tanh_f(x);
        case Kind::GeluErf: return gelu_erf_f(x);
        case Kind::Sigmoid: return sigmoid_f(x);
        case Kind::Softcap: return p * tanhf(x / p);
        case Kind::SwiGlu: return silu_f(x) * y;
        case Kind::SwiGluClamped: {  // p alpha, p1 limit
            const float g = fminf(x, p1), u = fminf(fmaxf(y, -p1), p1);
            return g * sigmoid_f(p * g) * (u + 1.0f);
        }
        default: return gelu_tanh_f(x) * y;  // GeGlu
    }
}

// All tensors contiguous and of one shape: element e of each. b is null for the unary kinds.
__global__ void flat_kernel(Kind k, float p, float p1, const float* a, const float* b, float* out, int64_t n) {
    for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
        out[e] = apply(k, a[e], b ? b[e] : 0.0f, p, p1);
}

// Any strides; see the file comment. b is null for the unary kinds.
__global__ void strided_kernel(Kind k, float p, float p1, const uint8_t* a, Geometry ag, const uint8_t* b, Geometry bg,
                               uint8_t* out, Geometry og) {
    const int64_t ne0 = og.ne[0];
    const int64_t nrows = og.ne[1] * og.ne[2] * og.ne[3];
    for (int64_t row = blockIdx.y; row < nrows; row += gridDim.y) {
        const int64_t i1 = row % og.ne[1], i2 = (row / og.ne[1]) % og.ne[2], i3 = row / (og.ne[1] * og.ne[2]);
        const uint8_t* ar = a + i1 * ag.nb[1] + i2 * ag.nb[2] + i3 * ag.nb[3];
        uint8_t* orow = out + i1 * og.nb[1] + i2 * og.nb[2] + i3 * og.nb[3];
        const uint8_t* br =
            b ? b + (i1 % bg.ne[1]) * bg.nb[1] + (i2 % bg.ne[2]) * bg.nb[2] + (i3 % bg.ne[3]) * bg.nb[3] : nullptr;
        for (int64_t i0 = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i0 < ne0;
             i0 += int64_t(gridDim.x) * blockDim.x) {
            const float x = *reinterpret_cast<const float*>(ar + i0 * ag.nb[0]);
            float y = 0.0f;
            if (br) {
                const int64_t j0 = bg.ne[0] == ne0 ? i0 : (bg.ne[0] == 1 ? 0 : i0 % bg.ne[0]);
                y = *reinterpret_cast<const float*>(br + j0 * bg.nb[0]);
            }
            *reinterpret_cast<float*>(orow + i0 * og.nb[0]) = apply(k, x, y, p, p1);
        }
    }
}

bool kind_of(Op op, Kind* k) {
    switch (op) {
        case Op::Add: *k = Kind::Add; return true;
        case Op::Mul: *k = Kind::Mul; return true;
        case Op::Div: *k = Kind::Div; return true;
        case Op::Scale: *k = Kind::Scale; return true;
        case Op::Silu: *k = Kind::Silu; return true;
        case Op::Gelu: *k = Kind::Gelu; return true;
        case Op::GeluErf: *k = Kind::GeluErf; return true;
        case Op::Sigmoid: *k = Kind::Sigmoid; return true;
        case Op::Softcap: *k = Kind::Softcap; return true;
        case Op::SwiGlu: *k = Kind::SwiGlu; return true;
        case Op::GeGlu: *k = Kind::GeGlu; return true;
        case Op::SwiGluClamped: *k = Kind::SwiGluClamped; return true;
        default: return false;
    }
}

bool is_binary(Kind k) { return k == Kind::Add || k == Kind::Mul || k == Kind::Div; }
bool is_glu(Kind k) { return k == Kind::SwiGlu || k == Kind::GeGlu || k == Kind::SwiGluClamped; }

bool f32_aligned(const Tensor* t) { return t && t->type == DType::F32 && conv::aligned_for(*t, 4); }

const uint8_t* bytes(const Tensor* t) { return static_cast<const uint8_t*>(t->data); }

}  // namespace

bool elementwise_ok(const Tensor& node) {
    Kind k;
    if (!kind_of(node.op, &k)) return false;
    const Tensor* a = node.src[0];
    const Tensor* b = node.src[1];
    if (!f32_aligned(a) || !f32_aligned(&node) || !a->same_shape(node)) return false;
    if (is_binary(k)) {
        if (!f32_aligned(b)) return false;
        for (int i = 0; i < kMaxDims; ++i)
            if (b->ne[i] <= 0 || a->ne[i] % b->ne[i] != 0) return false;
        return true;
    }
    if (is_glu(k)) return f32_aligned(b) && b->same_shape(*a);
    return true;
}

void elementwise(const Tensor& node, Context& ctx) {
    TESSERA_CHECK(elementwise_ok(node), "cuda elementwise: %s '%s' is not handled here", op_name(node.op),
                  node.name.c_str());
    Kind k = Kind::Add;
    kind_of(node.op, &k);
    const Tensor* a = node.src[0];
    const Tensor* b = is_binary(k) || is_glu(k) ? node.src[1] : nullptr;
    const float p = k == Kind::SwiGluClamped ? swiglu_clamped_params(node).alpha
                                             : elementwise_param(node);  // scale factor or softcap cap
    const float p1 = k == Kind::SwiGluClamped ? swiglu_clamped_params(node).limit : 0.0f;
    const int64_t n = node.nelements();
    if (n == 0) return;
    const bool flat =
        a->is_contiguous() && node.is_contiguous() && (!b || (b->is_contiguous() && b->same_shape(node)));
    if (flat) {
        TESSERA_LAUNCH(grid_for(n), kThreads, 0, ctx.stream, flat_kernel)(
            k, p, p1, a->data_as<const float>(), b ? b->data_as<const float>() : nullptr, node.data_as<float>(), n);
    } else {
        // x covers a row (whole warps, at most kThreads a block), y the rows (grid-stride past 65535)
        const int64_t ne0 = node.ne[0];
        const int threads = int(std::min<int64_t>(kThreads, (ne0 + 31) / 32 * 32));
        const dim3 grid(unsigned(std::min<int64_t>(blocks_for(ne0, threads), int64_t(1) << 30)),
                        unsigned(std::min<int64_t>(node.nrows(), 65535)));
        TESSERA_LAUNCH(grid, threads, 0, ctx.stream, strided_kernel)(
            k, p, p1, bytes(a), geometry(*a), b ? bytes(b) : nullptr, b ? geometry(*b) : Geometry{},
            static_cast<uint8_t*>(node.data), geometry(node));
    }
    TESSERA_CUDA_LAUNCHED();
}

}  // namespace tessera::cuda
