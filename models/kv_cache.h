// The KV cache: per layer one K and one V tensor of rows [k_width] / [v_width]
// per slot, in the cache type (F16 default, F32, Q8_0). A linear layer (Full,
// Latent, or Window without a ring) has a slot per position up to n_ctx: slot
// s holds position s, and a full context is an error (no shifting). A ring
// layer (Window with `ring`) keeps window + n_batch - 1 slots, slot = position
// % ring. Attention decides what it sees from the position each slot holds
// (-1 = empty) alone, so linear layers, rings, chunked prefill and truncation
// need nothing of the attention op.
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
    // n_batch > 0: Window layers marked `ring` keep window + n_batch - 1 slots (when that is below n_ctx),
    // slot = position % ring; a batch of up to n_batch tokens then never overwrites a key its own
    // queries still see. Callers must not write a batch across the ring's end (max_batch_at).
    KVCache(const std::vector<LayerCache>& layout, DType type, int64_t n_ctx, Backend& backend, int64_t n_batch = 0);

    DType type() const { return type_; }
    int64_t n_ctx() const { return n_ctx_; }
    int n_layer() const { return int(layers_.size()); }
    const LayerCache& layer(int il) const { return layers_[il]; }
    Tensor* k(int il) const { return k_[il]; }
    Tensor* v(int il) const { return v_[il]; }  // null for Latent layers

    // Tokens held: slots [0, used) are filled.
    int64_t used() const { return used_; }
    // Marks [used, used + n) as holding positions used .. used + n - 1. Throws when the context is full.
    void append(int64_t n);
    // Keeps the first n_keep tokens (chat: drop the reply, keep the prompt prefix).
    void truncate(int64_t n_keep);
    void clear() { truncate(0); }
    // Position per slot for the first `span` slots (-1 when empty).
    void slot_positions(int64_t span, int32_t* out) const;

    size_t bytes_per_token() const;  // over all layers, K and V
    size_t total_bytes() const;      // allocated, ring layers at their ring size

    // Rings: 0 for a layer with a slot per position, else its slot count.
    int64_t ring_slots(int il) const { return ring_[size_t(il)]; }
    // The most tokens a batch starting at position `start` may hold without running past a ring's end.
    int64_t max_batch_at(int64_t start) const;
    // Position held by each slot of a ring of `ring` slots (-1 when empty).
    void ring_positions(int64_t ring, int32_t* out) const;
    // Allocated bytes of the layers with a slot per position (Full, Latent, un-ringed Window) and of the rings.
    size_t linear_bytes() const;
    size_t ring_bytes() const;

private:
    std::vector<LayerCache> layers_;
    DType type_;
    int64_t n_ctx_;
    int64_t used_ = 0;
    Context ctx_;
    std::vector<Tensor*> k_, v_;
    std::vector<int64_t> ring_;  // per layer: 0 = linear, else ring size
    int64_t high_water_ = 0;     // highest `used` since the cache was last empty (rings: what was overwritten)
    std::unique_ptr<Buffer> buffer_;
};

}  // namespace tessera
