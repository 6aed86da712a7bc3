// Attention maps: the softmax probabilities the fused attention op never materialises, recomputed
// from what its inputs were (queries after RoPE and norms, the cached keys, the positions) with the
// op's own rule: the same visibility (causal, window, empty cells), scale and softcap (core/ops.h).
// For attn-viz and for C API callers that want to look inside a model.
#pragma once
#include <cstdint>
#include <vector>

#include "core/ops.h"

namespace tessera {

// One attention node of one computed chunk, read back to the host.
struct AttentionRecord {
    AttentionSpec spec;
    int64_t d_k = 0, d_v = 0, n_head = 0, n_kv_head = 0, n_query = 0, n_cell = 0;
    std::vector<float> q, k, v, out;  // [d, head, row] as the op saw them (k, v per cache cell)
    std::vector<int32_t> q_pos, k_pos;
    std::vector<float> sinks;  // [n_head] sink logits (gpt-oss), empty for none: they take mass, give no cell

    // Softmax probabilities of query row i of head h over the cells (n_cell values, 0 for cells the
    // query cannot see; all 0 when it sees none, as the op then yields zeros). With a sink they sum below 1.
    std::vector<double> probabilities(int64_t head, int64_t i) const;
};

// A (layer, head) map over one decode call: rows are the call's queries (position first_query + r),
// columns key positions 0 .. n_key - 1 (a position no cell held is a column of zeros).
struct AttentionMap {
    int64_t n_query = 0, n_key = 0, first_query = 0;
    std::vector<float> probs;  // n_query x n_key, row-major
};

// chunks[c][layer]: the records of one decode call, chunk by chunk.
AttentionMap attention_map(const std::vector<std::vector<AttentionRecord>>& chunks, int64_t layer, int64_t head);

}  // namespace tessera
