// How the cpu attention cuts one attention node into work: tile sizes, the
// split of the key sequence for decode, and the scratch it needs. Exposed so
// tests can put sequence lengths at tile edges and the benchmark can report
// memory; the kernel itself uses the same functions.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/tensor.h"

namespace tessera::cpu {

struct AttentionPlan {
    int64_t d_k = 0, d_v = 0;          // head dims
    int64_t dk_padded = 0, dv_padded = 0;  // rounded up to the SIMD width
    int64_t n_head = 0, n_kv_head = 0, group = 0;  // group = query heads per KV head
    int64_t n_q = 0, n_kv = 0;
    int64_t q_tile = 0;   // queries per work unit
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

}  // namespace tessera::cpu

// The plan's functions depend on the level's SIMD width: one set per kernel level (cpu_kernels.h reaches them).
#ifdef TESSERA_CPU_LEVEL
namespace tessera::cpu::TESSERA_CPU_LEVEL {

// The plan for this attention node (dst = attention(...)) on n_threads threads.
AttentionPlan plan_attention(const Tensor& dst, int n_threads);
// The same from the shapes alone (v_in_k left false): tests read kv_tile and q_tile from it.
AttentionPlan plan_attention_shape(int64_t n_head, int64_t n_kv_head, int64_t d_k, int64_t d_v, int64_t n_q,
                                   int64_t n_kv, int n_threads);

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
