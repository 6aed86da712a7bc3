#include "models/batch_graph.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

BatchGraph::BatchGraph(KVCache& cache, int64_t n_tokens_, int64_t kv_span_, int64_t n_outputs_)
    : n_tokens(n_tokens_),
      kv_span(cache.n_seq() > 1 ? cache.n_ctx() : kv_span_),
      n_outputs(n_outputs_),
      multi_seq(cache.n_seq() > 1),
      cache_(cache) {
    TESSERA_CHECK(n_tokens >= 1 && n_outputs >= 1 && n_outputs <= n_tokens,
                  "batch of %lld tokens cannot have %lld outputs", (long long)n_tokens, (long long)n_outputs);
    TESSERA_CHECK(kv_span >= 1 && kv_span <= cache.n_ctx(), "kv span %lld is not in [1, %lld]", (long long)kv_span,
                  (long long)cache.n_ctx());
    tokens = ctx.new_tensor(DType::I32, {n_tokens}, "tokens");
    positions = ctx.new_tensor(DType::I32, {n_tokens}, "positions");
    tokens->flags |= kFlagInput;
    positions->flags |= kFlagInput;
    if (multi_seq) {
        token_seqs = ctx.new_tensor(DType::I32, {n_tokens}, "token_seqs");
        token_seqs->flags |= kFlagInput;
    }
    if (n_outputs < n_tokens) {
        out_rows_ = ctx.new_tensor(DType::I32, {n_outputs}, "out_rows");
        out_rows_->flags |= kFlagInput;
    }
}

// ---- cache access for the architectures ----

int64_t BatchGraph::read_cells(int layer) const {
    const int64_t ring = cache_.ring_slots(layer);
    if (ring > 0) return cache_.cells(layer);
    return multi_seq ? cache_.cells(layer) : kv_span;
}

BatchGraph::CellInputs& BatchGraph::cells_of(int layer) {
    const int64_t ring = cache_.ring_slots(layer);
    for (CellInputs& c : cell_inputs_)
        if (c.ring == ring) return c;
    const std::string kind = ring > 0 ? "ring" + std::to_string(ring) : "linear";
    CellInputs c{ring, nullptr, nullptr, nullptr};
    c.write_cells = ctx.new_tensor(DType::I32, {n_tokens}, "write_cells." + kind);
    c.positions = ctx.new_tensor(DType::I32, {read_cells(layer)}, "cell_positions." + kind);
    if (multi_seq) c.seqs = ctx.new_tensor(DType::I32, {read_cells(layer)}, "cell_seqs." + kind);
    for (Tensor* t : {c.write_cells, c.positions, c.seqs})
        if (t) t->flags |= kFlagInput;
    cell_inputs_.push_back(c);
    return cell_inputs_.back();
}

void BatchGraph::store_kv(int layer, Tensor* k, Tensor* v) {
    const LayerCache& l = cache_.layer(layer);
    Tensor* cells = cells_of(layer).write_cells;
    auto store = [&](Tensor* src, Tensor* dst, int64_t width, const char* what) {
        TESSERA_CHECK(src->nelements() == width * n_tokens, "layer %d: %s to store has %lld elements, expected %lld x %lld",
                      layer, what, (long long)src->nelements(), (long long)width, (long long)n_tokens);
        if (!src->is_contiguous()) src = cont(ctx, src);
        graph.expand(set_rows(ctx, reshape_2d(ctx, src, width, n_tokens), dst, cells));
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
    return view_3d(ctx, k, l.head_dim_k, l.k_width / l.head_dim_k, read_cells(layer), row_bytes(k->type, l.head_dim_k),
                   k->nb[1], 0);
}

Tensor* BatchGraph::cache_v(int layer) {
    const LayerCache& l = cache_.layer(layer);
    if (l.kind == CacheKind::Latent) {
        // MLA: V is the first head_dim_v elements of each latent K row.
        Tensor* k = cache_.k(layer);
        return view_3d(ctx, k, l.head_dim_v, 1, read_cells(layer), k->nb[1], k->nb[1], 0);
    }
    Tensor* v = cache_.v(layer);
    return view_3d(ctx, v, l.head_dim_v, l.v_width / l.head_dim_v, read_cells(layer), row_bytes(v->type, l.head_dim_v),
                   v->nb[1], 0);
}

Tensor* BatchGraph::cache_positions(int layer) { return cells_of(layer).positions; }
Tensor* BatchGraph::cache_seqs(int layer) { return cells_of(layer).seqs; }

Tensor* BatchGraph::attention(int layer, Tensor* q, AttentionSpec spec) {
    spec.q_seq = token_seqs;  // both null with one sequence: no sequence mask
    spec.k_seq = cache_seqs(layer);
    return tessera::attention(ctx, q, cache_k(layer), cache_v(layer), positions, cache_positions(layer), spec);
}

Tensor* BatchGraph::select_output_rows(Tensor* x) {
    if (n_outputs == n_tokens) return x;
    if (!x->is_contiguous()) x = cont(ctx, x);
    return get_rows(ctx, reshape_2d(ctx, x, x->ne[0], n_tokens), out_rows_);
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
    std::vector<Tensor*> inputs = {tokens, positions, token_seqs, out_rows_};
    for (const CellInputs& c : cell_inputs_) inputs.insert(inputs.end(), {c.write_cells, c.positions, c.seqs});
    inputs.erase(std::remove(inputs.begin(), inputs.end(), nullptr), inputs.end());
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

void BatchGraph::bind(Backend& backend, const int32_t* batch_tokens, const int32_t* batch_positions,
                      const int32_t* seqs, const int32_t* out_rows) {
    TESSERA_CHECK(seqs || !multi_seq, "bind: a batch over several sequences needs each token's sequence");
    TESSERA_CHECK(out_rows || n_outputs == n_tokens, "bind: which tokens want logits is missing");
    const size_t n = size_t(n_tokens);
    backend.set_tensor(*tokens, batch_tokens, 0, n * 4);
    backend.set_tensor(*positions, batch_positions, 0, n * 4);
    if (token_seqs) backend.set_tensor(*token_seqs, seqs, 0, n * 4);
    if (out_rows_) backend.set_tensor(*out_rows_, out_rows, 0, size_t(n_outputs) * 4);
    for (const CellInputs& c : cell_inputs_) {
        // The layer index only matters through its ring size: any layer of this kind answers cell().
        int layer = 0;
        while (cache_.ring_slots(layer) != c.ring) ++layer;
        scratch_.resize(n);
        for (size_t i = 0; i < n; ++i) scratch_[i] = int32_t(cache_.cell(layer, seqs ? seqs[i] : 0, batch_positions[i]));
        backend.set_tensor(*c.write_cells, scratch_.data(), 0, n * 4);
        const size_t cells = size_t(c.positions->ne[0]);
        scratch_.assign(cells, -1);
        scratch_seq_.assign(cells, -1);
        cache_.cell_info(c.ring, c.ring > 0 ? c.ring : kv_span, scratch_.data(), scratch_seq_.data());
        backend.set_tensor(*c.positions, scratch_.data(), 0, cells * 4);
        if (c.seqs) backend.set_tensor(*c.seqs, scratch_seq_.data(), 0, cells * 4);
    }
}

}  // namespace tessera
