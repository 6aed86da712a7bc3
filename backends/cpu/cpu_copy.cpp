// Data movement on the cpu backend: get_rows, set_rows, cont / cast and cpy, row by row
// over OpenMP. Float types convert with the exact vector conversions of
// cpu_convert.cpp; quantized destinations use the type's reference quantizer
// and quantized sources its dequantizer, so results equal the reference's.
#include <cstring>
#include <vector>

#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/cpu_simd.h"
#include "core/error.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

namespace {

bool plain_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
bool rows_whole(const Tensor* t) { return t && t->nb[0] == type_traits(t->type).block_bytes; }
bool readable(const Tensor* t) {
    return rows_whole(t) && (plain_float(t->type) || (type_traits(t->type).quantized && type_traits(t->type).to_float));
}
bool writable(const Tensor* t) {
    return rows_whole(t) &&
           (plain_float(t->type) || (type_traits(t->type).quantized && type_traits(t->type).from_float));
}

// Writes n floats as type t.
void write_row(DType t, const float* src, void* dst, int64_t n) {
    switch (t) {
        case DType::F32: std::memcpy(dst, src, size_t(n) * sizeof(float)); break;
        case DType::F16: convert_f32_to_f16(src, static_cast<uint16_t*>(dst), n); break;
        case DType::BF16: convert_f32_to_bf16(src, static_cast<uint16_t*>(dst), n); break;
        default: type_traits(t).from_float(src, dst, n); break;
    }
}

inline void row_index(const Tensor& shape, int64_t r, int64_t& i1, int64_t& i2, int64_t& i3) {
    i1 = r % shape.ne[1];
    i2 = (r / shape.ne[1]) % shape.ne[2];
    i3 = r / (shape.ne[1] * shape.ne[2]);
}

// Row r of src (in its shape) to row r of dst (in its shape): same ne[0], same row count.
void copy_rows(const Tensor& src, Tensor* dst, ThreadPool& pool, Scratch& scratch) {
    const int64_t n = src.ne[0];
    const bool same_type = src.type == dst->type;
    const size_t bytes = src.row_bytes();
    const int threads = threads_for(pool.size(), double(src.nelements()));
    scratch.prepare(threads);
    parallel_chunks(pool, src.nrows(), threads, [&](int64_t r0, int64_t r1, int tid) {
        float* tmp = same_type || src.type == DType::F32 ? nullptr : scratch.thread_floats(tid, size_t(n));
        for (int64_t r = r0; r < r1; ++r) {
            int64_t a1, a2, a3, b1, b2, b3;
            row_index(src, r, a1, a2, a3);
            row_index(*dst, r, b1, b2, b3);
            const char* s = src.at(0, a1, a2, a3);
            char* d = dst->at(0, b1, b2, b3);
            if (same_type) {
                std::memcpy(d, s, bytes);
            } else if (src.type == DType::F32) {
                write_row(dst->type, reinterpret_cast<const float*>(s), d, n);
            } else if (dst->type == DType::F32) {
                convert_to_f32(src.type, s, reinterpret_cast<float*>(d), n);
            } else {
                convert_to_f32(src.type, s, tmp, n);
                write_row(dst->type, tmp, d, n);
            }
        }
    });
}

void get_rows(Tensor* dst, ThreadPool& pool) {
    const Tensor& table = *dst->src[0];
    const Tensor& ids = *dst->src[1];
    const int64_t n = ids.ne[0];
    for (int64_t r = 0; r < n; ++r) {  // every id is checked before any row is read
        const int32_t id = *reinterpret_cast<const int32_t*>(ids.at(r));
        TESSERA_CHECK(id >= 0 && id < table.ne[1], "get_rows '%s': row id %d (at index %lld) is outside [0, %lld)",
                      dst->name.c_str(), id, (long long)r, (long long)table.ne[1]);
    }
    parallel_chunks(pool, n, threads_for(pool.size(), double(n * table.ne[0])), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            const int32_t id = *reinterpret_cast<const int32_t*>(ids.at(r));
            convert_to_f32(table.type, table.at(0, id), reinterpret_cast<float*>(dst->at(0, r)), table.ne[0]);
        }
    });
}

// Row i of src0 (f32) -> row ids[i] of dst (which aliases src1), converted to dst's type. Ids are checked
// (range, repeats) before any row is written: a bad batch leaves the cache as it was.
void set_rows(Tensor* dst, ThreadPool& pool) {
    const Tensor& src = *dst->src[0];
    const Tensor& ids = *dst->src[2];
    const int64_t n = ids.ne[0];
    std::vector<bool> taken(size_t(dst->ne[1]), false);
    for (int64_t r = 0; r < n; ++r) {
        const int32_t id = *reinterpret_cast<const int32_t*>(ids.at(r));
        TESSERA_CHECK(id >= 0 && id < dst->ne[1], "set_rows '%s': row id %d (at index %lld) is outside [0, %lld)",
                      dst->name.c_str(), id, (long long)r, (long long)dst->ne[1]);
        TESSERA_CHECK(!taken[size_t(id)], "set_rows '%s': row id %d (at index %lld) is written twice",
                      dst->name.c_str(), id, (long long)r);
        taken[size_t(id)] = true;
    }
    parallel_chunks(pool, n, threads_for(pool.size(), double(n * src.ne[0])), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            const int32_t id = *reinterpret_cast<const int32_t*>(ids.at(r));
            write_row(dst->type, reinterpret_cast<const float*>(src.at(0, r)), dst->at(0, id), src.ne[0]);
        }
    });
}

}  // namespace

bool copy_ok(const Tensor& node) {
    const Tensor* s = node.src[0];
    if (!s) return false;
    switch (node.op) {
        case Op::GetRows:
            return readable(s) && s->ne[2] == 1 && s->ne[3] == 1 && node.src[1] &&
                   node.src[1]->type == DType::I32 && node.type == DType::F32 && node.is_contiguous();
        case Op::Cont:
            if (!node.is_contiguous() || !s->same_shape(node)) return false;
            if (s->type == node.type) return rows_whole(s);
            return readable(s) && writable(&node);
        case Op::Cpy:
            return readable(s) && writable(&node) && s->ne[0] == node.ne[0] && s->nrows() == node.nrows();
        case Op::SetRows:
            return s->type == DType::F32 && rows_whole(s) && writable(&node) && node.src[2] &&
                   node.src[2]->type == DType::I32;
        default:
            return false;
    }
}

void copy(Tensor* dst, ThreadPool& pool, Scratch& scratch) {
    if (dst->op == Op::GetRows) return get_rows(dst, pool);
    if (dst->op == Op::SetRows) return set_rows(dst, pool);
    copy_rows(*dst->src[0], dst, pool, scratch);
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
