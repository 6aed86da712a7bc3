#include "backends/reference/ref_util.h"

#include <cstring>

namespace tessera::ref::detail {

std::string label(const Tensor* t) {
    std::string s = t->op == Op::None ? "tensor" : op_name(t->op);
    return t->name.empty() ? s + " (unnamed)" : s + " '" + t->name + "'";
}

bool is_plain_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

bool readable_as_float(DType t) {
    if (!is_known_type_id(uint32_t(t))) return false;
    return type_traits(t).to_float != nullptr;
}

bool writable_from_float(DType t) {
    if (!is_known_type_id(uint32_t(t))) return false;
    return type_traits(t).from_float != nullptr;
}

float load(const Tensor& t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    const char* p = t.at(i0, i1, i2, i3);
    uint16_t h;
    switch (t.type) {
        case DType::F32: {
            float f;
            std::memcpy(&f, p, 4);
            return f;
        }
        case DType::F16:
            std::memcpy(&h, p, 2);
            return fp16_to_fp32(h);
        case DType::BF16:
            std::memcpy(&h, p, 2);
            return bf16_to_fp32(h);
        default:
            throw Error(std::string("reference: element read of type ") + type_name(t.type) + " is not supported",
                        Status::Unsupported);
    }
}

void store(const Tensor& t, float v, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    char* p = t.at(i0, i1, i2, i3);
    uint16_t h;
    switch (t.type) {
        case DType::F32:
            std::memcpy(p, &v, 4);
            return;
        case DType::F16:
            h = fp32_to_fp16(v);
            std::memcpy(p, &h, 2);
            return;
        case DType::BF16:
            h = fp32_to_bf16(v);
            std::memcpy(p, &h, 2);
            return;
        default:
            throw Error(std::string("reference: element write of type ") + type_name(t.type) + " is not supported",
                        Status::Unsupported);
    }
}

int32_t load_i32(const Tensor& t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    int32_t v;
    std::memcpy(&v, t.at(i0, i1, i2, i3), 4);
    return v;
}

void store_i32(const Tensor& t, int32_t v, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    std::memcpy(t.at(i0, i1, i2, i3), &v, 4);
}

void read_row(const Tensor& t, int64_t i1, int64_t i2, int64_t i3, float* out) {
    if (is_plain_float(t.type)) {
        for (int64_t i0 = 0; i0 < t.ne[0]; ++i0) out[i0] = load(t, i0, i1, i2, i3);
        return;
    }
    const TypeTraits& tr = type_traits(t.type);
    TESSERA_CHECK(tr.to_float != nullptr, "reference: cannot read %s rows as float", tr.name);
    TESSERA_CHECK(t.nb[0] == tr.block_bytes, "reference: %s rows of '%s' are not contiguous", tr.name,
                  t.name.c_str());
    tr.to_float(t.at(0, i1, i2, i3), out, t.ne[0]);
}

void write_row(const Tensor& t, int64_t i1, int64_t i2, int64_t i3, const float* in) {
    if (is_plain_float(t.type)) {
        for (int64_t i0 = 0; i0 < t.ne[0]; ++i0) store(t, in[i0], i0, i1, i2, i3);
        return;
    }
    const TypeTraits& tr = type_traits(t.type);
    TESSERA_CHECK(tr.from_float != nullptr, "reference: cannot write %s rows from float", tr.name);
    TESSERA_CHECK(t.nb[0] == tr.block_bytes, "reference: %s rows of '%s' are not contiguous", tr.name,
                  t.name.c_str());
    tr.from_float(in, t.at(0, i1, i2, i3), t.ne[0]);
}

std::vector<float> read_all(const Tensor& t) {
    std::vector<float> out(static_cast<size_t>(t.nelements()));
    float* p = out.data();
    for (int64_t i3 = 0; i3 < t.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < t.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < t.ne[1]; ++i1, p += t.ne[0]) read_row(t, i1, i2, i3, p);
    return out;
}

void write_all(const Tensor& t, const float* in) {
    for (int64_t i3 = 0; i3 < t.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < t.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < t.ne[1]; ++i1, in += t.ne[0]) write_row(t, i1, i2, i3, in);
}

void require_storage(const Tensor* node) {
    TESSERA_CHECK(node->data != nullptr, "reference: %s has no storage", label(node).c_str());
    for (const Tensor* s : node->src)
        if (s)
            TESSERA_CHECK(s->data != nullptr, "reference: %s: its source %s has no storage", label(node).c_str(),
                          label(s).c_str());
}

}  // namespace tessera::ref::detail
