// The cpu attention: FlashAttention's tiled online softmax (Dao et al.,
// FlashAttention-2, Algorithm 1), written for decode-heavy CPU use.
//
// Work unit = (KV heads, tile of queries[, slice of the key sequence]). A unit
// holds every query head that reads its KV heads ("group" rows per query), so
// each K/V tile is read from the cache once per group, not once per head: that
// is where GQA/MQA/MLA save bandwidth. For each tile of keys the unit computes
// the scores of all its rows, applies softcap and mask, and folds them into a
// running max / sum / output per row; no score matrix larger than rows x
// kv_tile ever exists.
//
// Prefill (several query tiles): one KV head per unit; its K/V tile is converted
// to float once and reused by up to ~64 rows (register-blocked dots).
// Decode (one query tile): one unit spans every KV head, reading each key's heads
// together so the cache streams front to back; the key sequence is cut into
// slices run on different threads, whose partial (max, sum, output) are merged
// by log-sum-exp at the end. With <= 8 rows per KV head (MHA, GQA) the cache
// rows are read in place by the streaming kernels; with many (MQA, MLA) the
// tile is converted once and shared by all rows.
//
// Sinks (gpt-oss) change only the last step: a row's sink logit joins its sum when the output is divided.
//
// Tiles are skipped from their key position range (min/max over the tile, so
// ring caches with unsorted positions work) and, with several sequences in the
// batch, their sequence range: a tile no query of the unit can see is never
// read, so a sequence's decode does not read the other sequences' cells. A tile
// is read only from its first to its last occupied cell: a short context in a
// large cache does not score the empty cells after it.
//
// Several sequences: a query tile never mixes sequences (attention_query_tiles),
// so each tile reads only its own sequence's cells, and a decode batch (one
// query per sequence) is a tile per sequence, each streamed over all KV heads
// like a single sequence's decode.
#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/cpu/attention_kernels.h"
#include "backends/cpu/attention_plan.h"
#include "backends/cpu/cpu_parallel.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/quant.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

bool visible(int64_t qp, int64_t kp, bool causal, int64_t window) {
    return kp >= 0 && (!causal || kp <= qp) && (window == 0 || qp - kp < window);
}

// Key positions of one kv tile: the range of its occupied slots (and of their sequences, with several).
struct TileRange {
    int64_t min = 0, max = -1;
    int64_t seq_min = 0, seq_max = -1;
    int64_t first = 0, last = -1;  // the first and last occupied cell: only these and those between are read
    bool any = false;  // at least one occupied slot
    bool all = false;  // every slot from first to last occupied
};

// The queries of one query tile: their position and sequence ranges.
struct QueryRange {
    int64_t min, max, seq_min, seq_max;
};

// How a kv tile relates to a query tile: only partially visible tiles need a per-pair mask.
enum class Visibility : uint8_t { None, Partial, Full };

// seqs: the op masks by sequence (the ranges' sequence fields are then filled).
Visibility classify(const TileRange& k, const QueryRange& q, bool causal, int64_t window, bool seqs) {
    if (!k.any) return Visibility::None;
    if (causal && k.min > q.max) return Visibility::None;            // every key is in every query's future
    if (window > 0 && q.min - k.max >= window) return Visibility::None;  // every key slid out of every window
    if (seqs && (k.seq_max < q.seq_min || k.seq_min > q.seq_max)) return Visibility::None;  // other sequences
    const bool one_seq = !seqs || (k.seq_min == k.seq_max && q.seq_min == q.seq_max && k.seq_min == q.seq_min);
    const bool full = one_seq && k.all && (!causal || k.max <= q.min) && (window == 0 || q.max - k.min < window);
    return full ? Visibility::Full : Visibility::Partial;
}

// Per-thread tiles, kept between calls so decode does not page-fault fresh scratch every layer.
// Holds no state that outlives one call's meaning: every buffer is rewritten before it is read.
// (Not cpu::Scratch, cpu_parallel.h, the backend's buffers for matmul and copy: these live with the thread.)
struct TileScratch {
    std::vector<float> q, o, s, m, l, k, v;
    std::vector<uint8_t> hidden;  // per (query, key) of a partially visible tile: 1 = masked
};
TileScratch& thread_scratch() {
    thread_local TileScratch scratch;
    return scratch;
}

template <class T>
T* sized(std::vector<T>& v, int64_t n) {
    if (int64_t(v.size()) < n) v.resize(size_t(n));
    return v.data();
}

// A kv tile a query tile reads: cells [j0, j0 + nk), and whether it needs the per-pair mask.
struct ActiveTile {
    int64_t j0 = 0, nk = 0;
    Visibility vis = Visibility::None;
};

// Everything a unit needs, read-only while the units run (partial: each unit writes its own slots).
struct Job {
    const AttentionPlan& plan;
    const Tensor& q;
    const Tensor& k;
    const Tensor& v;
    const int32_t* q_pos;
    const int32_t* k_pos;
    const int32_t* q_seq;  // null with one sequence
    const int32_t* k_seq;
    AttentionSpec spec;
    const float* sinks;  // spec.sinks' data, [n_head], or null
    std::vector<QueryTile> q_tiles;
    // active[qt]: the kv tiles query tile qt can see, with their visibility (never None)
    std::vector<std::vector<ActiveTile>> active;
    Tensor& dst;
    // split partials: unit (head block, qt, split) -> rows x dv_padded outputs, then the rows' maxima, then sums
    std::vector<float> partial;
};

size_t partial_floats_per_unit(const AttentionPlan& p) { return size_t(p.rows_per_unit() * (p.dv_padded + 2)); }

// Rows of a unit: head block hb (KV head kvh0 + hb) x query qi x query head hh of the group, in that order.
struct RowMap {
    const AttentionPlan& p;
    int64_t kvh0, q0;
    int64_t rows_per_head() const { return p.q_tile * p.group; }
    int64_t row(int64_t hb, int64_t qi, int64_t hh) const { return hb * rows_per_head() + qi * p.group + hh; }
    float* dst_row(Tensor& dst, int64_t hb, int64_t qi, int64_t hh) const {
        return reinterpret_cast<float*>(dst.at(0, (kvh0 + hb) * p.group + hh, q0 + qi));
    }
};

void load_queries(const Job& job, const RowMap& rm, int64_t nq, float* qbuf) {
    const AttentionPlan& p = job.plan;
    const Tensor& q = job.q;
    for (int64_t hb = 0; hb < p.heads_per_unit; ++hb)
        for (int64_t qi = 0; qi < nq; ++qi)
            for (int64_t hh = 0; hh < p.group; ++hh) {
                float* row = qbuf + rm.row(hb, qi, hh) * p.dk_padded;
                const char* src = q.at(0, (rm.kvh0 + hb) * p.group + hh, rm.q0 + qi);
                if (q.nb[0] == sizeof(float)) {
                    std::memcpy(row, src, size_t(p.d_k) * sizeof(float));
                } else {
                    for (int64_t c = 0; c < p.d_k; ++c)
                        std::memcpy(row + c, src + c * int64_t(q.nb[0]), sizeof(float));
                }
                // scale folded into q: (s q).k instead of s (q.k), one multiply per query element, not per score
                for (int64_t c = 0; c < p.d_k; ++c) row[c] *= job.spec.scale;
                std::fill(row + p.d_k, row + p.dk_padded, 0.0f);
            }
}

// Asks for the cache lines of rows [j0, j0 + n) of one KV head of t ahead of use (into L2).
void prefetch_rows(const Tensor& t, int64_t head, int64_t j0, int64_t n) {
    const size_t bytes = t.row_bytes();
    for (int64_t j = j0; j < j0 + n; ++j) {
        const char* row = t.at(0, head, j);
        for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(row + off, 0, 2);
    }
}

// The online-softmax step for the rows of one KV head on one tile: softcap, mask, then fold the tile's
// scores into the rows' running max and sum (s becomes the weights), rescaling the rows' outputs.
// hidden (or null when the tile is fully visible): [query][key] 1 = masked, shared by the group's heads.
void finish_scores(const Job& job, float* s, int64_t lds, int64_t nk, int64_t nq, const uint8_t* hidden, float* o,
                   int64_t ldo, float* m, float* l) {
    const AttentionPlan& p = job.plan;
    const int64_t rows = nq * p.group;
    if (job.spec.softcap > 0)
        for (int64_t r = 0; r < rows; ++r) attn::apply_softcap(s + r * lds, nk, job.spec.softcap);
    if (hidden)
        for (int64_t qi = 0; qi < nq; ++qi)
            for (int64_t j = 0; j < nk; ++j)
                if (hidden[qi * lds + j])
                    for (int64_t hh = 0; hh < p.group; ++hh) s[(qi * p.group + hh) * lds + j] = kNegInf;
    for (int64_t r = 0; r < rows; ++r) {
        const float factor = attn::softmax_step(s + r * lds, nk, &m[r], &l[r]);
        if (factor != 1.0f) attn::scale_row(o + r * ldo, p.dv_padded, factor);
    }
}

// Writes one finished row: o / l, where o and l are relative to the running max m. With a sink logit the
// denominator gains exp(sink - m); both are taken relative to max(m, sink) so neither exponential overflows.
// A row with no visible key (l == 0) is zeros, by contract.
void write_row(const float* o, float m, float l, const float* sink, float* dst, int64_t d) {
    float inv = l > 0 ? 1.0f / l : 0.0f;
    if (sink && l > 0) {
        const float top = std::max(m, *sink);
        const float keep = std::exp(m - top);
        inv = keep / (l * keep + std::exp(*sink - top));
    }
    for (int64_t c = 0; c < d; ++c) dst[c] = o[c] * inv;
}

// One unit: KV heads [kvh0, kvh0 + heads_per_unit) x query tile qt x slice `split` of the tiles qt can see.
void run_unit(Job& job, int64_t head_block, int64_t qt, int64_t split) {
    const AttentionPlan& p = job.plan;
    const QueryTile& qtile = job.q_tiles[size_t(qt)];
    const RowMap rm{p, head_block * p.heads_per_unit, qtile.q0};
    const int64_t nq = qtile.n;
    const int64_t rows = nq * p.group;  // rows per head block in use
    const int64_t rph = rm.rows_per_head();
    const int64_t R = p.rows_per_unit();
    const int64_t dkp = p.dk_padded, dvp = p.dv_padded, bk = p.kv_tile;

    TileScratch& sc = thread_scratch();
    float* qbuf = sized(sc.q, R * dkp);
    float* out = sized(sc.o, R * dvp);
    float* m = sized(sc.m, R);
    float* l = sized(sc.l, R);
    float* s = sized(sc.s, R * bk);  // scores [row][key]
    float* kt = p.streaming ? nullptr : sized(sc.k, p.heads_per_unit * bk * dkp);  // [head][key][dkp]
    float* vt = p.streaming || p.v_in_k ? kt : sized(sc.v, p.heads_per_unit * bk * dvp);
    uint8_t* hidden = sized(sc.hidden, p.q_tile * bk);
    const int64_t ldv = p.v_in_k ? dkp : dvp;

    load_queries(job, rm, nq, qbuf);
    std::fill(out, out + R * dvp, 0.0f);
    std::fill(m, m + R, kNegInf);
    std::fill(l, l + R, 0.0f);

    const auto& tiles = job.active[size_t(qt)];
    const size_t first = tiles.size() * size_t(split) / size_t(p.n_splits);
    const size_t last = tiles.size() * size_t(split + 1) / size_t(p.n_splits);
    for (size_t t = first; t < last; ++t) {
        const int64_t j0 = tiles[t].j0;
        const int64_t nk = tiles[t].nk;
        const bool partial = tiles[t].vis == Visibility::Partial;
        if (partial)  // the mask depends on positions only: once per tile, shared by every head
            for (int64_t qi = 0; qi < nq; ++qi)
                for (int64_t j = 0; j < nk; ++j)
                    hidden[qi * bk + j] = !visible(job.q_pos[rm.q0 + qi], job.k_pos[j0 + j], job.spec.causal, job.spec.window) ||
                                          (job.q_seq && job.q_seq[rm.q0 + qi] != job.k_seq[j0 + j]);
        if (p.streaming) {  // cache rows read in place, every head of a key together
            attn::stream_scores(job.k.type, job.k.at(0, 0, j0), job.k.nb[2], job.k.nb[1], nk, p.n_kv - j0, p.n_kv_head, p.d_k,
                                qbuf, dkp, rows, rph, s, bk);
            for (int64_t hb = 0; hb < p.heads_per_unit; ++hb)
                finish_scores(job, s + hb * rph * bk, bk, nk, nq, partial ? hidden : nullptr, out + hb * rph * dvp,
                              dvp, m + hb * rph, l + hb * rph);
            attn::stream_pv(job.v.type, job.v.at(0, 0, j0), job.v.nb[2], job.v.nb[1], nk, p.n_kv - j0, p.n_kv_head, p.d_v, s, bk,
                            rows, rph, out, dvp);
            continue;
        }
        // Convert the tile for every KV head of the unit, token by token: one token's heads sit side by side
        // in the cache, so this reads each stream (k, then v) front to back, which the hardware prefetchers
        // follow; a head-by-head walk would jump a whole cache row per key.
        for (int64_t j = 0; j < nk; ++j)
            for (int64_t hb = 0; hb < p.heads_per_unit; ++hb)
                attn::row_to_f32(job.k.type, job.k.at(0, rm.kvh0 + hb, j0 + j), p.d_k, kt + (hb * bk + j) * dkp, dkp);
        if (!p.v_in_k)
            for (int64_t j = 0; j < nk; ++j)
                for (int64_t hb = 0; hb < p.heads_per_unit; ++hb)
                    attn::row_to_f32(job.v.type, job.v.at(0, rm.kvh0 + hb, j0 + j), p.d_v, vt + (hb * bk + j) * dvp,
                                     dvp);
        if (p.heads_per_unit == 1 && t + 1 < last) {
            // one head per unit (prefill): its rows are a cache row apart, too far for the hardware to guess
            prefetch_rows(job.k, rm.kvh0, tiles[t + 1].j0, tiles[t + 1].nk);
            if (!p.v_in_k) prefetch_rows(job.v, rm.kvh0, tiles[t + 1].j0, tiles[t + 1].nk);
        }
        for (int64_t hb = 0; hb < p.heads_per_unit; ++hb) {
            const float* kh = kt + hb * bk * dkp;
            const float* vh = p.v_in_k ? kh : vt + hb * bk * dvp;
            float* qb = qbuf + hb * rph * dkp;
            float* ob = out + hb * rph * dvp;
            attn::scores(qb, dkp, rows, kh, dkp, nk, dkp, s, bk);
            finish_scores(job, s, bk, nk, nq, partial ? hidden : nullptr, ob, dvp, m + hb * rph, l + hb * rph);
            attn::accumulate_pv(s, bk, rows, vh, ldv, nk, dvp, ob, dvp);
        }
    }
    if (p.n_splits == 1) {
        for (int64_t hb = 0; hb < p.heads_per_unit; ++hb)
            for (int64_t qi = 0; qi < nq; ++qi)
                for (int64_t hh = 0; hh < p.group; ++hh) {
                    const int64_t r = rm.row(hb, qi, hh);
                    const float* sink = job.sinks ? job.sinks + (rm.kvh0 + hb) * p.group + hh : nullptr;
                    write_row(out + r * dvp, m[r], l[r], sink, rm.dst_row(job.dst, hb, qi, hh), p.d_v);
                }
        return;
    }
    float* part = job.partial.data() + ((head_block * p.n_q_tiles + qt) * p.n_splits + split) * partial_floats_per_unit(p);
    std::memcpy(part, out, size_t(R * dvp) * sizeof(float));
    std::memcpy(part + R * dvp, m, size_t(R) * sizeof(float));
    std::memcpy(part + R * (dvp + 1), l, size_t(R) * sizeof(float));
}

// Log-sum-exp merge of the split partials of unit (head block, qt) into dst.
void merge_splits(Job& job, int64_t head_block, int64_t qt) {
    const AttentionPlan& p = job.plan;
    const QueryTile& qtile = job.q_tiles[size_t(qt)];
    const RowMap rm{p, head_block * p.heads_per_unit, qtile.q0};
    const int64_t nq = qtile.n;
    const int64_t dvp = p.dv_padded, R = p.rows_per_unit();
    const float* base = job.partial.data() + (head_block * p.n_q_tiles + qt) * p.n_splits * partial_floats_per_unit(p);
    auto part = [&](int64_t split) { return base + split * partial_floats_per_unit(p); };
    for (int64_t hb = 0; hb < p.heads_per_unit; ++hb)
        for (int64_t qi = 0; qi < nq; ++qi)
            for (int64_t hh = 0; hh < p.group; ++hh) {
                const int64_t r = rm.row(hb, qi, hh);
                float* dst = rm.dst_row(job.dst, hb, qi, hh);
                float mx = kNegInf;
                for (int64_t sp = 0; sp < p.n_splits; ++sp) mx = std::max(mx, part(sp)[R * dvp + r]);
                std::fill(dst, dst + p.d_v, 0.0f);
                if (mx == kNegInf) continue;  // no split saw a visible key
                float total = 0;
                for (int64_t sp = 0; sp < p.n_splits; ++sp) {
                    const float ms = part(sp)[R * dvp + r];
                    if (ms == kNegInf) continue;
                    const float w = std::exp(ms - mx);
                    total += w * part(sp)[R * (dvp + 1) + r];
                    const float* o = part(sp) + r * dvp;
                    for (int64_t c = 0; c < p.d_v; ++c) dst[c] += w * o[c];
                }
                const float* sink = job.sinks ? job.sinks + (rm.kvh0 + hb) * p.group + hh : nullptr;
                write_row(dst, mx, total, sink, dst, p.d_v);
            }
}

void validate(const Tensor& dst) {
    const Tensor& q = *dst.src[0];
    const Tensor& k = *dst.src[1];
    const Tensor& v = *dst.src[2];
    TESSERA_CHECK(q.type == DType::F32 && dst.src[3]->type == DType::I32 && dst.src[4]->type == DType::I32,
                  "attention '%s': q must be f32 and positions i32", dst.name.c_str());
    TESSERA_CHECK(dst.type == DType::F32 && dst.is_contiguous(), "attention '%s': output must be contiguous f32",
                  dst.name.c_str());
    for (const Tensor* t : {&k, &v}) {
        TESSERA_CHECK(t->type == DType::F32 || t->type == DType::F16 || t->type == DType::Q8_0,
                      "attention '%s': cpu backend reads f32, f16 or q8_0 caches, not %s", dst.name.c_str(),
                      type_name(t->type));
        TESSERA_CHECK(t->nb[0] == size_t(type_traits(t->type).block_bytes) && t->ne[0] % type_traits(t->type).block_size == 0,
                      "attention '%s': cache rows of '%s' must be contiguous whole blocks", dst.name.c_str(),
                      t->name.c_str());
    }
    const AttentionSpec spec = attention_spec(dst);
    TESSERA_CHECK(!spec.q_seq == !spec.k_seq &&
                      (!spec.q_seq || (spec.q_seq->type == DType::I32 && spec.k_seq->type == DType::I32 &&
                                       spec.q_seq->ne[0] == q.ne[2] && spec.k_seq->ne[0] == k.ne[2])),
                  "attention '%s': q_seq and k_seq must both be i32 [n_q] and [n_kv], or both absent",
                  dst.name.c_str());
    const Tensor* sinks = spec.sinks;
    TESSERA_CHECK(!sinks || (sinks->type == DType::F32 && sinks->ne[0] == q.ne[1] && sinks->is_contiguous()),
                  "attention '%s': sinks must be contiguous f32 [n_head]", dst.name.c_str());
    TESSERA_CHECK(q.ne[1] % k.ne[1] == 0 && q.ne[0] == k.ne[0],
                  "attention '%s': q %s does not fit k %s", dst.name.c_str(), q.shape_str().c_str(),
                  k.shape_str().c_str());
}

}  // namespace

int64_t attention_kv_tile(int64_t d_k, int64_t d_v, int64_t heads_per_unit) {
    // A unit's converted K and V tiles (all its heads) should stay within ~128 KiB of L2, beside the rows'
    // queries and outputs; at least 16 keys (one register of scores per row), at most 128.
    const int64_t per_key = heads_per_unit * (attn::padded(d_k) + attn::padded(d_v)) * int64_t(sizeof(float));
    int64_t tile = 16;
    while (tile < 128 && (tile * 2) * per_key <= 128 * 1024) tile *= 2;
    return tile;
}

// ~64 rows per unit: enough rows to reuse each converted K/V tile many times, few enough that the
// rows' queries, outputs and scores stay in L2.
int64_t attention_q_tile(int64_t group) { return std::max<int64_t>(1, 64 / std::max<int64_t>(group, 1)); }

AttentionPlan plan_attention_shape(int64_t n_head, int64_t n_kv_head, int64_t d_k, int64_t d_v, int64_t n_q,
                                   int64_t n_kv, int n_threads) {
    const int64_t q_tile = std::min(attention_q_tile(n_head / n_kv_head), std::max<int64_t>(n_q, 1));
    return plan_attention_tiles(n_head, n_kv_head, d_k, d_v, n_q, n_kv, n_threads, (n_q + q_tile - 1) / q_tile,
                                q_tile);
}

AttentionPlan plan_attention_tiles(int64_t n_head, int64_t n_kv_head, int64_t d_k, int64_t d_v, int64_t n_q,
                                   int64_t n_kv, int n_threads, int64_t n_q_tiles, int64_t q_tile) {
    AttentionPlan p;
    p.n_threads = std::max(1, n_threads);
    p.d_k = d_k;
    p.d_v = d_v;
    p.dk_padded = attn::padded(p.d_k);
    p.dv_padded = attn::padded(p.d_v);
    p.n_head = n_head;
    p.n_kv_head = n_kv_head;
    p.group = p.n_head / p.n_kv_head;
    p.n_q = n_q;
    p.n_kv = n_kv;
    p.q_tile = std::max<int64_t>(q_tile, 1);
    p.n_q_tiles = n_q_tiles;
    // decode (or a short chunk, one query tile; or tiles of a few rows, one per sequence of a decode batch):
    // memory-bound, a few rows per KV head. One unit takes every KV head so each cache row's heads are read
    // together (contiguous bytes), and the key sequence is cut into slices for the threads: ~4 per thread so
    // slices left uneven by skipped tiles still balance.
    // prefill: compute-bound, one KV head per unit; the keys are split only if the units are too few.
    const bool few_rows = p.q_tile * p.group <= attn::kMaxStreamRows;
    p.heads_per_unit = p.n_q_tiles == 1 || few_rows ? p.n_kv_head : 1;
    // few rows per KV head (MHA, GQA decode): a converted tile would serve only those rows, so the cache is
    // read in place instead (the streaming kernels); needs head dims in whole SIMD registers
    p.streaming = few_rows && p.d_k % attn::lanes() == 0 && p.d_v % attn::lanes() == 0;
    p.kv_tile = p.streaming ? 128 : attention_kv_tile(p.d_k, p.d_v, p.heads_per_unit);
    p.n_kv_tiles = (p.n_kv + p.kv_tile - 1) / p.kv_tile;
    const int64_t base_units = p.n_head_blocks() * p.n_q_tiles;
    if (p.n_threads > 1 && base_units < 2 * p.n_threads)
        p.n_splits = std::clamp<int64_t>((4 * p.n_threads + base_units - 1) / base_units, 1,
                                         std::max<int64_t>(p.n_kv_tiles, 1));
    return p;
}

AttentionPlan plan_attention(const Tensor& dst, int n_threads) {
    const Tensor& q = *dst.src[0];
    const Tensor& k = *dst.src[1];
    const Tensor& v = *dst.src[2];
    AttentionPlan p = plan_attention_shape(q.ne[1], k.ne[1], q.ne[0], v.ne[0], q.ne[2], k.ne[2], n_threads);
    // MLA: v is the first d_v values of each k row (same storage, same strides): one converted tile serves both.
    p.v_in_k = v.data != nullptr && v.data == k.data && v.type == k.type && v.nb[1] == k.nb[1] &&
               v.nb[2] == k.nb[2] && p.d_v <= p.d_k;
    return p;
}

size_t attention_scratch_bytes(const Tensor& dst, int n_threads) {
    const AttentionPlan p = plan_attention(dst, n_threads);
    const int64_t R = p.rows_per_unit();
    const int64_t tiles = p.streaming ? 0 : p.heads_per_unit * p.kv_tile * (p.dk_padded + (p.v_in_k ? 0 : p.dv_padded));
    const int64_t per_thread = R * p.dk_padded + R * p.dv_padded + 2 * R + R * p.kv_tile + tiles;
    size_t bytes = (size_t(per_thread) * sizeof(float) + size_t(p.q_tile * p.kv_tile)) * size_t(p.n_threads);
    if (p.n_splits > 1) bytes += size_t(p.n_units()) * partial_floats_per_unit(p) * sizeof(float);
    // active tile lists: at most one entry per (query tile, kv tile) pair, plus the tile ranges
    bytes += size_t(p.n_q_tiles * p.n_kv_tiles) * sizeof(ActiveTile) +
             size_t(p.n_kv_tiles) * sizeof(TileRange);
    return bytes;
}

void attention(Tensor* dst, ThreadPool& pool) {
    validate(*dst);
    const AttentionSpec spec = attention_spec(*dst);
    const Tensor& q = *dst->src[0];
    const int64_t n_q = q.ne[2], group = q.ne[1] / dst->src[1]->ne[1];
    std::vector<QueryTile> q_tiles = attention_query_tiles(
        n_q, std::min(attention_q_tile(group), std::max<int64_t>(n_q, 1)),
        spec.q_seq ? spec.q_seq->data_as<const int32_t>() : nullptr);
    int64_t q_tile = 1;
    for (const QueryTile& t : q_tiles) q_tile = std::max(q_tile, t.n);
    AttentionPlan plan = plan_attention_tiles(q.ne[1], dst->src[1]->ne[1], q.ne[0], dst->src[2]->ne[0], n_q,
                                              dst->src[1]->ne[2], pool.size(), int64_t(q_tiles.size()), q_tile);
    plan.v_in_k = plan_attention(*dst, pool.size()).v_in_k;
    Job job{plan,
            *dst->src[0],
            *dst->src[1],
            *dst->src[2],
            dst->src[3]->data_as<const int32_t>(),
            dst->src[4]->data_as<const int32_t>(),
            spec.q_seq ? spec.q_seq->data_as<const int32_t>() : nullptr,
            spec.k_seq ? spec.k_seq->data_as<const int32_t>() : nullptr,
            spec,
            spec.sinks ? spec.sinks->data_as<const float>() : nullptr,
            std::move(q_tiles),
            {},
            *dst,
            {}};
    if (plan.n_q == 0) return;

    std::vector<TileRange> ranges(size_t(plan.n_kv_tiles));
    for (int64_t t = 0; t < plan.n_kv_tiles; ++t) {
        TileRange& r = ranges[size_t(t)];
        r.min = r.seq_min = std::numeric_limits<int64_t>::max();
        int64_t occupied = 0;
        for (int64_t j = t * plan.kv_tile; j < std::min(plan.n_kv, (t + 1) * plan.kv_tile); ++j) {
            const int64_t kp = job.k_pos[j];
            if (kp < 0) continue;
            if (!r.any) r.first = j;
            r.last = j;
            ++occupied;
            r.any = true;
            r.min = std::min(r.min, kp);
            r.max = std::max(r.max, kp);
            if (job.k_seq) {
                r.seq_min = std::min<int64_t>(r.seq_min, job.k_seq[j]);
                r.seq_max = std::max<int64_t>(r.seq_max, job.k_seq[j]);
            }
        }
        r.all = r.any && occupied == r.last - r.first + 1;
    }
    job.active.resize(size_t(plan.n_q_tiles));
    for (int64_t qt = 0; qt < plan.n_q_tiles; ++qt) {
        QueryRange qr{std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(),
                      std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()};
        const QueryTile& qtile = job.q_tiles[size_t(qt)];
        for (int64_t i = qtile.q0; i < qtile.q0 + qtile.n; ++i) {
            qr.min = std::min<int64_t>(qr.min, job.q_pos[i]);
            qr.max = std::max<int64_t>(qr.max, job.q_pos[i]);
            if (job.q_seq) {
                qr.seq_min = std::min<int64_t>(qr.seq_min, job.q_seq[i]);
                qr.seq_max = std::max<int64_t>(qr.seq_max, job.q_seq[i]);
            }
        }
        for (int64_t t = 0; t < plan.n_kv_tiles; ++t) {
            const TileRange& r = ranges[size_t(t)];
            const Visibility vis = classify(r, qr, job.spec.causal, job.spec.window, job.q_seq != nullptr);
            if (vis != Visibility::None) job.active[size_t(qt)].push_back({r.first, r.last - r.first + 1, vis});
        }
    }
    if (plan.n_splits > 1) job.partial.resize(size_t(plan.n_units()) * partial_floats_per_unit(plan));

    const int64_t n_units = plan.n_units();
    const int64_t n_blocks = plan.n_head_blocks();
    parallel_for(pool, n_units, plan.n_threads, [&](int64_t u, int) {
        const int64_t split = u % plan.n_splits;
        const int64_t rest = u / plan.n_splits;
        const int64_t block = rest % n_blocks;
        // last query tiles first: under a causal mask they see the most keys, so the long units start early
        const int64_t qt = plan.n_q_tiles - 1 - rest / n_blocks;
        run_unit(job, block, qt, split);
    });
    if (plan.n_splits > 1) {
        const int64_t n_merge = n_blocks * plan.n_q_tiles;
        parallel_chunks(pool, n_merge, plan.n_threads, [&](int64_t u0, int64_t u1, int) {
            for (int64_t u = u0; u < u1; ++u) merge_splits(job, u % n_blocks, u / n_blocks);
        });
    }
}

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
