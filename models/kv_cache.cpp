#include "models/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

namespace {

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

KVCache::KVCache(const std::vector<LayerCache>& layout, DType type, int64_t n_ctx, Backend& backend,
                 int64_t n_batch, int n_seq)
    : layers_(layout), type_(type), n_ctx_(n_ctx), backend_(backend) {
    TESSERA_CHECK_AS(Unsupported, type == DType::F32 || type == DType::F16 || type == DType::Q8_0,
                  "cache type %s is not supported (use f16, f32 or q8_0)", type_name(type));
    TESSERA_CHECK(n_ctx >= 1, "context size %lld must be >= 1", (long long)n_ctx);
    TESSERA_CHECK(n_seq >= 1 && n_seq <= 4096, "sequence count %d must be in [1, 4096]", n_seq);
    seqs_.resize(size_t(n_seq));
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
        const size_t slots = size_t(cells(int(il)));
        k_off.push_back(total);
        total += align64(row_bytes(type, l.k_width) * slots);
        v_off.push_back(total);
        if (l.v_width > 0) total += align64(row_bytes(type, l.v_width) * slots);
    }
    try {
        buffer_ = backend.alloc_buffer(total);
    } catch (const Error& e) {
        throw Error(format("KV cache of %lld tokens x %d sequences (%.1f MiB) on '%s': %s (try a smaller --ctx, "
                           "fewer sequences or --cache-type q8_0)",
                           (long long)n_ctx, n_seq, double(total) / 1048576.0, backend.name().c_str(), e.what()),
                    e.status());
    }
    char* base = static_cast<char*>(buffer_->base());
    for (size_t il = 0; il < layers_.size(); ++il) {
        const LayerCache& l = layers_[il];
        const int64_t slots = cells(int(il));
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

const KVCache::SeqState& KVCache::state(int seq) const {
    TESSERA_CHECK(seq >= 0 && seq < n_seq(), "sequence %d is not in [0, %d)", seq, n_seq());
    return seqs_[size_t(seq)];
}
KVCache::SeqState& KVCache::state(int seq) {
    return const_cast<SeqState&>(static_cast<const KVCache*>(this)->state(seq));
}

void KVCache::append(int seq, int64_t n) {
    SeqState& st = state(seq);
    TESSERA_CHECK(n >= 0, "cannot append %lld tokens", (long long)n);
    TESSERA_CHECK_AS(ContextFull, st.used + n <= n_ctx_,
                  "context full: %lld tokens in the cache + %lld new exceed the context size %lld "
                  "(start a new session, truncate it, or use a larger --ctx)",
                  (long long)st.used, (long long)n, (long long)n_ctx_);
    st.used += n;
    st.high_water = std::max(st.high_water, st.used);
}

void KVCache::truncate(int seq, int64_t n_keep) {
    SeqState& st = state(seq);
    TESSERA_CHECK(n_keep >= 0 && n_keep <= st.used, "cannot keep %lld tokens: the cache holds %lld",
                  (long long)n_keep, (long long)st.used);
    st.used = n_keep;  // stale rows beyond are never attended (their cell position is -1) and get overwritten
    if (st.used == 0) st.high_water = 0;
}

void KVCache::copy_seq(int src, int dst) {
    const SeqState from = state(src);
    state(dst);  // checks dst
    if (src == dst) return;
    std::vector<char> rows;
    auto copy_rows = [&](Tensor* t, int il) {
        if (!t) return;
        // A linear layer: the rows of the held positions. A ring: all of it (which rows hold what depends
        // on the positions written since the sequence was empty, and the high water mark goes along).
        const int64_t n = ring_[size_t(il)] > 0 ? ring_[size_t(il)] : from.used;
        const size_t bytes = size_t(n) * t->nb[1];
        if (bytes == 0) return;
        rows.resize(bytes);
        backend_.get_tensor(*t, rows.data(), size_t(cell(il, src, 0)) * t->nb[1], bytes);
        backend_.set_tensor(*t, rows.data(), size_t(cell(il, dst, 0)) * t->nb[1], bytes);
    };
    for (int il = 0; il < n_layer(); ++il) {
        copy_rows(k_[size_t(il)], il);
        copy_rows(v_[size_t(il)], il);
    }
    seqs_[size_t(dst)] = from;
}

int64_t KVCache::cell(int il, int seq, int64_t pos) const {
    const int64_t ring = ring_[size_t(il)];
    return int64_t(seq) * seq_cells(il) + (ring > 0 ? pos % ring : pos);
}

void KVCache::cell_info(int64_t ring, int64_t span, int32_t* pos, int32_t* seq) const {
    for (int s = 0; s < n_seq(); ++s) {
        const SeqState& st = seqs_[size_t(s)];
        if (ring == 0) {
            for (int64_t c = 0; c < span; ++c) {
                const bool held = c < st.used;
                pos[int64_t(s) * n_ctx_ + c] = held ? int32_t(c) : -1;
                seq[int64_t(s) * n_ctx_ + c] = held ? s : -1;
            }
            continue;
        }
        // Cell c holds the latest position p < used with p % ring == c, unless a later position (up to the
        // highest ever written, before a truncate) overwrote it: then the cell is empty. After truncating a
        // ring further back than its slack, window layers see fewer old keys, never wrong ones.
        for (int64_t c = 0; c < ring; ++c) {
            const int64_t last = st.used - 1;
            const int64_t p = last < c ? -1 : c + (last - c) / ring * ring;
            const bool held = p >= 0 && p + ring >= st.high_water;
            pos[int64_t(s) * ring + c] = held ? int32_t(p) : -1;
            seq[int64_t(s) * ring + c] = held ? s : -1;
        }
    }
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

size_t KVCache::total_bytes() const { return linear_bytes() + ring_bytes(); }

size_t KVCache::linear_bytes() const {
    size_t bytes = 0;
    for (size_t il = 0; il < layers_.size(); ++il)
        if (ring_[il] == 0)
            bytes += (row_bytes(type_, layers_[il].k_width) + row_bytes(type_, layers_[il].v_width)) * size_t(cells(int(il)));
    return bytes;
}

size_t KVCache::ring_bytes() const {
    size_t bytes = 0;
    for (size_t il = 0; il < layers_.size(); ++il)
        if (ring_[il] > 0)
            bytes += (row_bytes(type_, layers_[il].k_width) + row_bytes(type_, layers_[il].v_width)) * size_t(cells(int(il)));
    return bytes;
}

}  // namespace tessera
