// mul_mat_id (mixture of experts) on the CUDA backend: experts [k, n, n_expert] x b [k, b1, m] with
// ids I32 [n_used, m] -> F32 [n, n_used, m]. Every (slot e, token t) pair is one matrix-vector problem of
// the matmul kernel (cuda_matmul.cu) whose weight matrix is experts[ids[e, t]], looked up on the device,
// so only selected experts are read and the ids never travel to the host. An id outside [0, n_expert)
// sets the context's error flag and leaves that output column zero.
//
// Simple rather than fast for prefill: an expert picked by several tokens is read once per token.
// Grouping tokens by expert (as the cpu backend does) would need the ids on the host or a device sort.
#include <climits>

#include "backends/cuda/cuda_matmul.cuh"
#include "core/error.h"

namespace tessera::cuda {

bool mul_mat_id_ok(const Tensor& node) {
    const Tensor* ex = node.src[0];
    const Tensor* b = node.src[1];
    const Tensor* ids = node.src[2];
    if (!ex || !b || !ids || node.type != DType::F32 || b->type != DType::F32 || ids->type != DType::I32) return false;
    if (!node.is_contiguous() || !mm::weight_type_ok(ex->type)) return false;
    if (ex->nelements() == 0 || b->nelements() == 0 || ids->nelements() == 0) return false;
    const TypeTraits& tr = type_traits(ex->type);
    if (ex->nb[0] != tr.block_bytes || ex->ne[0] % tr.block_size != 0 || ex->ne[0] != b->ne[0]) return false;
    if (ex->ne[3] != 1 || b->ne[3] != 1 || ids->ne[2] != 1 || ids->ne[3] != 1) return false;
    if (ids->ne[1] != b->ne[2] || (b->ne[1] != 1 && b->ne[1] != ids->ne[0])) return false;
    // Overlapping rows would break the re-aligning copy (mm::matvec_weights).
    if (ex->ne[1] > 1 && ex->nb[1] < ex->row_bytes()) return false;
    if (!tr.quantized && (ex->nb[1] % tr.block_bytes != 0 || ex->nb[2] % tr.block_bytes != 0)) return false;
    for (int d = 0; d < kMaxDims; ++d)
        if (b->nb[d] % 4 != 0) return false;
    if (ids->nb[0] % 4 != 0 || ids->nb[1] % 4 != 0) return false;
    return ex->ne[0] < INT_MAX / 16 && ex->ne[2] <= INT_MAX;
}

void mul_mat_id(const Tensor& node, Context& ctx) {
    const Tensor& ex = *node.src[0];
    const Tensor& b = *node.src[1];
    const Tensor& ids = *node.src[2];
    const int64_t n_used = ids.ne[0], n_tok = ids.ne[1];
    TESSERA_CHECK(ex.ne[0] == b.ne[0] && ids.ne[1] == b.ne[2] && (b.ne[1] == 1 || b.ne[1] == n_used),
                  "mul_mat_id '%s': experts %s, b %s and ids %s do not fit", node.name.c_str(), ex.shape_str().c_str(),
                  b.shape_str().c_str(), ids.shape_str().c_str());
    if (node.nelements() == 0) return;

    const mm::WeightRows w = mm::matvec_weights(ex, ctx);
    const mm::ActivationRows x = mm::matvec_activations(b, ctx);
    mm::MatvecParams p;
    p.w = w.data;
    p.w_row = w.nb1;
    p.n = ex.ne[1];
    p.k = ex.ne[0];
    p.m = 1;
    p.nz0 = n_used;
    p.nz = n_used * n_tok;
    p.w_nb0 = w.nb2;  // times the expert id
    p.x = x.data;
    p.x_z0 = b.ne[1] == 1 ? 0 : x.s1;  // one activation row per token, or one per slot
    p.x_z1 = x.s2;
    p.out = static_cast<float*>(node.data);
    p.o_z0 = int64_t(node.nb[1] / 4);
    p.o_z1 = int64_t(node.nb[2] / 4);
    p.ids = static_cast<const uint8_t*>(ids.data);
    p.ids_nb0 = int64_t(ids.nb[0]);
    p.ids_nb1 = int64_t(ids.nb[1]);
    p.n_expert = ex.ne[2];
    p.error_flag = ctx.error_flag;
    p.node_tag = ctx.node_tag;
    mm::launch_matvec(ex.type, p, ctx.stream);
}

}  // namespace tessera::cuda
