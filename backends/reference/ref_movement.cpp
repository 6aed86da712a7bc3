// Data movement: cont / cast, cpy into a typed destination, get_rows, set_rows, concat.
#include <cstring>
#include <vector>

#include "backends/reference/ref_util.h"
#include "core/ops.h"

namespace tessera::ref::detail {

// Same shape in and out. Same type: the bytes of each element (or block) are copied unchanged, so this
// works for every type, integers included. Different types: each row goes through float (cast).
void cont(Tensor* dst) {
    const Tensor& src = *dst->src[0];
    if (src.type == dst->type) {
        const TypeTraits& tr = type_traits(src.type);
        const int64_t nblocks = src.ne[0] / tr.block_size;
        for (int64_t i3 = 0; i3 < src.ne[3]; ++i3)
            for (int64_t i2 = 0; i2 < src.ne[2]; ++i2)
                for (int64_t i1 = 0; i1 < src.ne[1]; ++i1)
                    for (int64_t b = 0; b < nblocks; ++b)
                        std::memcpy(dst->at(b, i1, i2, i3), src.at(b, i1, i2, i3), tr.block_bytes);
        return;
    }
    std::vector<float> row(static_cast<size_t>(src.ne[0]));
    for (int64_t i3 = 0; i3 < src.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < src.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < src.ne[1]; ++i1) {
                read_row(src, i1, i2, i3, row.data());
                write_row(*dst, i1, i2, i3, row.data());
            }
}

// Element k of src0 in logical order goes to element k of the destination in logical order (shapes may
// differ, counts match). dst aliases src1: same storage and strides, so rows may be strided.
void cpy(Tensor* dst) {
    const std::vector<float> values = read_all(*dst->src[0]);
    write_all(*dst, values.data());
}

void get_rows(Tensor* dst) {
    const Tensor& table = *dst->src[0];
    const Tensor& ids = *dst->src[1];
    std::vector<float> row(static_cast<size_t>(table.ne[0]));
    for (int64_t r = 0; r < ids.ne[0]; ++r) {
        const int32_t id = load_i32(ids, r);
        TESSERA_CHECK(id >= 0 && id < table.ne[1], "%s: row id %d (at index %lld) is outside [0, %lld) of %s",
                      label(dst).c_str(), id, (long long)r, (long long)table.ne[1], label(&table).c_str());
        read_row(table, id, 0, 0, row.data());
        write_row(*dst, r, 0, 0, row.data());
    }
}

// Row i of src0 -> row ids[i] of the destination (which aliases src1). Every id is checked, range and
// repeats, before any row is written, so a bad batch leaves the cache as it was.
void set_rows(Tensor* dst) {
    const Tensor& src = *dst->src[0];
    const Tensor& ids = *dst->src[2];
    std::vector<bool> taken(static_cast<size_t>(dst->ne[1]), false);
    for (int64_t r = 0; r < ids.ne[0]; ++r) {
        const int32_t id = load_i32(ids, r);
        TESSERA_CHECK(id >= 0 && id < dst->ne[1], "%s: row id %d (at index %lld) is outside [0, %lld)",
                      label(dst).c_str(), id, (long long)r, (long long)dst->ne[1]);
        TESSERA_CHECK(!taken[size_t(id)], "%s: row id %d (at index %lld) is written twice", label(dst).c_str(), id,
                      (long long)r);
        taken[size_t(id)] = true;
    }
    std::vector<float> row(static_cast<size_t>(src.ne[0]));
    for (int64_t r = 0; r < ids.ne[0]; ++r) {
        read_row(src, r, 0, 0, row.data());
        write_row(*dst, load_i32(ids, r), 0, 0, row.data());
    }
}

void concat(Tensor* dst) {
    const Tensor& a = *dst->src[0];
    const Tensor& b = *dst->src[1];
    const int dim = concat_dim(*dst);
    int64_t i[4];
    for (i[3] = 0; i[3] < dst->ne[3]; ++i[3])
        for (i[2] = 0; i[2] < dst->ne[2]; ++i[2])
            for (i[1] = 0; i[1] < dst->ne[1]; ++i[1])
                for (i[0] = 0; i[0] < dst->ne[0]; ++i[0]) {
                    int64_t j[4] = {i[0], i[1], i[2], i[3]};
                    const Tensor* from = &a;
                    if (j[dim] >= a.ne[dim]) {
                        j[dim] -= a.ne[dim];
                        from = &b;
                    }
                    store(*dst, load(*from, j[0], j[1], j[2], j[3]), i[0], i[1], i[2], i[3]);
                }
}

}  // namespace tessera::ref::detail
