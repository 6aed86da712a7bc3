#include "models/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

namespace {

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

KVCache::KVCache(const std::vector<LayerCache>& layout, DType type, int64_t n_ctx, Backend& backend,
                 int64_t n_batch)
    : layers_(layout), type_(type), n_ctx_(n_ctx) {
    TESSERA_CHECK_AS(Unsupported, type == DType::F32 || type == DType::F16 || type == DType::Q8_0,
                  "cache type %s is not supported (use f16, f32 or q8_0)", type_name(type));
    TESSERA_CHECK(n_ctx >= 1, "context size %lld must be >= 1", (long long)n_ctx);
    const int64_t block = type_traits(type).block_size;
    for (size_t il = 0; il < layers_.size(); ++il) {
        const LayerCache& l = layers_[il];
        // Attention reads each head's slice of a row as a row of its own, so heads must be whole blocks.
        TESSERA_CHECK(l.head_dim_k % block == 0 && (l.v_width == 0 || l.head_dim_v % block == 0),
                      "cache type %s needs head dims that are multiples of %lld (layer %zu has %lld / %lld)",
                      type_name(type), (long long)block, il, (long long)l.head_dim_k, (long long)l.head_dim_v);
    }

    // Ring sizes: a window layer that asks for a ring keeps window + n_batch - 1 slots when that saves any.
    for (const LayerCache& l : layers_) {
        int64_t ring = 0;
        if (l.ring && l.kind == CacheKind::Window && l.window > 0 && n_batch > 0 &&
            int64_t(l.window) + n_batch - 1 < n_ctx)
            ring = int64_t(l.window) + n_batch - 1;
        ring_.push_back(ring);
    }

    // One buffer for every layer: K then V per layer, each aligned.
    size_t total = 0;
    std::vector<size_t> k_off, v_off;
    for (size_t il = 0; il < layers_.size(); ++il) {
        const LayerCache& l = layers_[il];
        const size_t slots = size_t(ring_[il] > 0 ? ring_[il] : n_ctx);
        k_off.push_back(total);
        total += align64(row_bytes(type, l.k_width) * slots);
        v_off.push_back(total);
        if (l.v_width > 0) total += align64(row_bytes(type, l.v_width) * slots);
    }
    try {
        buffer_ = backend.alloc_buffer(total);
    } catch (const Error& e) {
        throw Error(format("KV cache of %lld tokens (%.1f MiB) on '%s': %s (try a smaller --ctx or --cache-type q8_0)",
                           (long long)n_ctx, double(total) / 1048576.0, backend.name().c_str(), e.what()),
                    e.status());
    }
    char* base = static_cast<char*>(buffer_->base());
    for (size_t il = 0; il < layers_.size(); ++il) {
        const LayerCache& l = layers_[il];
        const int64_t slots = ring_[il] > 0 ? ring_[il] : n_ctx;
        Tensor* k = ctx_.new_tensor(type, {l.k_width, slots}, "cache_k." + std::to_string(il));
        k->buffer = buffer_.get();
        k->data = base + k_off[il];
        k_.push_back(k);
        Tensor* v = nullptr;
        if (l.v_width > 0) {
            v = ctx_.new_tensor(type, {l.v_width, slots}, "cache_v." + std::to_string(il));
            v->buffer = buffer_.get();
            v->data = base + v_off[il];
        }
        v_.push_back(v);
    }
}

void KVCache::append(int64_t n) {
    TESSERA_CHECK(n >= 0, "cannot append %lld tokens", (long long)n);
    TESSERA_CHECK_AS(ContextFull, used_ + n <= n_ctx_,
                  "context full: %lld tokens in the cache + %lld new exceed the context size %lld "
                  "(start a new session, truncate it, or use a larger --ctx)",
                  (long long)used_, (long long)n, (long long)n_ctx_);
    used_ += n;
    high_water_ = std::max(high_water_, used_);
}

void KVCache::truncate(int64_t n_keep) {
    TESSERA_CHECK(n_keep >= 0 && n_keep <= used_, "cannot keep %lld tokens: the cache holds %lld",
                  (long long)n_keep, (long long)used_);
    used_ = n_keep;  // stale rows beyond are never attended (their slot position is -1) and get overwritten
    if (used_ == 0) high_water_ = 0;
}

void KVCache::slot_positions(int64_t span, int32_t* out) const {
    for (int64_t s = 0; s < span; ++s) out[s] = s < used_ ? int32_t(s) : -1;
}

size_t KVCache::bytes_per_token() const {
    size_t bytes = 0;
    for (const LayerCache& l : layers_) {
        bytes += row_bytes(type_, l.k_width);
        if (l.v_width > 0) bytes += row_bytes(type_, l.v_width);
    }
    return bytes;
}

int64_t KVCache::max_batch_at(int64_t start) const {
    int64_t most = n_ctx_ - start;
    for (int64_t ring : ring_)
        if (ring > 0) most = std::min(most, ring - start % ring);
    return most;
}

void KVCache::ring_positions(int64_t ring, int32_t* out) const {
    // Slot s holds the latest position p < used with p % ring == s, unless a later position (up to the
    // highest ever written, before a truncate) overwrote it: then the slot is empty. After truncating a
    // ring cache further back than its slack, window layers see fewer old keys, never wrong ones.
    for (int64_t s = 0; s < ring; ++s) {
        const int64_t last = used_ - 1;
        const int64_t p = last < s ? -1 : s + (last - s) / ring * ring;
        out[s] = p < 0 || p + ring < high_water_ ? -1 : int32_t(p);
    }
}

size_t KVCache::total_bytes() const { return linear_bytes() + ring_bytes(); }

size_t KVCache::linear_bytes() const {
    size_t bytes = 0;
    for (size_t il = 0; il < layers_.size(); ++il)
        if (ring_[il] == 0)
            bytes += (row_bytes(type_, layers_[il].k_width) + row_bytes(type_, layers_[il].v_width)) * size_t(n_ctx_);
    return bytes;
}

size_t KVCache::ring_bytes() const {
    size_t bytes = 0;
    for (size_t il = 0; il < layers_.size(); ++il)
        if (ring_[il] > 0)
            bytes += (row_bytes(type_, layers_[il].k_width) + row_bytes(type_, layers_[il].v_width)) * size_t(ring_[il]);
    return bytes;
}

}  // namespace tessera
