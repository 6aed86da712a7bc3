// The reference backend's op table: which nodes it can compute (types and layouts), and dispatch to the
// scalar kernels in this folder. Semantics are those documented in core/ops.h.
#include "backends/reference/reference_ops.h"

#include "backends/reference/ref_util.h"
#include "core/error.h"
#include "core/ops.h"

namespace tessera::ref {

using namespace detail;

namespace {

bool is_f32(const Tensor* t) { return t && t->type == DType::F32; }
bool is_i32(const Tensor* t) { return t && t->type == DType::I32; }

// A tensor whose rows can be read as floats: plain float (any strides) or quantized with contiguous rows.
bool readable_rows(const Tensor* t) {
    if (!t || !readable_as_float(t->type)) return false;
    return is_plain_float(t->type) || t->nb[0] == type_traits(t->type).block_bytes;
}
bool writable_rows(const Tensor* t) {
    if (!t || !writable_from_float(t->type)) return false;
    return is_plain_float(t->type) || t->nb[0] == type_traits(t->type).block_bytes;
}

}  // namespace

bool supports(const Tensor& node) {
    if (!op_is_view(node.op) && repacked_source(node)) return false;  // a kernel level's own layout (compute_node)
    const Tensor* s0 = node.src[0];
    const Tensor* s1 = node.src[1];
    const Tensor* s2 = node.src[2];
    switch (node.op) {
        case Op::None:
        case Op::View:
        case Op::Reshape:
        case Op::Permute:
        case Op::Transpose:
            return true;
        case Op::Cont:
            if (!s0 || !is_known_type_id(uint32_t(s0->type)) || !is_known_type_id(uint32_t(node.type))) return false;
            if (s0->type == node.type)  // a byte copy: any type, quantized rows must be whole blocks in place
                return !type_traits(s0->type).quantized || s0->nb[0] == type_traits(s0->type).block_bytes;
            return readable_rows(s0) && writable_rows(&node);
        case Op::Cpy:
            return readable_rows(s0) && writable_rows(&node);
        case Op::GetRows:
            return readable_rows(s0) && is_i32(s1) && is_f32(&node);
        case Op::SetRows:
            return is_f32(s0) && is_i32(s2) && writable_rows(&node);
        case Op::Concat:
            return is_f32(s0) && is_f32(s1) && is_f32(&node);
        case Op::MulMat:
            return readable_rows(s0) && is_f32(s1) && is_f32(&node);
        case Op::MulMatId:
            return readable_rows(s0) && is_f32(s1) && is_i32(s2) && is_f32(&node);
        case Op::Add:
        case Op::Mul:
        case Op::Div:
        case Op::SwiGlu:
        case Op::GeGlu:
        case Op::SwiGluClamped:
            return is_f32(s0) && is_f32(s1) && is_f32(&node);
        case Op::Scale:
        case Op::RmsNorm:
        case Op::Norm:
        case Op::Silu:
        case Op::Gelu:
        case Op::GeluErf:
        case Op::Sigmoid:
        case Op::Softcap:
        case Op::Sum:
        case Op::Mean:
            return is_f32(s0) && is_f32(&node);
        case Op::Rope:
            return is_f32(s0) && is_i32(s1) && (!s2 || is_f32(s2)) && is_f32(&node);
        case Op::SoftMax:
            return is_f32(s0) && (!s1 || is_f32(s1)) && is_f32(&node);
        case Op::ArgMax:
        case Op::TopK:
            return is_f32(s0) && is_i32(&node);
        case Op::Attention:
            return is_f32(s0) && readable_rows(s1) && readable_rows(node.src[2]) && is_i32(node.src[3]) &&
                   is_i32(node.src[4]) && (!attention_spec(node).sinks || is_f32(attention_spec(node).sinks)) &&
                   (!node.src[6] || is_i32(node.src[6])) && (!node.src[7] || is_i32(node.src[7])) && is_f32(&node);
        case Op::Count_:
            return false;
    }
    return false;
}

namespace {

std::string type_list(const Tensor& node) {
    std::string s = std::string("out ") + type_name(node.type);
    for (int i = 0; i < kMaxSrc; ++i)
        if (node.src[i]) s += std::string(", src") + std::to_string(i) + " " + type_name(node.src[i]->type);
    return s;
}

}  // namespace

void compute_node(Tensor* node) {
    TESSERA_CHECK(node != nullptr, "reference: null node");
    if (node->op == Op::None || op_is_view(node->op)) return;  // leaves and views: nothing to compute
    if (const Tensor* r = repacked_source(*node))
        throw Error("reference backend: " + label(node) + " reads weight '" + r->name +
                        "', which was repacked at load for the cpu backend's kernels (amx tiles, interleaved rows) and is readable only by their "
                        "mul_mat (open the model with the backend and cpu level that will run it)",
                    Status::Unsupported);
    if (!supports(*node))
        throw Error("reference backend: " + label(node) + " is not supported for these types/layouts (" +
                    type_list(*node) + ")",
                    Status::Unsupported);
    require_storage(node);
    switch (node->op) {
        case Op::Cont: return cont(node);
        case Op::Cpy: return cpy(node);
        case Op::GetRows: return get_rows(node);
        case Op::SetRows: return set_rows(node);
        case Op::Concat: return concat(node);
        case Op::MulMat: return mul_mat(node);
        case Op::MulMatId: return mul_mat_id(node);
        case Op::Add:
        case Op::Mul:
        case Op::Div: return binary(node);
        case Op::Scale:
        case Op::Silu:
        case Op::Gelu:
        case Op::GeluErf:
        case Op::Sigmoid:
        case Op::Softcap: return unary(node);
        case Op::SwiGlu:
        case Op::GeGlu:
        case Op::SwiGluClamped: return glu(node);
        case Op::RmsNorm: return rms_norm(node);
        case Op::Norm: return norm(node);
        case Op::Rope: return rope(node);
        case Op::SoftMax: return softmax(node);
        case Op::Sum:
        case Op::Mean: return sum_mean(node);
        case Op::ArgMax: return argmax(node);
        case Op::TopK: return top_k(node);
        case Op::Attention: return attention(node);
        default: break;
    }
    throw Error("reference backend: " + label(node) + " has no implementation");
}

}  // namespace tessera::ref
