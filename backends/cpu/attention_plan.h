// How the cpu attention cuts one attention node into work: tile sizes, the
// split of the key sequence for decode, and the scratch it needs. Exposed so
// tests can put sequence lengths at tile edges and the benchmark can report
// memory; the kernel itself uses the same functions.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace tessera::cpu {

struct AttentionPlan {
    int64_t d_k = 0, d_v = 0;          // head dims
    int64_t dk_padded = 0, dv_padded = 0;  // rounded up to the SIMD width
    int64_t n_head = 0, n_kv_head = 0, group = 0;  // group = query heads per KV head
    int64_t n_q = 0, n_kv = 0;
    int64_t q_tile = 0;   // queries per work unit (at most; a tile of one sequence may hold fewer)
    int64_t heads_per_unit = 1;  // KV heads per work unit (all of them for decode, one for prefill)
    int64_t kv_tile = 0;  // keys per tile: each K/V tile is converted to float once per unit
    int64_t n_q_tiles = 0, n_kv_tiles = 0;
    int64_t n_splits = 1;  // >1: the key sequence is split across threads, merged by log-sum-exp
    bool streaming = false;  // decode with <= 8 rows per KV head: cache rows read in place, no converted tiles
    bool v_in_k = false;   // v is a view of the first d_v values of each k row (MLA): one tile serves both
    int n_threads = 1;

    // A unit's rows: its KV heads x its queries x the group's query heads, so every K/V tile it converts
    // serves all the query heads that read it.
    int64_t rows_per_unit() const { return heads_per_unit * q_tile * group; }
    int64_t n_head_blocks() const { return n_kv_head / heads_per_unit; }
    int64_t n_units() const { return n_head_blocks() * n_q_tiles * n_splits; }
};

// A tile of queries: [q0, q0 + n). With several sequences in the batch every tile holds queries of one
// sequence only, so it sees only that sequence's cells: a decode batch of 4 sequences is 4 tiles of one
// query each, each reading its own sequence's keys, instead of one tile whose every row reads the keys of
// all 4 (3/4 of them masked).
struct QueryTile {
    int64_t q0 = 0, n = 0;
};

// The query tiles of a batch of n_q queries, at most q_tile each: runs of consecutive queries of the same
// sequence (q_seq null: one sequence), each run cut into tiles of q_tile.
inline std::vector<QueryTile> attention_query_tiles(int64_t n_q, int64_t q_tile, const int32_t* q_seq) {
    std::vector<QueryTile> tiles;
    q_tile = std::max<int64_t>(q_tile, 1);
    for (int64_t run = 0; run < n_q;) {
        int64_t end = run + 1;
        if (q_seq)
            while (end < n_q && q_seq[end] == q_seq[run]) ++end;
        else
            end = n_q;
        for (int64_t q0 = run; q0 < end; q0 += q_tile) tiles.push_back({q0, std::min(q_tile, end - q0)});
        run = end;
    }
    return tiles;
}

}  // namespace tessera::cpu

// The plan's functions depend on the level's SIMD width: one set per kernel level (cpu_kernels.h reaches them).
#ifdef TESSERA_CPU_LEVEL
namespace tessera::cpu::TESSERA_CPU_LEVEL {

// The plan for this attention node (dst = attention(...)) on n_threads threads.
AttentionPlan plan_attention(const Tensor& dst, int n_threads);
// The same from the shapes alone (v_in_k left false): tests read kv_tile and q_tile from it. Queries in
// uniform tiles (one sequence).
AttentionPlan plan_attention_shape(int64_t n_head, int64_t n_kv_head, int64_t d_k, int64_t d_v, int64_t n_q,
                                   int64_t n_kv, int n_threads);
// The plan for queries cut into n_q_tiles tiles of at most q_tile queries each (attention_query_tiles).
AttentionPlan plan_attention_tiles(int64_t n_head, int64_t n_kv_head, int64_t d_k, int64_t d_v, int64_t n_q,
                                   int64_t n_kv, int n_threads, int64_t n_q_tiles, int64_t q_tile);

// The kv tile length used for these head dims when a unit holds heads_per_unit KV heads (all of them when
// the queries fit one query tile, as in decode; else one), and the queries per unit for this group size
// (query heads per KV head): tests place sequence lengths around them.
int64_t attention_kv_tile(int64_t d_k, int64_t d_v, int64_t heads_per_unit);
int64_t attention_q_tile(int64_t group);

// Bytes of scratch the cpu attention allocates for this node (all threads together): per-thread tiles
// plus split partials and the per-tile bookkeeping. Grows linearly with the sequence, never with its square.
size_t attention_scratch_bytes(const Tensor& dst, int n_threads);

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
#endif
