// mul_mat on the cpu backend: work split into panels of weight rows (OpenMP),
// register-blocked xsimd kernels for f32/f16/bf16 weights, quant_dot.h tiles
// for quantized ones.
//
// Float weights: decode-sized products (few activation rows) stream each
// weight row once, widening f16/bf16 on the fly, so they run at memory
// bandwidth. Prefill-sized products widen a panel of weight rows x a k-block
// to f32 once per thread and reuse it against every activation row; the panel
// stays in L2 and the kernel runs from cache. On AMD, f16/bf16 weights are
// widened on load in prefill too (cpu_level.h: FloatKernelTuning).
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "backends/cpu/amx_matmul.h"
#include "backends/cpu/amx_matmul_f16.h"
#include "backends/cpu/cpu_act_quant.h"
#include "backends/cpu/cpu_level.h"
#include "backends/cpu/cpu_matmul_kernel.h"
#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/quant_dot.h"
#include "backends/cpu/rows8_k_matmul.h"
#include "backends/cpu/rows8_layout.h"
#include "backends/cpu/rows8_matmul.h"
#include "core/error.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

namespace {

constexpr int64_t kPackMinCols = 8;      // from this many activation rows on, widen weight panels to f32
constexpr int64_t kStreamPanelRows = 48;  // weight rows per work item when streaming (decode)
constexpr int64_t kPackPanelRows = 72;    // weight rows per work item when packing (prefill), a multiple of kBlockRows
#ifndef TESSERA_CPU_BLOCK_K
#define TESSERA_CPU_BLOCK_K 1024
#endif
constexpr int64_t kBlockK = TESSERA_CPU_BLOCK_K;         // k-block of a packed panel: 72 x 1024 f32 = 288 KiB, fits L2
constexpr int64_t kQuantCols = 16;        // activation rows per quant dot_tile call

// A row stride (in floats) of at least n that is not a multiple of 1 KiB: rows a power-of-two
// apart map to the same L1 sets and evict each other in the register-blocked kernel.
int64_t padded_stride(int64_t n) { return (n * 4) % 1024 == 0 ? n + 16 : n; }

size_t elem_size(DType t) { return t == DType::F32 ? 4 : 2; }

template <class W>
void float_panel(const MatmulJob& job, int64_t r0, int64_t r1, float* panel) {
    using T = typename W::T;
    const int64_t ws = int64_t(job.w_stride / sizeof(T));
    const T* w0 = reinterpret_cast<const T*>(job.w) + r0 * ws;
    const int64_t as = int64_t(job.act_stride), os = int64_t(job.out_stride), k = job.k, rows = r1 - r0;
    float* out = job.out + r0;

    if (job.m == 1) {
        const auto decode_block = float_kernel_tuning().decode_asks_ahead ? dot_block<W, kDecodeRows, 1, true>
                                                                           : dot_block<W, kDecodeRows, 1, false>;
        int64_t i0 = 0;
        for (; i0 + kDecodeRows <= rows; i0 += kDecodeRows)
            decode_block(w0 + i0 * ws, ws, job.act, as, k, out + i0, os, false);
        for (; i0 < rows; i0 += kBlockRows) {
            const int rn = int(std::min<int64_t>(kBlockRows, rows - i0));
            dot_block_for<W>(rn, 1)(w0 + i0 * ws, ws, job.act, as, k, out + i0, os, false);
        }
        return;
    }
    // Few activation rows, or half-precision weights on a CPU that converts them faster on load
    // (FloatKernelTuning): each block of weight rows is read from the weights themselves, over the whole k.
    constexpr bool kHalf = !std::is_same_v<W, F32Elem>;
    if (job.m < kPackMinCols || (kHalf && !float_kernel_tuning().half_prefill_widens)) {
        for (int64_t j0 = 0; j0 < job.m; j0 += kBlockCols) {
            const int rm = int(std::min<int64_t>(kBlockCols, job.m - j0));
            for (int64_t i0 = 0; i0 < rows; i0 += kBlockRows) {
                const int rn = int(std::min<int64_t>(kBlockRows, rows - i0));
                dot_block_for<W>(rn, rm)(w0 + i0 * ws, ws, job.act + j0 * as, as, k, out + j0 * os + i0, os, false);
            }
        }
        return;
    }

    for (int64_t k0 = 0; k0 < k; k0 += kBlockK) {
        const int64_t kc = std::min(kBlockK, k - k0);
        // The panel's row stride is padded (see padded_stride) so its rows do not share L1 sets.
        const int64_t wps = padded_stride(kc);
        const int64_t kv = kc / kLanes * kLanes;
        for (int64_t r = 0; r < rows; ++r) {
            const T* src = w0 + r * ws + k0;
            float* dst = panel + r * wps;
            for (int64_t p = 0; p < kv; p += kLanes) W::load(src + p).store_unaligned(dst + p);
            for (int64_t p = kv; p < kc; ++p) dst[p] = W::scalar(src[p]);
        }
        const float* wp = panel;
        for (int64_t j0 = 0; j0 < job.m; j0 += kBlockCols) {
            const int rm = int(std::min<int64_t>(kBlockCols, job.m - j0));
            for (int64_t i0 = 0; i0 < rows; i0 += kBlockRows) {
                const int rn = int(std::min<int64_t>(kBlockRows, rows - i0));
                dot_block_for<F32Elem>(rn, rm)(wp + i0 * wps, wps, job.act + j0 * as + k0, as, kc,
                                               out + j0 * os + i0, os, k0 > 0);
            }
        }
    }
}

void quant_panel(const MatmulJob& job, int64_t r0, int64_t r1, const char* qact, size_t qstride, float* tile) {
    const int64_t nr = r1 - r0;
    const char* w = job.w + size_t(r0) * job.w_stride;
    if (job.m == 1) {  // the output column is contiguous over weight rows: write it in place
        dot_tile(job.wtype, job.k, w, job.w_stride, nr, qact, qstride, 1, job.out + r0, 1);
        return;
    }
    // The tile holds kPackPanelRows rows at a time (a decode item may span many more: work_items).
    for (int64_t i0 = 0; i0 < nr; i0 += kPackPanelRows) {
        const int64_t rows = std::min(kPackPanelRows, nr - i0);
        for (int64_t j0 = 0; j0 < job.m; j0 += kQuantCols) {
            const int64_t nc = std::min(kQuantCols, job.m - j0);
            dot_tile(job.wtype, job.k, w + size_t(i0) * job.w_stride, job.w_stride, rows, qact + size_t(j0) * qstride,
                     qstride, nc, tile, nc);
            for (int64_t c = 0; c < nc; ++c) {
                float* o = job.out + (j0 + c) * int64_t(job.out_stride) + r0 + i0;
                for (int64_t r = 0; r < rows; ++r) o[r] = tile[r * nc + c];
            }
        }
    }
}

struct WorkItem {
    size_t job;
    int64_t r0, r1;
};

}  // namespace

bool matmul_weight_type_ok(DType t) {
    if (t == DType::F32 || t == DType::F16 || t == DType::BF16) return true;
    if (t == DType::Q8_K) return false;  // an activation format, not a weight format
    const TypeTraits& tr = type_traits(t);
    return tr.quantized && tr.to_float != nullptr;
}

namespace {

// Weight rows of the smallest work item of `job`: what its kernel takes in one call (whole rows8 strips,
// whole amx panels).
int64_t unit_rows(const MatmulJob& job) {
    return job.amx_repacked ? amx_item_rows(job) : job.m < kPackMinCols ? kStreamPanelRows : kPackPanelRows;
}

// The jobs' weight rows cut into work items, handed out in this order to whichever thread asks next.
// Prefill-sized products (compute-bound) get items of one unit each. Decode-sized ones (each weight byte
// read once, so memory-bound) get large items first and smaller ones as the rows run out, each a share of
// the units left (as OpenMP's guided schedule does): an item is a contiguous run of weights that the core
// reads as a few long streams, and every new item starts its streams cold (the prefetches of the previous
// one ran past its end, into rows another thread took), while the small last items keep the threads
// finishing together. tg32 TinyLlama-1.1B shape, 2 threads, tok/s, one unit per item -> guided:
//   amx Q4_0 41.2-41.5 -> 43.0-46.3, Q4_K_M 36.0-36.2 -> 38.0-39.3 (items of 4 units: 39.2-42.2, 36.5-37.7);
//   avx512 Q4_0 39.2-40.4 -> 45.6-46.1, Q4_K_M 35.5 -> 39.4-39.9; avx2 Q4_0 37.6-38.0 -> 43.6-45.0;
//   with a busy neighbour process (bench --neighbour 1), amx Q4_0 24.1-24.5 -> 27.0-27.3.
// A share of 1 / threads was as good as 1 / (2 threads) or 1 / (4 threads) on an idle machine and the best
// with the neighbour.
std::vector<WorkItem> work_items(const std::vector<MatmulJob>& jobs, int threads) {
    std::vector<WorkItem> items;
    bool streams = true;
    int64_t units_left = 0;
    for (const MatmulJob& job : jobs) {
        streams = streams && job.m < kPackMinCols;
        units_left += (job.n + unit_rows(job) - 1) / unit_rows(job);
    }
    for (size_t j = 0; j < jobs.size(); ++j) {
        const int64_t unit = unit_rows(jobs[j]);
        for (int64_t r0 = 0; r0 < jobs[j].n;) {
            const int64_t units = streams ? std::max<int64_t>(1, units_left / threads) : 1;
            const int64_t r1 = std::min(jobs[j].n, r0 + units * unit);
            items.push_back({j, r0, r1});
            units_left -= (r1 - r0 + unit - 1) / unit;
            r0 = r1;
        }
    }
    return items;
}

}  // namespace

void run_matmul_jobs(const std::vector<MatmulJob>& jobs, ThreadPool& pool, Scratch& scratch) {
    double macs = 0;
    for (const auto& j : jobs) macs += double(j.n) * double(j.m) * double(j.k);
    const int threads = threads_for(pool.size(), macs, 1 << 18);
    scratch.prepare(threads);

    // Quantized weights: convert every activation row once, in parallel. Jobs that read the same
    // activations in the same format (q, k and v of one input; gate and up) share one conversion.
    std::vector<size_t> qoffset(jobs.size(), 0), qstride(jobs.size(), 0);
    std::vector<std::pair<size_t, int64_t>> qrows;
    size_t qtotal = 0;
    // F16 / BF16 weights repacked for the AMX tiles take their activations split into BF16 parts instead
    // (amx_matmul_f16.h), the same way: F32 below stands for that format, which no quantized type has.
    const auto converts = [](const MatmulJob& o) {
        return type_traits(o.wtype).quantized || (o.amx_repacked && amx_f16_uses_tiles(o));
    };
    const auto act_format = [](const MatmulJob& o) {
        return type_traits(o.wtype).quantized ? activation_type(o.wtype) : DType::F32;
    };
    for (size_t j = 0; j < jobs.size(); ++j) {
        if (!converts(jobs[j])) continue;
        qstride[j] = !type_traits(jobs[j].wtype).quantized ? amx_f16_act_row_bytes(jobs[j].k)
                     : jobs[j].amx_repacked                ? amx_act_row_bytes(jobs[j].wtype, jobs[j].k)
                                                           : activation_row_bytes(jobs[j].wtype, jobs[j].k);
        const auto same_input = [&](const MatmulJob& o) {
            return converts(o) && act_format(o) == act_format(jobs[j]) && o.amx_repacked == jobs[j].amx_repacked &&
                   o.act == jobs[j].act && o.act_stride == jobs[j].act_stride && o.m == jobs[j].m && o.k == jobs[j].k;
        };
        const auto earlier = std::find_if(jobs.begin(), jobs.begin() + std::ptrdiff_t(j), same_input);
        if (earlier != jobs.begin() + std::ptrdiff_t(j)) {
            qoffset[j] = qoffset[size_t(earlier - jobs.begin())];
            continue;
        }
        qoffset[j] = qtotal;
        qtotal += qstride[j] * size_t(jobs[j].m);
        for (int64_t r = 0; r < jobs[j].m; ++r) qrows.push_back({j, r});
    }
    char* qbuf = qtotal ? scratch.shared(0, qtotal) : nullptr;
    parallel_chunks(pool, int64_t(qrows.size()), threads, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
            const auto [j, r] = qrows[size_t(i)];
            const MatmulJob& job = jobs[j];
            const float* x = job.act + r * int64_t(job.act_stride);
            char* dst = qbuf + qoffset[j] + size_t(r) * qstride[j];
            if (type_traits(job.wtype).quantized && job.amx_repacked)
                amx_prepare_activation_row(job.wtype, x, dst, job.k);
            else if (type_traits(job.wtype).quantized)
                quantize_activation_row(job.wtype, x, dst, job.k);
            else
                amx_f16_split_activations(x, job.k, dst);
        }
    });

    const std::vector<WorkItem> items = work_items(jobs, threads);
    size_t tile_floats = size_t(std::max(kPackPanelRows * (kBlockK + 16), kPackPanelRows * kQuantCols)) + size_t(kLanes);
    for (const auto& j : jobs)
        if (j.amx_repacked && !type_traits(j.wtype).quantized) tile_floats = std::max(tile_floats, amx_f16_scratch_floats(j));
        else if (j.amx_repacked) tile_floats = std::max(tile_floats, amx_scratch_floats(j));
        else if (j.rows8_repacked)
            tile_floats = std::max(tile_floats, rows8_k_compiled(j.wtype) ? rows8_k_scratch_floats(j) : rows8_scratch_floats(j));
    parallel_for(pool, int64_t(items.size()), threads, [&](int64_t i, int tid) {
        const WorkItem& it = items[size_t(i)];
        const MatmulJob& job = jobs[it.job];
        float* buf = scratch.thread_floats(tid, tile_floats);
        if (job.amx_repacked && !type_traits(job.wtype).quantized)  // F16 / BF16 in the tile layout
            return amx_panel_f16(job, it.r0, it.r1, qbuf + qoffset[it.job], qstride[it.job], buf);
        switch (job.wtype) {
            case DType::F32: float_panel<F32Elem>(job, it.r0, it.r1, buf); break;
            case DType::F16: float_panel<F16Elem>(job, it.r0, it.r1, buf); break;
            case DType::BF16: float_panel<BF16Elem>(job, it.r0, it.r1, buf); break;
            default:
                if (job.rows8_repacked && rows8_k_compiled(job.wtype))
                    rows8_k_panel(job, it.r0, it.r1, qbuf + qoffset[it.job], qstride[it.job], buf);
                else if (job.rows8_repacked)
                    rows8_panel(job, it.r0, it.r1, qbuf + qoffset[it.job], qstride[it.job], buf);
                else if (job.amx_repacked)
                    amx_panel(job, it.r0, it.r1, qbuf + qoffset[it.job], qstride[it.job], buf);
                else
                    quant_panel(job, it.r0, it.r1, qbuf + qoffset[it.job], qstride[it.job], buf);
                break;
        }
    });
}

bool mul_mat_ok(const Tensor& node) {
    const Tensor* a = node.src[0];
    const Tensor* b = node.src[1];
    if (!a || !b || b->type != DType::F32 || node.type != DType::F32 || !node.is_contiguous()) return false;
    if ((a->flags & kFlagRepacked) && (a->flags & kFlagRows8))  // interleaved rows: levels with AVX2 (rows8_matmul.h)
        return ((rows8_compiled() && rows8_layout::repackable(a->type)) || rows8_k_compiled(a->type)) && a->op == Op::None &&
               b->ne[2] % a->ne[2] == 0 &&
               b->ne[3] % a->ne[3] == 0;
    if (a->flags & kFlagRepacked)  // the tile layout: only a level with tiles reads it (amx_matmul.h)
        return amx_tiles_compiled() && a->op == Op::None &&
               (activation_type(a->type) == DType::Q8_0 || activation_type(a->type) == DType::Q8_K ||
                a->type == DType::F16 || a->type == DType::BF16) &&
               b->ne[2] % a->ne[2] == 0 && b->ne[3] % a->ne[3] == 0;
    if (!matmul_weight_type_ok(a->type) || a->nb[0] != type_traits(a->type).block_bytes) return false;
    if (!type_traits(a->type).quantized)
        for (int d = 1; d < kMaxDims; ++d)
            if (a->nb[d] % elem_size(a->type) != 0) return false;
    return b->ne[2] % a->ne[2] == 0 && b->ne[3] % a->ne[3] == 0;
}

namespace {

// Activations are used in place when their rows are contiguous floats; prefill-sized products also repack
// them when the row stride is a multiple of 1 KiB (see padded_stride).
bool activations_in_place(const Tensor& b, int64_t m) {
    return b.nb[0] == sizeof(float) && b.nb[1] % sizeof(float) == 0 && !(m >= kPackMinCols && b.ne[1] > 1 && b.nb[1] % 1024 == 0);
}

// dst's products, one job per (i2, i3) slice, reading the activations at bbase with strides bnb1..3.
void append_jobs(Tensor* dst, const char* bbase, size_t bnb1, size_t bnb2, size_t bnb3, std::vector<MatmulJob>& jobs) {
    const Tensor* a = dst->src[0];
    const Tensor* b = dst->src[1];
    const int64_t r2 = b->ne[2] / a->ne[2], r3 = b->ne[3] / a->ne[3];
    for (int64_t i3 = 0; i3 < b->ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < b->ne[2]; ++i2) {
            MatmulJob job;
            job.wtype = a->type;
            job.w = a->at(0, 0, i2 / r2, i3 / r3);
            job.w_stride = a->nb[1];
            job.n = a->ne[1];
            job.k = a->ne[0];
            job.act = reinterpret_cast<const float*>(bbase + size_t(i2) * bnb2 + size_t(i3) * bnb3);
            job.act_stride = bnb1 / sizeof(float);
            job.m = b->ne[1];
            job.out = reinterpret_cast<float*>(dst->at(0, 0, i2, i3));
            job.out_stride = dst->nb[1] / sizeof(float);
            job.rows8_repacked = (a->flags & kFlagRepacked) && (a->flags & kFlagRows8);
            job.amx_repacked = (a->flags & kFlagRepacked) && !job.rows8_repacked;
            jobs.push_back(job);
        }
}

}  // namespace

bool mul_mat_in_place(const Tensor& node) { return activations_in_place(*node.src[1], node.src[1]->ne[1]); }

void mul_mat_group(Tensor* const* dsts, int count, ThreadPool& pool, Scratch& scratch) {
    std::vector<MatmulJob> jobs;
    for (int i = 0; i < count; ++i) {
        TESSERA_CHECK(mul_mat_in_place(*dsts[i]), "mul_mat_group: '%s' needs its activations packed",
                      dsts[i]->name.c_str());
        const Tensor* b = dsts[i]->src[1];
        append_jobs(dsts[i], static_cast<const char*>(b->data), b->nb[1], b->nb[2], b->nb[3], jobs);
    }
    run_matmul_jobs(jobs, pool, scratch);
}

void mul_mat(Tensor* dst, ThreadPool& pool, Scratch& scratch) {
    const Tensor* b = dst->src[1];
    const int64_t k = dst->src[0]->ne[0];
    if (mul_mat_in_place(*dst)) return mul_mat_group(&dst, 1, pool, scratch);

    // Activations packed once into contiguous rows of a padded stride.
    const int64_t nrows = b->nrows();
    const int64_t stride = padded_stride(k);
    float* packed = reinterpret_cast<float*>(scratch.shared(1, size_t(nrows * stride) * sizeof(float)));
    parallel_chunks(pool, nrows, threads_for(pool.size(), double(nrows * k)), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t i1 = r % b->ne[1], i2 = (r / b->ne[1]) % b->ne[2], i3 = r / (b->ne[1] * b->ne[2]);
            const char* src = b->at(0, i1, i2, i3);
            float* d = packed + r * stride;
            if (b->nb[0] == sizeof(float))
                std::memcpy(d, src, size_t(k) * sizeof(float));
            else
                for (int64_t i = 0; i < k; ++i) std::memcpy(d + i, src + i * int64_t(b->nb[0]), sizeof(float));
        }
    });
    const size_t bnb1 = size_t(stride) * sizeof(float), bnb2 = bnb1 * size_t(b->ne[1]), bnb3 = bnb2 * size_t(b->ne[2]);
    std::vector<MatmulJob> jobs;
    append_jobs(dst, reinterpret_cast<const char*>(packed), bnb1, bnb2, bnb3, jobs);
    run_matmul_jobs(jobs, pool, scratch);
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
