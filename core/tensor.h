// A tensor is plain data: type, up to 4 dims ne[] (ne[0] innermost), byte
// strides nb[], where its bytes live (buffer + data), and for graph nodes the
// op that computes it, the op's parameters and its sources.
#pragma once
#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/types.h"

namespace tessera {

class Buffer;

constexpr int kMaxDims = 4;
constexpr int kMaxSrc = 8;
constexpr int kMaxParams = 16;

enum class Op : uint8_t {
    None,  // a leaf: input, weight or cache; data set by the caller
    // views: no compute, data aliases view_src at view_offset
    View, Reshape, Permute, Transpose,
    // data movement
    Cont,     // contiguous copy of src0, type kept (or cast, see cast())
    Cpy,      // converts src0 into src1's storage (src1 may be a view, any float/q8_0 type); result aliases src1
    GetRows,  // rows of src0 (any type) picked by I32 src1 -> F32
    SetRows,  // rows of src0 (F32) written into rows of src1 picked by I32 src2; result aliases src1
    Concat,
    // arithmetic
    MulMat,    // ggml semantics, see ops.h
    MulMatId,  // mixture of experts, see ops.h
    Add, Mul, Div, Scale,
    RmsNorm, Norm,
    Rope,
    SoftMax,
    Silu, Gelu, GeluErf, Sigmoid, Softcap,
    SwiGlu, GeGlu, SwiGluClamped,
    ArgMax, TopK,
    Sum, Mean,
    Attention,
    Count_
};

const char* op_name(Op op);
bool op_is_view(Op op);

enum TensorFlags : uint32_t {
    kFlagInput = 1u << 0,   // filled by the caller before compute
    kFlagOutput = 1u << 1,  // read after compute: the planner keeps it alive to the end
    kFlagWeight = 1u << 2,  // a model parameter
    // Weights in a kernel level's own layout, made at load (the cpu backend's amx level: AMX tiles, see
    // backends/cpu/amx_repack.h): data no longer holds GGUF blocks, and only that level's mul_mat reads it.
    kFlagRepacked = 1u << 3,
    // With kFlagRepacked: the layout is the avx2 / avx512 levels' interleaved rows (backends/cpu/rows8_layout.h;
    // rows8_k_layout.h for the K-quants),
    // not AMX tiles.
    kFlagRows8 = 1u << 4,
};

struct Tensor {
    DType type = DType::F32;
    int64_t ne[kMaxDims] = {1, 1, 1, 1};  // elements per dim
    size_t nb[kMaxDims] = {0, 0, 0, 0};   // bytes per step in each dim

    Op op = Op::None;
    int32_t params[kMaxParams] = {};  // op parameters, written and read through core/ops.h's accessors
    Tensor* src[kMaxSrc] = {};

    Tensor* view_src = nullptr;  // for views: the tensor whose storage this aliases
    size_t view_offset = 0;      // byte offset into view_src's storage

    Buffer* buffer = nullptr;  // owner of the storage (null until allocated)
    void* data = nullptr;      // address of element 0, in the buffer's address space (device memory for CUDA)

    uint32_t flags = 0;
    std::string name;

    int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t nrows() const { return ne[1] * ne[2] * ne[3]; }
    // Bytes spanned from element 0 to the end of the last element.
    size_t nbytes() const;
    size_t row_bytes() const { return tessera::row_bytes(type, ne[0]); }
    int n_dims() const;  // highest dim with ne > 1, plus one (at least 1)
    bool is_contiguous() const;
    bool same_shape(const Tensor& o) const {
        return ne[0] == o.ne[0] && ne[1] == o.ne[1] && ne[2] == o.ne[2] && ne[3] == o.ne[3];
    }
    std::string shape_str() const;  // "[4096, 32, 1, 1]"

    // The tensor that owns the storage (follows view chains).
    const Tensor* storage_owner() const;

    template <class T>
    T* data_as() const { return static_cast<T*>(data); }
    // Address of element (i0 .. i3) for a host tensor.
    char* at(int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const {
        return static_cast<char*>(data) + i0 * int64_t(nb[0]) + i1 * int64_t(nb[1]) + i2 * int64_t(nb[2]) +
               i3 * int64_t(nb[3]);
    }
};

// The first source of `node` whose storage is repacked (kFlagRepacked, through views too), or null.
const Tensor* repacked_source(const Tensor& node);

// Strides for a contiguous tensor of this type and shape (block-aware for quant types).
void set_contiguous_strides(Tensor& t);

}  // namespace tessera
