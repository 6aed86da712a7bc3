// The KV cache: per layer one K and one V tensor of rows [k_width] / [v_width]
// per cell, in the cache type (F16 default, F32, Q8_0).
//
// It holds n_seq sequences (the server's slots), each with a region of cells
// of its own: sequence s owns cells [s * per_seq, (s + 1) * per_seq) of every
// layer. A linear layer (Full, Latent, or Window without a ring) has per_seq =
// n_ctx and a cell per position: position p of sequence s is cell
// s * n_ctx + p, and a full context is an error (no shifting). A ring layer
// (Window with `ring`) keeps per_seq = window + n_batch - 1 cells per
// sequence, position p at cell s * ring + p % ring.
//
// Attention decides what it sees from the position and the sequence each cell
// holds (-1 = empty) alone, so linear layers, rings, chunked prefill,
// truncation and several sequences in one batch need nothing more of the
// attention op. A sequence's positions are always 0 .. used(s) - 1.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "models/cache_layout.h"

namespace tessera {

class KVCache {
public:
    // Allocates zeroed storage on `backend`. type: F32, F16 or Q8_0 (Q8_0 needs head dims % 32 == 0).
    // n_ctx: positions per sequence. n_batch > 0: Window layers marked `ring` keep window + n_batch - 1
    // cells per sequence (when that is below n_ctx); a batch of up to n_batch tokens of one sequence then
    // never overwrites a key its own queries still see. n_seq: sequences held side by side.
    KVCache(const std::vector<LayerCache>& layout, DType type, int64_t n_ctx, Backend& backend, int64_t n_batch = 0,
            int n_seq = 1);

    DType type() const { return type_; }
    int64_t n_ctx() const { return n_ctx_; }  // positions per sequence
    int n_seq() const { return int(seqs_.size()); }
    int n_layer() const { return int(layers_.size()); }
    const LayerCache& layer(int il) const { return layers_[il]; }
    Tensor* k(int il) const { return k_[il]; }  // [k_width, cells(il)]
    Tensor* v(int il) const { return v_[il]; }  // null for Latent layers

    // Tokens held by sequence `seq`: its positions 0 .. used - 1.
    int64_t used(int seq = 0) const { return state(seq).used; }
    // Marks positions used .. used + n - 1 of `seq` as held. Throws when its context is full.
    void append(int seq, int64_t n);
    void append(int64_t n) { append(0, n); }
    // Keeps the first n_keep tokens of `seq` (chat: drop the reply, keep the prompt prefix).
    void truncate(int seq, int64_t n_keep);
    void truncate(int64_t n_keep) { truncate(0, n_keep); }
    void clear(int seq) { truncate(seq, 0); }
    void clear() {
        for (int s = 0; s < n_seq(); ++s) clear(s);
    }
    // Makes `dst` hold what `src` holds (the same tokens at the same positions): its cells' rows are copied
    // on the cache's backend. dst's previous tokens are dropped. src == dst does nothing.
    void copy_seq(int src, int dst);

    // Cells of layer il per sequence (n_ctx, or its ring) and in all (n_seq times that).
    int64_t seq_cells(int il) const { return ring_[size_t(il)] > 0 ? ring_[size_t(il)] : n_ctx_; }
    int64_t cells(int il) const { return seq_cells(il) * n_seq(); }
    // The cell of layer il that holds position pos of seq.
    int64_t cell(int il, int seq, int64_t pos) const;

    // For the cells of one kind of layer (ring = 0: linear, else a ring of that many cells per sequence):
    // the position each cell holds and its sequence, -1 for both when empty. Linear: only the first
    // `span` cells of each sequence's region are written (span <= n_ctx; the rest of out is untouched),
    // at pos[s * n_ctx + c]; a ring writes all its cells.
    void cell_info(int64_t ring, int64_t span, int32_t* pos, int32_t* seq) const;

    size_t bytes_per_token() const;  // over all layers, K and V
    size_t total_bytes() const;      // allocated, ring layers at their ring size, every sequence

    // Rings: 0 for a layer with a cell per position, else its cells per sequence.
    int64_t ring_slots(int il) const { return ring_[size_t(il)]; }
    // The most tokens a batch of `seq` starting at position `start` may hold without running past a ring's
    // end or the context.
    int64_t max_batch_at(int64_t start) const;
    // Allocated bytes of the layers with a cell per position (Full, Latent, un-ringed Window) and of the rings.
    size_t linear_bytes() const;
    size_t ring_bytes() const;

private:
    struct SeqState {
        int64_t used = 0;
        int64_t high_water = 0;  // highest `used` since the sequence was last empty (rings: what was overwritten)
    };
    const SeqState& state(int seq) const;
    SeqState& state(int seq);

    std::vector<LayerCache> layers_;
    DType type_;
    int64_t n_ctx_;
    std::vector<SeqState> seqs_;
    Context ctx_;
    std::vector<Tensor*> k_, v_;
    std::vector<int64_t> ring_;  // per layer: 0 = linear, else ring cells per sequence
    Backend& backend_;
    std::unique_ptr<Buffer> buffer_;
};

}  // namespace tessera
