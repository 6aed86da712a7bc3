// The graph of one batch of tokens and the per-step inputs it reads.
//
// A BatchGraph is built once per batch shape and re-used for every step of
// that shape. It owns what changes from step to step:
//   - the input tensors (token ids, their positions, the position each cache
//     slot holds) and the storage they live in;
//   - the cache views the batch writes its K/V rows through, whose offsets
//     move to the batch's first slot each step.
// Its life: the session creates it, the architecture builds the forward pass
// on it (the part above the line below), allocate() gives every tensor
// storage, and bind() fills it for one chunk of tokens before each compute.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"
#include "models/kv_cache.h"

namespace tessera {

class BatchGraph {
public:
    // Creates the input tensors of a batch of n_tokens reading kv_span cache slots.
    BatchGraph(KVCache& cache, int64_t n_tokens, int64_t kv_span, bool logits_all);
    BatchGraph(const BatchGraph&) = delete;
    BatchGraph& operator=(const BatchGraph&) = delete;

    // ---- what an architecture's build() uses ----
    Context ctx;
    Graph graph;
    const int64_t n_tokens;  // tokens in this batch
    const int64_t kv_span;   // cache slots attention reads (slots >= kv_span are all empty)
    const bool logits_all;   // logits for every token, or only the last

    Tensor* tokens = nullptr;     // I32 [n_tokens]
    Tensor* positions = nullptr;  // I32 [n_tokens]: q_pos and the RoPE positions

    // Writes this batch's K and V rows (F32 [k_width, n_tokens], [v_width, n_tokens], any
    // shape with that element count) into the cache at the batch's slots. The writes are
    // added to the graph at once, so nodes expanded later (the attention) run after them.
    void store_kv(int layer, Tensor* k, Tensor* v);
    // The layer's cache as attention reads it: [head_dim, n_kv_head, kv_span] in the cache type
    // ([.., ring] for a ring layer).
    Tensor* cache_k(int layer);
    Tensor* cache_v(int layer);
    // The k_pos attention needs for this layer's cache: the position each slot holds (-1 when empty),
    // for linear and ring layers alike.
    Tensor* cache_positions(int layer);
    // Keeps only the last token's column of x [ne0, n_tokens] unless logits_all.
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
    // Readies the graph for one chunk: n_tokens tokens at positions start .. start + n_tokens - 1.
    // Call after the cache has taken the chunk (KVCache::append), so the slot positions include it.
    void bind(Backend& backend, const int32_t* chunk_tokens, int64_t start);

private:
    // A view the batch writes cache rows through; its offset moves to the batch's first slot.
    struct SlotView {
        Tensor* view;
        size_t slot_bytes;
        int64_t ring = 0;  // > 0: the batch's first slot is its first position modulo ring
    };
    // The slot positions of each ring size in use (I32 [ring]).
    struct RingPositions {
        int64_t ring;
        Tensor* positions;
    };

    void add_attention_taps();

    KVCache& cache_;
    Tensor* kv_positions_ = nullptr;  // I32 [kv_span]: the position each linear slot holds, -1 when empty
    std::vector<SlotView> slot_views_;
    std::vector<RingPositions> ring_positions_;
    Tensor* output_ = nullptr;
    bool capture_attention_ = false;
    std::vector<AttentionTap> taps_;
    std::unique_ptr<Buffer> inputs_, compute_;
    std::vector<int32_t> scratch_;  // host staging for the inputs
};

}  // namespace tessera
