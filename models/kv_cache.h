// The KV cache: per layer one K and one V tensor of rows [k_width] / [v_width]
// per slot, in the cache type (F16 default, F32, Q8_0), plus the position each
// slot holds (-1 = empty). Slot s holds position s: the cache is linear in the
// context, and a full context is an error (no shifting). Attention decides what
// it sees from the slot positions alone, which is what lets window layers turn
// into rings later without touching the attention op.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "models/model.h"

namespace tessera {

class KVCache {
public:
    // Allocates zeroed storage on `backend`. type: F32, F16 or Q8_0 (Q8_0 needs head dims % 32 == 0).
    KVCache(const std::vector<LayerCache>& layout, DType type, int64_t n_ctx, Backend& backend);

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
    size_t total_bytes() const { return bytes_per_token() * size_t(n_ctx_); }

private:
    std::vector<LayerCache> layers_;
    DType type_;
    int64_t n_ctx_;
    int64_t used_ = 0;
    Context ctx_;
    std::vector<Tensor*> k_, v_;
    std::unique_ptr<Buffer> buffer_;
};

}  // namespace tessera
