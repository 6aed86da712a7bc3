#include "models/batch_graph.h"

#include <algorithm>

#include "core/error.h"
#include "core/ops.h"

namespace tessera {

BatchGraph::BatchGraph(KVCache& cache, int64_t n_tokens_, int64_t kv_span_, bool logits_all_)
    : n_tokens(n_tokens_), kv_span(kv_span_), logits_all(logits_all_), cache_(cache) {
    tokens = ctx.new_tensor(DType::I32, {n_tokens}, "tokens");
    positions = ctx.new_tensor(DType::I32, {n_tokens}, "positions");
    kv_positions_ = ctx.new_tensor(DType::I32, {kv_span}, "kv_positions");
    for (Tensor* t : {tokens, positions, kv_positions_}) t->flags |= kFlagInput;
}

// ---- cache access for the architectures ----

void BatchGraph::store_kv(int layer, Tensor* k, Tensor* v) {
    const LayerCache& l = cache_.layer(layer);
    auto store = [&](Tensor* src, Tensor* dst, int64_t width, const char* what) {
        TESSERA_CHECK(src->nelements() == width * n_tokens, "layer %d: %s to store has %lld elements, expected %lld x %lld",
                      layer, what, (long long)src->nelements(), (long long)width, (long long)n_tokens);
        if (!src->is_contiguous()) src = cont(ctx, src);
        src = reshape_2d(ctx, src, width, n_tokens);
        const size_t slot_bytes = dst->nb[1];
        Tensor* slots = view_2d(ctx, dst, width, n_tokens, slot_bytes, 0);  // moved to the batch's slots by bind()
        slot_views_.push_back({slots, slot_bytes, cache_.ring_slots(layer)});
        graph.expand(cpy(ctx, src, slots));
    };
    store(k, cache_.k(layer), l.k_width, "K");
    if (l.v_width > 0) {
        TESSERA_CHECK(v != nullptr, "layer %d: V is null", layer);
        store(v, cache_.v(layer), l.v_width, "V");
    }
}

Tensor* BatchGraph::cache_k(int layer) {
    const LayerCache& l = cache_.layer(layer);
    Tensor* k = cache_.k(layer);
    const int64_t span = cache_.ring_slots(layer) > 0 ? cache_.ring_slots(layer) : kv_span;
    return view_3d(ctx, k, l.head_dim_k, l.k_width / l.head_dim_k, span, row_bytes(k->type, l.head_dim_k), k->nb[1], 0);
}

Tensor* BatchGraph::cache_v(int layer) {
    const LayerCache& l = cache_.layer(layer);
    if (l.kind == CacheKind::Latent) {
        // MLA: V is the first head_dim_v elements of each latent K row.
        Tensor* k = cache_.k(layer);
        return view_3d(ctx, k, l.head_dim_v, 1, kv_span, k->nb[1], k->nb[1], 0);
    }
    Tensor* v = cache_.v(layer);
    const int64_t span = cache_.ring_slots(layer) > 0 ? cache_.ring_slots(layer) : kv_span;
    return view_3d(ctx, v, l.head_dim_v, l.v_width / l.head_dim_v, span, row_bytes(v->type, l.head_dim_v), v->nb[1], 0);
}

Tensor* BatchGraph::cache_positions(int layer) {
    const int64_t ring = cache_.ring_slots(layer);
    if (ring == 0) return kv_positions_;
    for (const RingPositions& r : ring_positions_)
        if (r.ring == ring) return r.positions;
    Tensor* t = ctx.new_tensor(DType::I32, {ring}, "ring_positions." + std::to_string(ring));
    t->flags |= kFlagInput;
    ring_positions_.push_back({ring, t});
    return t;
}

Tensor* BatchGraph::select_output_rows(Tensor* x) {
    if (logits_all || n_tokens == 1) return x;
    return view_2d(ctx, x, x->ne[0], 1, x->nb[1], size_t(n_tokens - 1) * x->nb[1]);
}

// ---- storage and per-step inputs for the session ----

void BatchGraph::add_attention_taps() {
    const std::vector<Tensor*> nodes = graph.nodes();  // a copy: expand() below appends to the graph
    auto keep = [&](Tensor* t) {
        t->flags |= kFlagOutput;
        graph.expand(t);
        return t;
    };
    for (Tensor* node : nodes) {
        if (node->op != Op::Attention) continue;
        AttentionTap tap;
        tap.node = node;
        tap.q = keep(cast(ctx, node->src[0], DType::F32));
        tap.k = keep(cast(ctx, node->src[1], DType::F32));
        tap.v = keep(cast(ctx, node->src[2], DType::F32));
        tap.out = keep(node);
        tap.q_pos = keep(cont(ctx, node->src[3]));
        tap.k_pos = keep(cont(ctx, node->src[4]));
        taps_.push_back(tap);
    }
}

void BatchGraph::allocate(Tensor* output, Backend& backend) {
    output_ = output;
    output_->flags |= kFlagOutput;
    graph.expand(output_);
    if (capture_attention_) add_attention_taps();

    // Inputs get storage of their own; intermediates are planned into one buffer.
    std::vector<Tensor*> inputs = {tokens, positions, kv_positions_};
    for (const RingPositions& r : ring_positions_) inputs.push_back(r.positions);
    auto aligned = [](const Tensor* t) { return (t->nbytes() + 63) / 64 * 64; };
    size_t bytes = 0;
    for (Tensor* t : inputs) bytes += aligned(t);
    inputs_ = backend.alloc_buffer(bytes);
    size_t off = 0;
    for (Tensor* t : inputs) {
        t->buffer = inputs_.get();
        t->data = static_cast<char*>(inputs_->base()) + off;
        off += aligned(t);
    }
    compute_ = allocate_graph(graph, backend);
}

void BatchGraph::bind(Backend& backend, const int32_t* chunk_tokens, int64_t start) {
    // Point the cache writes at this batch's slots, then re-derive every view's address.
    for (const SlotView& sv : slot_views_)
        sv.view->view_offset = size_t(sv.ring > 0 ? start % sv.ring : start) * sv.slot_bytes;
    resolve_views(graph);

    const size_t n = size_t(n_tokens);
    scratch_.resize(std::max(n, size_t(kv_span)));
    backend.set_tensor(*tokens, chunk_tokens, 0, n * 4);
    for (size_t i = 0; i < n; ++i) scratch_[i] = int32_t(start + int64_t(i));
    backend.set_tensor(*positions, scratch_.data(), 0, n * 4);
    cache_.slot_positions(kv_span, scratch_.data());
    backend.set_tensor(*kv_positions_, scratch_.data(), 0, size_t(kv_span) * 4);
    for (const RingPositions& r : ring_positions_) {
        scratch_.resize(std::max(scratch_.size(), size_t(r.ring)));
        cache_.ring_positions(r.ring, scratch_.data());
        backend.set_tensor(*r.positions, scratch_.data(), 0, size_t(r.ring) * 4);
    }
}

}  // namespace tessera
