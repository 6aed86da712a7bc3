#include "core/tensor.h"

#include <cstdio>

#include "core/error.h"

namespace tessera {

namespace {
const char* const kOpNames[] = {
    "none",   "view",    "reshape",  "permute", "transpose", "cont",    "cpy",     "get_rows", "set_rows", "concat",
    "mul_mat", "mul_mat_id", "add",  "mul",     "div",       "scale",   "rms_norm", "norm",    "rope",
    "softmax", "silu",   "gelu",     "gelu_erf", "sigmoid",  "softcap", "swiglu",  "geglu",    "swiglu_clamped", "argmax",
    "top_k",  "sum",     "mean",     "attention",
};
static_assert(sizeof(kOpNames) / sizeof(kOpNames[0]) == size_t(Op::Count_), "op name table out of date");
}  // namespace

const char* op_name(Op op) {
    auto i = size_t(op);
    return i < size_t(Op::Count_) ? kOpNames[i] : "?";
}

bool op_is_view(Op op) {
    return op == Op::View || op == Op::Reshape || op == Op::Permute || op == Op::Transpose;
}

size_t Tensor::nbytes() const {
    for (int i = 0; i < kMaxDims; ++i)
        if (ne[i] == 0) return 0;
    const TypeTraits& tr = type_traits(type);
    size_t bytes = size_t(ne[0] / tr.block_size) * tr.block_bytes;
    for (int i = 1; i < kMaxDims; ++i) bytes += size_t(ne[i] - 1) * nb[i];
    return bytes;
}

int Tensor::n_dims() const {
    for (int i = kMaxDims - 1; i >= 1; --i)
        if (ne[i] > 1) return i + 1;
    return 1;
}

bool Tensor::is_contiguous() const {
    const TypeTraits& tr = type_traits(type);
    if (nb[0] != tr.block_bytes) return false;
    size_t expect = size_t(ne[0] / tr.block_size) * tr.block_bytes;
    for (int i = 1; i < kMaxDims; ++i) {
        if (ne[i] != 1 && nb[i] != expect) return false;
        expect *= size_t(ne[i]);
    }
    return true;
}

std::string Tensor::shape_str() const {
    char buf[128];
    std::snprintf(buf, sizeof buf, "[%lld, %lld, %lld, %lld]", (long long)ne[0], (long long)ne[1], (long long)ne[2],
                  (long long)ne[3]);
    return buf;
}

const Tensor* Tensor::storage_owner() const {
    const Tensor* t = this;
    while (t->view_src) t = t->view_src;
    return t;
}

void set_contiguous_strides(Tensor& t) {
    const TypeTraits& tr = type_traits(t.type);
    TESSERA_CHECK(t.ne[0] % tr.block_size == 0, "tensor '%s': ne[0] = %lld is not a multiple of %s's block size %lld",
                  t.name.c_str(), (long long)t.ne[0], tr.name, (long long)tr.block_size);
    t.nb[0] = tr.block_bytes;
    t.nb[1] = size_t(t.ne[0] / tr.block_size) * tr.block_bytes;
    for (int i = 2; i < kMaxDims; ++i) t.nb[i] = t.nb[i - 1] * size_t(t.ne[i - 1]);
}

const Tensor* repacked_source(const Tensor& node) {
    for (const Tensor* s : node.src)
        if (s && (s->storage_owner()->flags & kFlagRepacked)) return s->storage_owner();
    return nullptr;
}

}  // namespace tessera
