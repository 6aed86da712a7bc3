// mul_mat on the CUDA backend (ops.h: a [k, n, a2, a3] x b [k, m, b2, b3] -> F32 [n, m, b2, b3]).
//
// Decode (m <= kMatvecMaxCols): a matrix-vector kernel that reads every weight byte once. A block of 4
// warps owns kMatvecRows weight rows; its 128 threads stride over the rows' 8-value slices
// (cuda_quant.cuh), decode them in registers and dot them with all m activation columns, so each
// activation load serves kMatvecRows rows. Partial sums meet through warp shuffles and shared memory.
// Splitting k across the block's warps (rather than one warp per row) keeps enough loads in flight for
// the few thousand rows of a typical decode matrix.
//
// Prefill (more columns): quantized and BF16 weights are dequantized to F16 in scratch (in chunks of
// rows, bit-exact reference values rounded to F16), activations converted to F16, and cuBLAS multiplies
// with FP32 accumulation on the tensor cores. F16 was chosen over an FP32 GEMM because FP32 runs an
// order of magnitude slower; the cost is activations rounded to F16 (11-bit mantissa, |x| <= 65504),
// the same trade llama.cpp makes. BF16 weights become F16 exactly except below 6e-5 in magnitude (F16
// subnormals) and above 65504. F32 weights stay F32 (FP32 GEMM on F32 activations, no TF32); F16 weights
// go to cuBLAS as they are.
#include <algorithm>
#include <climits>

#include "backends/cuda/cuda_matmul.cuh"
#include "backends/cuda/cuda_matmul_kernels.cuh"
#include "core/error.h"

namespace tessera::cuda {

namespace mm {

namespace {

constexpr int64_t kDequantChunkElems = int64_t(1) << 26;  // F16 scratch per prefill chunk: 128 MiB

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

template <DType kIn, class Out>
void pack_rows(const void* src, const Geometry& g, Out* dst, int64_t ld, cudaStream_t stream) {
    const int64_t total = g.ne[0] * g.ne[1] * g.ne[2] * g.ne[3];
    if (total == 0) return;
    const unsigned blocks = unsigned(std::min<int64_t>((total + 255) / 256, int64_t(1) << 20));
    TESSERA_LAUNCH(blocks, 256, 0, stream, pack_rows_kernel<kIn, Out>)(static_cast<const uint8_t*>(src), g, dst, ld);
    TESSERA_CUDA_LAUNCHED();
}

template <class Q, int NC>
void launch_matvec_for(const MatvecParams& p, cudaStream_t stream) {
    const dim3 grid(blocks_for(p.n, kMatvecRows), unsigned(std::min<int64_t>(p.nz, 65535)));
    TESSERA_LAUNCH(grid, kMatvecThreads, 0, stream, matvec_kernel<Q, NC>)(p);
    TESSERA_CUDA_LAUNCHED();
}

// Rows [r0, r0 + rows) of one weight matrix (not F32/F16) to F16 rows of ld elements.
void dequant_rows_f16(const Tensor& a, const uint8_t* mat, int64_t r0, int64_t rows, __half* dst, int64_t ld,
                      cudaStream_t stream) {
    const int64_t k = a.ne[0];
    const uint8_t* src = mat + r0 * int64_t(a.nb[1]);
    if (a.type == DType::BF16) {
        Geometry g{};
        g.ne[0] = k; g.ne[1] = rows; g.ne[2] = 1; g.ne[3] = 1;
        g.nb[0] = 2; g.nb[1] = int64_t(a.nb[1]);
        pack_rows<DType::BF16, __half>(src, g, dst, ld, stream);
        return;
    }
    dispatch_weight_type(a.type, [&]<class Q>() {
        if constexpr (Q::kScaled) {
            const int64_t threads = rows * (k / Q::kElems * Q::kSlices);
            if (threads == 0) return;
            TESSERA_LAUNCH(blocks_for(threads, 256), 256, 0, stream, dequant_f16_kernel<Q>)(
                src, int64_t(a.nb[1]), rows, k, dst, ld);
            TESSERA_CUDA_LAUNCHED();
        }
    });
}

// C (n x m, column-major, ldc) = A^T B for `batch` problems: A (k x n, lda) shared, B (k x m, ldb) and C
// advancing by stride_b / stride_c elements. In tessera terms: rows of a times rows of b.
void gemm(Context& ctx, int64_t n, int64_t m, int64_t k, const void* A, cudaDataType at, int64_t lda, const void* B,
          cudaDataType bt, int64_t ldb, int64_t stride_b, float* C, int64_t ldc, int64_t stride_c, int64_t batch) {
    const float alpha = 1.0f, beta = 0.0f;
    TESSERA_CUBLAS(cublasGemmStridedBatchedEx(ctx.cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), int(k), &alpha, A, at,
                                              int(lda), 0, B, bt, int(ldb), stride_b, &beta, C, CUDA_R_32F, int(ldc),
                                              stride_c, int(batch), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void mul_mat_vec(const Tensor& node, Context& ctx) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const WeightRows w = matvec_weights(a, ctx);
    const ActivationRows x = matvec_activations(b, ctx);
    MatvecParams p;
    p.w = w.data;
    p.w_row = w.nb1;
    p.n = a.ne[1];
    p.k = a.ne[0];
    p.m = int(b.ne[1]);
    p.nz0 = b.ne[2];
    p.nz = b.ne[2] * b.ne[3];
    p.w_nb0 = w.nb2;
    p.w_nb1 = w.nb3;
    p.w_div0 = b.ne[2] / a.ne[2];
    p.w_div1 = b.ne[3] / a.ne[3];
    p.x = x.data;
    p.x_col = x.s1;
    p.x_z0 = x.s2;
    p.x_z1 = x.s3;
    p.out = static_cast<float*>(node.data);
    p.o_col = int64_t(node.nb[1] / 4);
    p.o_z0 = int64_t(node.nb[2] / 4);
    p.o_z1 = int64_t(node.nb[3] / 4);
    launch_matvec(a.type, p, ctx.stream);
}

void mul_mat_gemm(const Tensor& node, Context& ctx) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const int64_t k = a.ne[0], n = a.ne[1], m = b.ne[1];
    const int64_t r2 = b.ne[2] / a.ne[2], r3 = b.ne[3] / a.ne[3];
    float* out = static_cast<float*>(node.data);
    const int64_t o1 = int64_t(node.nb[1] / 4), o2 = int64_t(node.nb[2] / 4), o3 = int64_t(node.nb[3] / 4);

    // B: F32 activations for F32 weights (in place when cuBLAS can read them), else F16.
    const bool f32 = a.type == DType::F32;
    const void* bdata;
    cudaDataType btype;
    int64_t ldb, sb2, sb3;
    if (f32 && b.nb[0] == 4 && b.nb[1] >= size_t(4 * k) && strides_aligned(b.data, b, 1, 4)) {
        bdata = b.data;
        btype = CUDA_R_32F;
        ldb = int64_t(b.nb[1] / 4);
        sb2 = int64_t(b.nb[2] / 4);
        sb3 = int64_t(b.nb[3] / 4);
    } else {
        const int64_t ld = round_up(k, 8);
        const int64_t rows = b.nrows();
        const size_t esize = f32 ? 4 : 2;
        void* packed = ctx.scratch.get(1, size_t(rows * ld) * esize, ctx.stream);
        if (f32)
            pack_rows<DType::F32, float>(b.data, geometry(b), static_cast<float*>(packed), ld, ctx.stream);
        else
            pack_rows<DType::F32, __half>(b.data, geometry(b), static_cast<__half*>(packed), ld, ctx.stream);
        bdata = packed;
        btype = f32 ? CUDA_R_32F : CUDA_R_16F;
        ldb = ld;
        sb2 = ld * m;
        sb3 = ld * m * b.ne[2];
    }
    const size_t bsize = btype == CUDA_R_32F ? 4 : 2;

    // A: F32 / F16 weights in place; the others dequantized to F16, a chunk of rows at a time.
    const bool direct = f32 || a.type == DType::F16;
    const cudaDataType atype = f32 ? CUDA_R_32F : CUDA_R_16F;
    const int64_t lda = direct ? (n > 1 ? int64_t(a.nb[1] / (f32 ? 4 : 2)) : k) : round_up(k, 8);
    const int64_t chunk = direct ? n : std::max<int64_t>(1, std::min(n, kDequantChunkElems / lda));
    __half* deq = direct ? nullptr : static_cast<__half*>(ctx.scratch.get(0, size_t(chunk * lda) * 2, ctx.stream));

    for (int64_t a3 = 0; a3 < a.ne[3]; ++a3)
        for (int64_t a2 = 0; a2 < a.ne[2]; ++a2) {
            const uint8_t* mat = static_cast<const uint8_t*>(a.data) + a2 * int64_t(a.nb[2]) + a3 * int64_t(a.nb[3]);
            for (int64_t r0 = 0; r0 < n; r0 += chunk) {
                const int64_t rows = std::min(chunk, n - r0);
                const void* A = mat + r0 * int64_t(a.nb[1]);
                if (!direct) {
                    dequant_rows_f16(a, mat, r0, rows, deq, lda, ctx.stream);
                    A = deq;
                }
                // b matrices (i2, i3) with i2 / r2 == a2 and i3 / r3 == a3 use this weight matrix.
                for (int64_t i3 = a3 * r3; i3 < (a3 + 1) * r3; ++i3) {
                    const int64_t i2 = a2 * r2;
                    const void* B = static_cast<const char*>(bdata) + size_t(i2 * sb2 + i3 * sb3) * bsize;
                    gemm(ctx, rows, m, k, A, atype, lda, B, btype, ldb, sb2, out + i2 * o2 + i3 * o3 + r0, o1, o2, r2);
                }
            }
        }
}

}  // namespace

int weight_align(DType t) {
    int align = 0;
    dispatch_weight_type(t, [&]<class Q>() { align = Q::kAlign; });
    return align;
}

bool weight_type_ok(DType t) { return weight_align(t) > 0; }

void launch_matvec(DType t, const MatvecParams& p, cudaStream_t stream) {
    TESSERA_CHECK(p.m >= 1 && p.m <= kMatvecMaxCols, "matvec: %d columns is outside [1, %lld]", p.m,
                  (long long)kMatvecMaxCols);
    if (p.n == 0 || p.nz == 0) return;
    const bool ok = dispatch_weight_type(t, [&]<class Q>() {
        if (p.m == 1)
            launch_matvec_for<Q, 1>(p, stream);
        else
            launch_matvec_for<Q, int(kMatvecMaxCols)>(p, stream);
    });
    TESSERA_CHECK(ok, "matvec: weight type %s is not handled", type_name(t));
}

bool strides_aligned(const void* p, const Tensor& t, int first, int64_t align) {
    if (reinterpret_cast<uintptr_t>(p) % uintptr_t(align) != 0) return false;
    for (int d = first; d < kMaxDims; ++d)
        if (t.ne[d] > 1 && t.nb[d] % size_t(align) != 0) return false;
    return true;
}

WeightRows matvec_weights(const Tensor& w, Context& ctx) {
    if (strides_aligned(w.data, w, 1, weight_align(w.type)))
        return {static_cast<const uint8_t*>(w.data), int64_t(w.nb[1]), int64_t(w.nb[2]), int64_t(w.nb[3])};
    // Rare (float rows whose byte length is not a multiple of 16, odd views): copy with 16-byte row pitch.
    const size_t row = w.row_bytes();
    const size_t pitch = size_t(round_up(int64_t(row), 16));
    const size_t mat = pitch * size_t(w.ne[1]);
    auto* dst = static_cast<uint8_t*>(ctx.scratch.get(2, std::max<size_t>(1, mat * size_t(w.ne[2] * w.ne[3])), ctx.stream));
    for (int64_t i3 = 0; i3 < w.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < w.ne[2]; ++i2) {
            const char* src = static_cast<const char*>(w.data) + i2 * int64_t(w.nb[2]) + i3 * int64_t(w.nb[3]);
            TESSERA_CUDA(cudaMemcpy2DAsync(dst + size_t(i3 * w.ne[2] + i2) * mat, pitch, src, w.ne[1] > 1 ? w.nb[1] : row,
                                           row, size_t(w.ne[1]), cudaMemcpyDeviceToDevice, ctx.stream));
        }
    return {dst, int64_t(pitch), int64_t(mat), int64_t(mat) * w.ne[2]};
}

ActivationRows matvec_activations(const Tensor& t, Context& ctx) {
    if (t.nb[0] == 4 && strides_aligned(t.data, t, 1, 16))
        return {static_cast<const float*>(t.data), int64_t(t.nb[1] / 4), int64_t(t.nb[2] / 4), int64_t(t.nb[3] / 4)};
    const int64_t ld = round_up(t.ne[0], 4);
    auto* dst = static_cast<float*>(ctx.scratch.get(1, std::max<size_t>(4, size_t(ld * t.nrows()) * 4), ctx.stream));
    pack_rows<DType::F32, float>(t.data, geometry(t), dst, ld, ctx.stream);
    return {dst, ld, ld * t.ne[1], ld * t.ne[1] * t.ne[2]};
}

}  // namespace mm

bool mul_mat_ok(const Tensor& node) {
    const Tensor* a = node.src[0];
    const Tensor* b = node.src[1];
    if (!a || !b || node.type != DType::F32 || b->type != DType::F32 || !node.is_contiguous()) return false;
    if (!mm::weight_type_ok(a->type) || a->nelements() == 0 || b->nelements() == 0) return false;
    const TypeTraits& tr = type_traits(a->type);
    if (a->nb[0] != tr.block_bytes || a->ne[0] % tr.block_size != 0 || a->ne[0] != b->ne[0]) return false;
    // Overlapping rows would give cuBLAS lda < k and break the re-aligning copy.
    if (a->ne[1] > 1 && a->nb[1] < a->row_bytes()) return false;
    if (!tr.quantized)
        for (int d = 1; d < kMaxDims; ++d)
            if (a->nb[d] % tr.block_bytes != 0) return false;
    for (int d = 0; d < kMaxDims; ++d)
        if (b->nb[d] % 4 != 0) return false;
    if (b->ne[2] % a->ne[2] != 0 || b->ne[3] % a->ne[3] != 0) return false;
    // cuBLAS and the kernels take these as int.
    return a->ne[0] < INT_MAX / 16 && a->ne[1] < INT_MAX && b->ne[1] < INT_MAX && b->ne[2] / a->ne[2] < INT_MAX;
}

void mul_mat(const Tensor& node, Context& ctx) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    TESSERA_CHECK(a.ne[0] == b.ne[0], "mul_mat '%s': inner dims %lld and %lld differ", node.name.c_str(),
                  (long long)a.ne[0], (long long)b.ne[0]);
    if (node.nelements() == 0) return;
    if (a.ne[0] == 0) {  // empty dot products
        TESSERA_CUDA(cudaMemsetAsync(node.data, 0, size_t(node.nelements()) * 4, ctx.stream));
        return;
    }
    if (b.ne[1] <= mm::kMatvecMaxCols)
        mm::mul_mat_vec(node, ctx);
    else
        mm::mul_mat_gemm(node, ctx);
}

}  // namespace tessera::cuda
