#include "models/session.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace tessera {

namespace {

// Attention reads the cache up to a multiple of this many slots, so one decode graph serves this
// many steps before the next is built, and short contexts do not scan the whole cache.
constexpr int64_t kSpanQuantum = 256;
// Graphs kept; prefill chunks of varied shape would otherwise pile up.
constexpr size_t kMaxGraphs = 16;

}  // namespace

Session::Session(const Model& model, const SessionOptions& options) : model_(model), options_(options) {
    const HParams& hp = model.hparams();
    if (options_.n_ctx <= 0) options_.n_ctx = hp.n_ctx_train > 0 ? hp.n_ctx_train : 2048;
    TESSERA_CHECK(options_.n_batch >= 1, "batch size %lld must be >= 1", (long long)options_.n_batch);
    options_.n_batch = std::min(options_.n_batch, options_.n_ctx);
    BackendOptions bo;
    bo.threads = options_.n_threads;
    // A model with only some layers on the GPU runs on the split backend: each node where its weights are.
    const bool split = model.weights_split() && options_.backend == model.weights_backend();
    backend_ = create_backend(split ? options_.backend + "+cpu" : options_.backend, bo);
    // The weights were placed at open for one kind of backend: the mapping for host backends, device
    // memory for a device backend. A session cannot compute on the other kind.
    if (backend_->is_host())
        TESSERA_CHECK(model.weights_on_host(),
                      "backend '%s': the model's weights were uploaded to '%s'; open the model for a host backend",
                      options_.backend.c_str(), model.weights_backend().c_str());
    else
        TESSERA_CHECK(model.weights_backend() == options_.backend,
                      "backend '%s': the model's weights are on '%s'; open the model with backend '%s' too",
                      options_.backend.c_str(), model.weights_backend().c_str(), options_.backend.c_str());
    cache_ = std::make_unique<KVCache>(model.arch().cache_layout(hp), options_.cache_type, options_.n_ctx, *backend_,
                                       options_.n_batch);
}

int64_t Session::kv_span_for(int64_t used_after) const {
    return std::min(cache_->n_ctx(), (used_after + kSpanQuantum - 1) / kSpanQuantum * kSpanQuantum);
}

Session::BuiltGraph& Session::graph_for(int64_t n_tokens, int64_t kv_span) {
    const Key key{n_tokens, kv_span, options_.logits_all};
    auto it = graphs_.find(key);
    if (it != graphs_.end()) return *it->second;
    if (graphs_.size() >= kMaxGraphs) graphs_.clear();

    auto g = std::make_unique<BuiltGraph>();
    g->batch = std::make_unique<BatchGraph>(g->ctx, g->graph, *cache_, n_tokens, kv_span, options_.logits_all);
    BatchGraph& b = *g->batch;
    g->logits = model_.arch().build(b);
    TESSERA_CHECK(g->logits->type == DType::F32 && g->logits->ne[0] == model_.hparams().n_vocab,
                  "%s: graph output %s is not [n_vocab, rows]", model_.hparams().arch.c_str(),
                  g->logits->shape_str().c_str());
    g->logits->flags |= kFlagOutput;
    g->graph.expand(g->logits);

    // Inputs get storage of their own; intermediates are planned into one buffer.
    std::vector<Tensor*> inputs = {b.tokens, b.positions, b.kv_positions};
    for (const auto& r : b.ring_positions) inputs.push_back(r.positions);
    size_t bytes = 0;
    for (Tensor* t : inputs) bytes += (t->nbytes() + 63) / 64 * 64;
    g->inputs = backend_->alloc_buffer(bytes);
    size_t off = 0;
    for (Tensor* t : inputs) {
        t->buffer = g->inputs.get();
        t->data = static_cast<char*>(g->inputs->base()) + off;
        off += (t->nbytes() + 63) / 64 * 64;
    }
    g->compute = allocate_graph(g->graph, *backend_);
    ++graphs_built_;
    return *graphs_.emplace(key, std::move(g)).first->second;
}

void Session::run_chunk(const int32_t* tokens, int64_t n) {
    const int64_t start = cache_->used();
    const int64_t span = kv_span_for(start + n);
    BuiltGraph& g = graph_for(n, span);
    BatchGraph& b = *g.batch;

    // Point the cache writes at this batch's slots, then re-derive every view's address.
    for (const auto& sv : b.slot_views)
        sv.view->view_offset = size_t(sv.ring > 0 ? start % sv.ring : start) * sv.slot_bytes;
    resolve_views(g.graph);

    cache_->append(n);
    scratch_.resize(size_t(std::max(n, span)));
    backend_->set_tensor(*b.tokens, tokens, 0, size_t(n) * 4);
    for (int64_t i = 0; i < n; ++i) scratch_[size_t(i)] = int32_t(start + i);
    backend_->set_tensor(*b.positions, scratch_.data(), 0, size_t(n) * 4);
    cache_->slot_positions(span, scratch_.data());
    backend_->set_tensor(*b.kv_positions, scratch_.data(), 0, size_t(span) * 4);
    for (const auto& r : b.ring_positions) {
        scratch_.resize(std::max(scratch_.size(), size_t(r.ring)));
        cache_->ring_positions(r.ring, scratch_.data());
        backend_->set_tensor(*r.positions, scratch_.data(), 0, size_t(r.ring) * 4);
    }

    backend_->compute(g.graph);

    const int64_t rows = g.logits->ne[1];
    const size_t row_floats = size_t(model_.hparams().n_vocab);
    const size_t at = options_.logits_all ? logits_.size() : 0;
    logits_.resize(at + size_t(rows) * row_floats);
    backend_->get_tensor(*g.logits, logits_.data() + at, 0, size_t(rows) * row_floats * 4);
    n_rows_ = int64_t(logits_.size() / row_floats);
}

void Session::decode(const int32_t* tokens, int64_t n) {
    TESSERA_CHECK(n >= 1, "decode: no tokens");
    TESSERA_CHECK(tokens != nullptr, "decode: tokens is null");
    const int64_t n_vocab = model_.hparams().n_vocab;
    for (int64_t i = 0; i < n; ++i)
        TESSERA_CHECK(tokens[i] >= 0 && tokens[i] < n_vocab, "decode: token %d at index %lld is not in [0, %lld)",
                      tokens[i], (long long)i, (long long)n_vocab);
    const int64_t start = cache_->used();
    TESSERA_CHECK(start + n <= cache_->n_ctx(),
                  "context full: %lld tokens in the cache + %lld new exceed the context size %lld "
                  "(start a new session, truncate it, or use a larger --ctx)",
                  (long long)start, (long long)n, (long long)cache_->n_ctx());
    logits_.clear();
    n_rows_ = 0;
    try {
        for (int64_t done = 0; done < n;) {
            // A chunk never runs past a ring cache's end (the rings hold window + n_batch - 1 slots).
            const int64_t chunk = std::min({options_.n_batch, n - done, cache_->max_batch_at(start + done)});
            run_chunk(tokens + done, chunk);
            done += chunk;
        }
    } catch (...) {
        cache_->truncate(start);
        logits_.clear();
        n_rows_ = 0;
        throw;
    }
}

const float* Session::logits(int64_t row) const {
    TESSERA_CHECK(row >= 0 && row < n_rows_, "logits row %lld is not in [0, %lld)", (long long)row,
                  (long long)n_rows_);
    return logits_.data() + size_t(row) * size_t(model_.hparams().n_vocab);
}

}  // namespace tessera
