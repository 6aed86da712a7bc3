// Data movement on the CUDA backend: get_rows, cont (same-type copy or cast) and cpy (into a typed,
// usually strided destination such as a KV cache view). One generic strided kernel per kind of move:
//   - get_rows: one thread per output element; quantized tables are dequantized element by element with
//     core's exact expressions (cuda_convert.cuh); an id outside the table sets the error flag and its row
//     becomes zeros.
//   - same-type cont: one thread per element (or quant block), copying its bytes unchanged; a fully
//     contiguous pair is one cudaMemcpyAsync.
//   - cast / cpy to F32, F16, BF16: one thread per destination element. Element k of the source in
//     logical order (i0 fastest) goes to element k of the destination in logical order (cpy's shapes may
//     differ; cont's are equal, so this is the identity map there).
//   - cast / cpy to Q8_0: one thread per destination block of 32, quantized like quantize_row_q8_0.
//   - set_rows (KV cache writes of a multi-sequence batch): one thread per destination element (plain
//     floats) or block of 32 (Q8_0) of the rows named by the ids; an id outside the destination, or one
//     repeated, sets the error flag (that check is a kernel of its own, one thread per id) and is not
//     written.
// The result of cpy aliases src1: the node's own data and strides (those of src1) are what is written.
#include <algorithm>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/cuda_convert.cuh"
#include "core/error.h"

namespace tessera::cuda {

namespace {

using namespace conv;

constexpr int kThreads = 256;

// Grid-stride kernels: enough blocks to cover n once, capped so the count fits the grid limit.
unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>(blocks_for(n, kThreads), int64_t(1) << 30)); }

// One element of a readable tensor: plain float at any (aligned) strides, or a quantized row of whole
// blocks read element by element.
__device__ float load_element(DType t, const uint8_t* base, const Geometry& g, const int64_t* i) {
    if (is_plain_float(t)) return load_plain(t, base + byte_offset(g.nb, i));
    const uint8_t* row = base + i[1] * g.nb[1] + i[2] * g.nb[2] + i[3] * g.nb[3];
    return dequantize_element(t, row, i[0]);
}

__global__ void get_rows_kernel(const uint8_t* table, DType type, Geometry tg, const uint8_t* ids, int64_t ids_nb0,
                                uint8_t* out, Geometry og, int* error_flag, int node_tag) {
    const int64_t ne0 = og.ne[0];
    const int64_t total = ne0 * og.ne[1];
    const int64_t n_rows = tg.ne[1];
    for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
        const int64_t i0 = k % ne0, r = k / ne0;
        const int32_t id = *reinterpret_cast<const int32_t*>(ids + r * ids_nb0);
        float v = 0.0f;
        if (id < 0 || id >= n_rows) {
            if (i0 == 0) atomicCAS(error_flag, 0, node_tag);
        } else {
            const int64_t idx[4] = {i0, id, 0, 0};
            v = load_element(type, table, tg, idx);
        }
        *reinterpret_cast<float*>(out + i0 * og.nb[0] + r * og.nb[1]) = v;
    }
}

// Same-type copy of `units` values of U per element (or quant block); g*.ne[0] counts blocks here.
template <class U>
__global__ void copy_bytes_kernel(const uint8_t* src, Geometry sg, uint8_t* dst, Geometry dg, int units) {
    const int64_t total = dg.ne[0] * dg.ne[1] * dg.ne[2] * dg.ne[3];
    for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
        int64_t i[4];
        unravel(k, dg.ne, i);
        const U* s = reinterpret_cast<const U*>(src + byte_offset(sg.nb, i));
        U* d = reinterpret_cast<U*>(dst + byte_offset(dg.nb, i));
        for (int u = 0; u < units; ++u) d[u] = s[u];
    }
}

// Destination F32 / F16 / BF16: element k (logical order) of src -> element k of dst.
__global__ void convert_kernel(const uint8_t* src, DType st, Geometry sg, uint8_t* dst, DType dt, Geometry dg) {
    const int64_t total = dg.ne[0] * dg.ne[1] * dg.ne[2] * dg.ne[3];
    for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
        int64_t si[4], di[4];
        unravel(k, sg.ne, si);
        unravel(k, dg.ne, di);
        store_plain(dt, dst + byte_offset(dg.nb, di), load_element(st, src, sg, si));
    }
}

// Destination Q8_0 (rows of whole blocks, nb[0] == 34): one thread per block of 32 destination elements.
__global__ void quantize_q8_0_kernel(const uint8_t* src, DType st, Geometry sg, uint8_t* dst, Geometry dg) {
    const int64_t bpr = dg.ne[0] / QK8_0;  // blocks per row
    const int64_t total = bpr * dg.ne[1] * dg.ne[2] * dg.ne[3];
    const int64_t bne[4] = {bpr, dg.ne[1], dg.ne[2], dg.ne[3]};
    for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
        int64_t bi[4];
        unravel(k, bne, bi);
        // logical index of the block's first element in the destination's order
        const int64_t k0 = ((bi[3] * dg.ne[2] + bi[2]) * dg.ne[1] + bi[1]) * dg.ne[0] + bi[0] * QK8_0;
        float x[QK8_0];
        for (int j = 0; j < QK8_0; ++j) {
            int64_t si[4];
            unravel(k0 + j, sg.ne, si);
            x[j] = load_element(st, src, sg, si);
        }
        quantize_block_q8_0(x, dst + bi[0] * dg.nb[0] + bi[1] * dg.nb[1] + bi[2] * dg.nb[2] + bi[3] * dg.nb[3]);
    }
}

// set_rows: an id outside [0, n_rows), or equal to an earlier one, flags the node (one thread per id;
// batches are at most a few hundred rows, so the quadratic scan is small).
__global__ void set_rows_check_kernel(const uint8_t* ids, int64_t ids_nb0, int64_t n, int64_t n_rows,
                                      int* error_flag, int node_tag) {
    const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (r >= n) return;
    const int32_t id = *reinterpret_cast<const int32_t*>(ids + r * ids_nb0);
    bool bad = id < 0 || id >= n_rows;
    for (int64_t e = 0; e < r && !bad; ++e) bad = *reinterpret_cast<const int32_t*>(ids + e * ids_nb0) == id;
    if (bad) atomicCAS(error_flag, 0, node_tag);
}

// set_rows into F32 / F16 / BF16: element i0 of source row r -> element i0 of destination row ids[r].
__global__ void set_rows_kernel(const uint8_t* src, Geometry sg, const uint8_t* ids, int64_t ids_nb0, uint8_t* dst,
                                DType dt, Geometry dg) {
    const int64_t ne0 = sg.ne[0];
    const int64_t total = ne0 * sg.ne[1];
    for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
        const int64_t i0 = k % ne0, r = k / ne0;
        const int32_t id = *reinterpret_cast<const int32_t*>(ids + r * ids_nb0);
        if (id < 0 || id >= dg.ne[1]) continue;  // flagged by the check kernel
        const float v = *reinterpret_cast<const float*>(src + i0 * sg.nb[0] + r * sg.nb[1]);
        store_plain(dt, dst + i0 * dg.nb[0] + int64_t(id) * dg.nb[1], v);
    }
}

// set_rows into Q8_0: one thread per destination block of 32.
__global__ void set_rows_q8_0_kernel(const uint8_t* src, Geometry sg, const uint8_t* ids, int64_t ids_nb0,
                                     uint8_t* dst, Geometry dg) {
    const int64_t bpr = sg.ne[0] / QK8_0;
    const int64_t total = bpr * sg.ne[1];
    for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
        const int64_t b = k % bpr, r = k / bpr;
        const int32_t id = *reinterpret_cast<const int32_t*>(ids + r * ids_nb0);
        if (id < 0 || id >= dg.ne[1]) continue;
        float x[QK8_0];
        for (int j = 0; j < QK8_0; ++j)
            x[j] = *reinterpret_cast<const float*>(src + (b * QK8_0 + j) * sg.nb[0] + r * sg.nb[1]);
        quantize_block_q8_0(x, dst + b * dg.nb[0] + int64_t(id) * dg.nb[1]);
    }
}

bool known(DType t) { return is_known_type_id(uint32_t(t)); }

// Readable element by element: plain float with element-aligned strides, or a handled quant type with
// rows of whole blocks in place.
bool readable(const Tensor* t) {
    if (!t || !known(t->type)) return false;
    const TypeTraits& tr = type_traits(t->type);
    if (is_plain_float(t->type)) return aligned_for(*t, tr.block_bytes);
    return is_dequantizable(t->type) && t->nb[0] == tr.block_bytes && t->ne[0] % tr.block_size == 0;
}

// Writable: plain float with element-aligned strides, or Q8_0 rows of whole blocks.
bool writable(const Tensor& t) {
    if (is_plain_float(t.type)) return aligned_for(t, type_traits(t.type).block_bytes);
    return t.type == DType::Q8_0 && t.nb[0] == sizeof(block_q8_0) && t.ne[0] % QK8_0 == 0;
}

bool get_rows_ok(const Tensor& node) {
    const Tensor* table = node.src[0];
    const Tensor* ids = node.src[1];
    return readable(table) && table->ne[2] == 1 && table->ne[3] == 1 && ids && ids->type == DType::I32 &&
           aligned_for(*ids, 4) && ids->ne[1] == 1 && ids->ne[2] == 1 && ids->ne[3] == 1 &&
           node.type == DType::F32 && aligned_for(node, 4) && node.ne[0] == table->ne[0] &&
           node.ne[1] == ids->ne[0] && node.ne[2] == 1 && node.ne[3] == 1;
}

bool cont_ok(const Tensor& node) {
    const Tensor* s = node.src[0];
    if (!s || !s->same_shape(node) || !known(s->type) || !known(node.type)) return false;
    if (s->type == node.type) {
        const TypeTraits& tr = type_traits(s->type);
        if (!tr.quantized) return true;
        return s->nb[0] == tr.block_bytes && node.nb[0] == tr.block_bytes && s->ne[0] % tr.block_size == 0;
    }
    return readable(s) && writable(node);
}

bool cpy_ok(const Tensor& node) {
    const Tensor* s = node.src[0];
    return readable(s) && known(node.type) && writable(node) && s->nelements() == node.nelements();
}

bool set_rows_ok(const Tensor& node) {
    const Tensor* s = node.src[0];
    const Tensor* ids = node.src[2];
    return s && s->type == DType::F32 && aligned_for(*s, 4) && s->ne[2] == 1 && s->ne[3] == 1 && ids &&
           ids->type == DType::I32 && aligned_for(*ids, 4) && ids->ne[0] == s->ne[1] && known(node.type) &&
           writable(node) && node.ne[0] == s->ne[0] && node.ne[2] == 1 && node.ne[3] == 1;
}

void launch_set_rows(const Tensor& node, Context& ctx) {
    const Tensor& src = *node.src[0];
    const Tensor& ids = *node.src[2];
    const int64_t n = ids.ne[0];
    if (n == 0 || src.ne[0] == 0) return;
    const auto* s = static_cast<const uint8_t*>(src.data);
    const auto* id = static_cast<const uint8_t*>(ids.data);
    auto* d = static_cast<uint8_t*>(node.data);
    TESSERA_LAUNCH(blocks_for(n, kThreads), kThreads, 0, ctx.stream, set_rows_check_kernel)(
        id, int64_t(ids.nb[0]), n, node.ne[1], ctx.error_flag, ctx.node_tag);
    TESSERA_CUDA_LAUNCHED();
    if (node.type == DType::Q8_0) {
        TESSERA_LAUNCH(grid_for(n * src.ne[0] / QK8_0), kThreads, 0, ctx.stream, set_rows_q8_0_kernel)(
            s, geometry(src), id, int64_t(ids.nb[0]), d, geometry(node));
    } else {
        TESSERA_LAUNCH(grid_for(n * src.ne[0]), kThreads, 0, ctx.stream, set_rows_kernel)(
            s, geometry(src), id, int64_t(ids.nb[0]), d, node.type, geometry(node));
    }
    TESSERA_CUDA_LAUNCHED();
}

void launch_get_rows(const Tensor& node, Context& ctx) {
    const Tensor& table = *node.src[0];
    const Tensor& ids = *node.src[1];
    const int64_t total = node.ne[0] * node.ne[1];
    if (total == 0) return;
    TESSERA_LAUNCH(grid_for(total), kThreads, 0, ctx.stream, get_rows_kernel)(
        static_cast<const uint8_t*>(table.data), table.type, geometry(table), static_cast<const uint8_t*>(ids.data),
        int64_t(ids.nb[0]), static_cast<uint8_t*>(node.data), geometry(node), ctx.error_flag, ctx.node_tag);
    TESSERA_CUDA_LAUNCHED();
}

// Same type, same shape: bytes of each element (or block) unchanged.
void launch_same_type_copy(const Tensor& node, Context& ctx) {
    const Tensor& src = *node.src[0];
    if (node.nelements() == 0) return;
    if (src.is_contiguous() && node.is_contiguous()) {
        TESSERA_CUDA(cudaMemcpyAsync(node.data, src.data, node.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream));
        return;
    }
    const TypeTraits& tr = type_traits(src.type);
    Geometry sg = geometry(src), dg = geometry(node);
    sg.ne[0] = dg.ne[0] = src.ne[0] / tr.block_size;  // step over blocks (elements for plain types)
    const int64_t total = dg.ne[0] * dg.ne[1] * dg.ne[2] * dg.ne[3];
    const auto* s = static_cast<const uint8_t*>(src.data);
    auto* d = static_cast<uint8_t*>(node.data);
    // Widest unit that divides the block and every address either side touches.
    const bool by4 = tr.block_bytes % 4 == 0 && aligned_for(src, 4) && aligned_for(node, 4);
    const bool by2 = tr.block_bytes % 2 == 0 && aligned_for(src, 2) && aligned_for(node, 2);
    if (by4) {
        TESSERA_LAUNCH(grid_for(total), kThreads, 0, ctx.stream, copy_bytes_kernel<uint32_t>)(s, sg, d, dg,
                                                                                    int(tr.block_bytes / 4));
    } else if (by2) {
        TESSERA_LAUNCH(grid_for(total), kThreads, 0, ctx.stream, copy_bytes_kernel<uint16_t>)(s, sg, d, dg,
                                                                                    int(tr.block_bytes / 2));
    } else {
        TESSERA_LAUNCH(grid_for(total), kThreads, 0, ctx.stream, copy_bytes_kernel<uint8_t>)(s, sg, d, dg,
                                                                                    int(tr.block_bytes));
    }
    TESSERA_CUDA_LAUNCHED();
}

// Converting copy (cast or cpy): logical element order of src into dst's type and strides.
void launch_convert(const Tensor& node, Context& ctx) {
    const Tensor& src = *node.src[0];
    const auto* s = static_cast<const uint8_t*>(src.data);
    auto* d = static_cast<uint8_t*>(node.data);
    if (node.type == DType::Q8_0) {
        const int64_t total = node.nelements() / QK8_0;
        if (total == 0) return;
        TESSERA_LAUNCH(grid_for(total), kThreads, 0, ctx.stream, quantize_q8_0_kernel)(s, src.type, geometry(src), d,
                                                                                   geometry(node));
    } else {
        const int64_t total = node.nelements();
        if (total == 0) return;
        TESSERA_LAUNCH(grid_for(total), kThreads, 0, ctx.stream, convert_kernel)(s, src.type, geometry(src), d,
                                                                                 node.type, geometry(node));
    }
    TESSERA_CUDA_LAUNCHED();
}

}  // namespace

bool copy_ok(const Tensor& node) {
    switch (node.op) {
        case Op::GetRows: return get_rows_ok(node);
        case Op::Cont: return cont_ok(node);
        case Op::Cpy: return cpy_ok(node);
        case Op::SetRows: return set_rows_ok(node);
        default: return false;
    }
}

void copy(const Tensor& node, Context& ctx) {
    TESSERA_CHECK(copy_ok(node), "cuda copy: %s '%s' (%s -> %s) is not handled here", op_name(node.op),
                  node.name.c_str(), node.src[0] ? type_name(node.src[0]->type) : "?", type_name(node.type));
    switch (node.op) {
        case Op::GetRows: return launch_get_rows(node, ctx);
        case Op::Cont:
            if (node.src[0]->type == node.type) return launch_same_type_copy(node, ctx);
            return launch_convert(node, ctx);
        case Op::Cpy: return launch_convert(node, ctx);
        case Op::SetRows: return launch_set_rows(node, ctx);
        default: return;
    }
}

}  // namespace tessera::cuda
