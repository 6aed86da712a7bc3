// The graph of one batch of tokens and the per-step inputs it reads.
//
// A BatchGraph is built once per batch shape and re-used for every step of
// that shape. It owns what changes from step to step:
//   - the input tensors (token ids, their positions and sequences, the cell
//     each token's K/V row goes to, the position and sequence each cache cell
//     holds) and the storage they live in.
// Its life: the session creates it, the architecture builds the forward pass
// on it (the part above the line below), allocate() gives every tensor
// storage, and bind() fills it for one chunk of tokens before each compute.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"
#include "core/ops.h"
#include "models/kv_cache.h"

namespace tessera {

class BatchGraph {
public:
    // Creates the input tensors of a batch of n_tokens tokens whose attention reads kv_span cells of the
    // linear layers (one sequence: the first kv_span; several: every cell, and kv_span is ignored), with
    // logits for n_outputs of the tokens (n_tokens: all of them).
    BatchGraph(KVCache& cache, int64_t n_tokens, int64_t kv_span, int64_t n_outputs);
    BatchGraph(const BatchGraph&) = delete;
    BatchGraph& operator=(const BatchGraph&) = delete;

    // ---- what an architecture's build() uses ----
    Context ctx;
    Graph graph;
    const int64_t n_tokens;   // tokens in this batch
    const int64_t kv_span;    // cells of a linear layer attention reads (cells past it are all empty)
    const int64_t n_outputs;  // rows of the result: logits of that many tokens (bind() names which)
    const bool multi_seq;     // the cache holds several sequences: attention masks by sequence too

    Tensor* tokens = nullptr;     // I32 [n_tokens]
    Tensor* positions = nullptr;  // I32 [n_tokens]: q_pos and the RoPE positions
    Tensor* token_seqs = nullptr;  // I32 [n_tokens]: each token's sequence (multi_seq only, else null)

    // Writes this batch's K and V rows (F32 [k_width, n_tokens], [v_width, n_tokens], any
    // shape with that element count) into the cache, each token's row into the cell of its sequence
    // and position. The writes are added to the graph at once, so nodes expanded later (the attention)
    // run after them.
    void store_kv(int layer, Tensor* k, Tensor* v);
    // The layer's cache as attention reads it: [head_dim, n_kv_head, cells] in the cache type.
    Tensor* cache_k(int layer);
    Tensor* cache_v(int layer);
    // The k_pos attention needs for this layer's cache: the position each cell holds (-1 when empty),
    // for linear and ring layers alike.
    Tensor* cache_positions(int layer);
    // The sequence each of the layer's cells holds (-1 when empty); multi_seq only, else null.
    Tensor* cache_seqs(int layer);
    // The fused attention of queries q [d_k, n_head, n_tokens] over the layer's cache, with the batch's
    // positions, and its sequences when the cache holds several.
    Tensor* attention(int layer, Tensor* q, AttentionSpec spec);
    // Keeps the columns of x [ne0, n_tokens] of the tokens that want logits (all when n_outputs == n_tokens).
    Tensor* select_output_rows(Tensor* x);
    // The session's context length (Phi-3's LongRoPE picks its factors by it).
    int64_t n_ctx() const { return cache_.n_ctx(); }

    // ---- what the session uses ----
    // Marks `output` as the graph's result, adds it to the graph, and gives storage on `backend` to the
    // inputs (a buffer of their own) and the intermediates (planned into one buffer by lifetime).
    void allocate(Tensor* output, Backend& backend);
    Tensor* output() const { return output_; }

    // ---- looking inside (attention maps) ----
    // What one attention node read and wrote, as F32 contiguous copies kept to the end of the compute,
    // so they can be read back after it (on any backend, through get_tensor).
    struct AttentionTap {
        const Tensor* node;     // the attention op: its spec is in its params
        Tensor* q = nullptr;    // [d_k, n_head, n_tokens]: queries after RoPE and norms
        Tensor* k = nullptr;    // [d_k, n_kv_head, cells]: the cache as the op read it
        Tensor* v = nullptr;    // [d_v, n_kv_head, cells]
        Tensor* out = nullptr;  // [d_v, n_head, n_tokens]: the op's own output
        Tensor* q_pos = nullptr;
        Tensor* k_pos = nullptr;
    };
    // Call before allocate(): allocate() then adds a tap to every attention node, in execution order
    // (one per layer).
    void capture_attention() { capture_attention_ = true; }
    const std::vector<AttentionTap>& attention_taps() const { return taps_; }

    // Readies the graph for one batch. Per token: its id, position and sequence (seqs may be null when the
    // cache holds one sequence); out_rows: the n_outputs token indices whose logits are kept, ascending
    // (null when n_outputs == n_tokens). Call after the cache has taken the batch (KVCache::append), so the
    // cells' positions include it.
    void bind(Backend& backend, const int32_t* batch_tokens, const int32_t* batch_positions, const int32_t* seqs,
              const int32_t* out_rows);

private:
    // The inputs of one kind of layer cache (linear, or a ring of some size): where the batch's rows go
    // and what each cell holds.
    struct CellInputs {
        int64_t ring;                // 0: linear
        Tensor* write_cells;         // I32 [n_tokens]: the cell each token's row is written to
        Tensor* positions;           // I32 [cells]: the position each cell holds, -1 when empty
        Tensor* seqs = nullptr;      // I32 [cells]: its sequence (multi_seq only)
    };
    CellInputs& cells_of(int layer);
    int64_t read_cells(int layer) const;  // cells attention reads in this layer

    void add_attention_taps();

    KVCache& cache_;
    std::vector<CellInputs> cell_inputs_;
    Tensor* out_rows_ = nullptr;  // I32 [n_outputs] when n_outputs < n_tokens
    Tensor* output_ = nullptr;
    bool capture_attention_ = false;
    std::vector<AttentionTap> taps_;
    std::unique_ptr<Buffer> inputs_, compute_;
    std::vector<int32_t> scratch_, scratch_seq_;  // host staging for the inputs
};

}  // namespace tessera
