// What the KV cache keeps for each layer: the architecture says it
// (Architecture::cache_layout), the cache allocates it (models/kv_cache.h).
#pragma once
#include <cstdint>

namespace tessera {

enum class CacheKind { Full, Window, Latent };

struct LayerCache {
    CacheKind kind = CacheKind::Full;
    int64_t k_width = 0;  // elements per token in the K row (d_k * n_kv_head, or the latent width)
    int64_t v_width = 0;  // elements per token in the V row (0 for Latent: V is read from the K row)
    int64_t head_dim_k = 0;  // how the K row splits into heads when read for attention
    int64_t head_dim_v = 0;
    int32_t window = 0;      // for Window layers
    // Window layers only: keep a ring of window + n_batch - 1 slots (slot = position % ring) instead of
    // one slot per position. The architecture reads each layer's slot positions through
    // BatchGraph::cache_positions(layer), which serves rings and linear layers alike.
    bool ring = false;
};

}  // namespace tessera
