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
    TESSERA_CHECK(options_.n_seq >= 1, "sequence count %d must be >= 1", options_.n_seq);
    TESSERA_CHECK(!(options_.capture_attention && options_.n_seq > 1),
                  "attention maps are kept for sessions of one sequence only (this one has %d)", options_.n_seq);
    cache_ = std::make_unique<KVCache>(model.arch().cache_layout(hp), options_.cache_type, options_.n_ctx, *backend_,
                                       options_.n_batch, options_.n_seq);
}

int64_t Session::kv_span_for(int64_t used_after) const {
    return std::min(cache_->n_ctx(), (used_after + kSpanQuantum - 1) / kSpanQuantum * kSpanQuantum);
}

BatchGraph& Session::graph_for(int64_t n_tokens, int64_t kv_span, int64_t n_outputs) {
    const Key key{n_tokens, kv_span, n_outputs};
    auto it = graphs_.find(key);
    if (it != graphs_.end()) {
        it->second.last_use = ++graph_uses_;
        return *it->second.graph;
    }
    // Full: the least recently used graph goes, so the shapes in steady use (a server's decode steps
    // beside prompt chunks of every length) are not rebuilt because a new shape came by.
    if (graphs_.size() >= kMaxGraphs)
        graphs_.erase(std::min_element(graphs_.begin(), graphs_.end(), [](const auto& a, const auto& b) {
            return a.second.last_use < b.second.last_use;
        }));

    auto g = std::make_unique<BatchGraph>(*cache_, n_tokens, kv_span, n_outputs);
    Tensor* logits = model_.arch().build(*g);
    TESSERA_CHECK(logits->type == DType::F32 && logits->ne[0] == model_.hparams().n_vocab,
                  "%s: graph output %s is not [n_vocab, rows]", model_.hparams().arch.c_str(),
                  logits->shape_str().c_str());
    if (options_.capture_attention) g->capture_attention();
    g->allocate(logits, *backend_);
    ++graphs_built_;
    return *graphs_.emplace(key, CachedGraph{std::move(g), ++graph_uses_}).first->second.graph;
}

void Session::run_chunk(const int32_t* tokens, const int32_t* seqs, const uint8_t* want, int64_t n) {
    // Each token's position: its sequence's next one, counting the tokens of that sequence before it.
    chunk_pos_.resize(size_t(n));
    chunk_rows_.clear();
    seq_count_.assign(size_t(n_seq()), 0);
    for (int64_t i = 0; i < n; ++i) {
        const int32_t s = seqs[i];
        chunk_pos_[size_t(i)] = int32_t(cache_->used(s) + seq_count_[size_t(s)]++);
        if (want[i]) chunk_rows_.push_back(int32_t(i));
    }
    // A chunk with no logits wanted still computes one row (the graphs of both kinds of chunk are then the
    // same shape); it is not kept.
    const bool keep = !chunk_rows_.empty();
    if (!keep) chunk_rows_.push_back(int32_t(n - 1));
    const int64_t n_out = int64_t(chunk_rows_.size());
    const int64_t span = n_seq() > 1 ? cache_->n_ctx() : kv_span_for(cache_->used(0) + n);
    BatchGraph& g = graph_for(n, span, n_out);
    for (int s = 0; s < n_seq(); ++s) cache_->append(s, seq_count_[size_t(s)]);
    g.bind(*backend_, tokens, chunk_pos_.data(), seqs, n_out < n ? chunk_rows_.data() : nullptr);
    backend_->compute(g.graph);

    if (options_.capture_attention) read_attention_taps(g);
    if (!keep) return;
    const Tensor& out = *g.output();
    const size_t row_floats = size_t(model_.hparams().n_vocab);
    const size_t at = logits_.size();
    logits_.resize(at + size_t(n_out) * row_floats);
    backend_->get_tensor(out, logits_.data() + at, 0, size_t(n_out) * row_floats * 4);
    for (int32_t r : chunk_rows_) logit_seqs_.push_back(seqs[r]);
    n_rows_ = int64_t(logits_.size() / row_floats);
}

void Session::read_attention_taps(const BatchGraph& g) {
    auto read = [&](const Tensor* t, auto& out) {
        out.resize(size_t(t->nelements()));
        backend_->get_tensor(*t, out.data(), 0, out.size() * 4);
    };
    std::vector<AttentionRecord>& chunk = attention_.emplace_back();
    for (const BatchGraph::AttentionTap& tap : g.attention_taps()) {
        AttentionRecord& r = chunk.emplace_back();
        r.spec = attention_spec(*tap.node);
        r.d_k = tap.q->ne[0];
        r.n_head = tap.q->ne[1];
        r.n_query = tap.q->ne[2];
        r.n_kv_head = tap.k->ne[1];
        r.n_cell = tap.k->ne[2];
        r.d_v = tap.v->ne[0];
        read(tap.q, r.q);
        read(tap.k, r.k);
        read(tap.v, r.v);
        read(tap.out, r.out);
        read(tap.q_pos, r.q_pos);
        read(tap.k_pos, r.k_pos);
        if (const Tensor* sinks = attention_spec(*tap.node).sinks) read(sinks, r.sinks);
    }
}

void Session::decode(const int32_t* tokens, int64_t n) {
    TESSERA_CHECK(n >= 1, "decode: no tokens");
    TESSERA_CHECK(tokens != nullptr, "decode: tokens is null");
    std::vector<int32_t> seqs(size_t(n), 0);
    std::vector<uint8_t> want(size_t(n), options_.logits_all ? 1 : 0);
    want.back() = 1;
    decode_batch(tokens, seqs.data(), want.data(), n);
}

void Session::decode_batch(const int32_t* tokens, const int32_t* seqs, const uint8_t* want_logits, int64_t n) {
    TESSERA_CHECK(n >= 1, "decode: no tokens");
    TESSERA_CHECK(tokens != nullptr && seqs != nullptr, "decode: tokens or sequence ids are null");
    const int64_t n_vocab = model_.hparams().n_vocab;
    std::vector<int64_t> adding(static_cast<size_t>(n_seq()), 0);
    for (int64_t i = 0; i < n; ++i) {
        TESSERA_CHECK(tokens[i] >= 0 && tokens[i] < n_vocab, "decode: token %d at index %lld is not in [0, %lld)",
                      tokens[i], (long long)i, (long long)n_vocab);
        TESSERA_CHECK(seqs[i] >= 0 && seqs[i] < n_seq(), "decode: sequence %d at index %lld is not in [0, %d)",
                      seqs[i], (long long)i, n_seq());
        ++adding[size_t(seqs[i])];
    }
    std::vector<int64_t> start(static_cast<size_t>(n_seq()));
    for (int s = 0; s < n_seq(); ++s) {
        start[size_t(s)] = cache_->used(s);
        TESSERA_CHECK_AS(ContextFull, start[size_t(s)] + adding[size_t(s)] <= cache_->n_ctx(),
                         "context full: %lld tokens in the cache + %lld new exceed the context size %lld%s "
                         "(start a new session, truncate it, or use a larger --ctx)",
                         (long long)start[size_t(s)], (long long)adding[size_t(s)], (long long)cache_->n_ctx(),
                         n_seq() > 1 ? format(" (sequence %d)", s).c_str() : "");
    }
    // Which tokens want logits: as asked; by default the last of each sequence (every one with logits_all).
    std::vector<uint8_t> want(size_t(n), 0);
    if (want_logits) {
        std::copy(want_logits, want_logits + n, want.begin());
    } else if (options_.logits_all) {
        std::fill(want.begin(), want.end(), 1);
    } else {
        std::vector<bool> seen(size_t(n_seq()), false);
        for (int64_t i = n - 1; i >= 0; --i)
            if (!seen[size_t(seqs[i])]) want[size_t(i)] = 1, seen[size_t(seqs[i])] = true;
    }
    logits_.clear();
    logit_seqs_.clear();
    n_rows_ = 0;
    attention_.clear();
    try {
        for (int64_t done = 0; done < n;) {
            int64_t chunk = std::min(options_.n_batch, n - done);
            // One sequence: a chunk never runs past a ring cache's end (the rings hold window + n_batch - 1
            // cells), which keeps the chunks of a long prompt the same as they always were.
            if (n_seq() == 1) chunk = std::min(chunk, cache_->max_batch_at(cache_->used(0)));
            run_chunk(tokens + done, seqs + done, want.data() + done, chunk);
            done += chunk;
        }
    } catch (...) {
        for (int s = 0; s < n_seq(); ++s) cache_->truncate(s, start[size_t(s)]);
        logits_.clear();
        logit_seqs_.clear();
        n_rows_ = 0;
        attention_.clear();
        throw;
    }
}

int32_t Session::logit_seq(int64_t row) const {
    TESSERA_CHECK(row >= 0 && row < n_rows_, "logits row %lld is not in [0, %lld)", (long long)row,
                  (long long)n_rows_);
    return logit_seqs_[size_t(row)];
}

const float* Session::logits(int64_t row) const {
    TESSERA_CHECK(row >= 0 && row < n_rows_, "logits row %lld is not in [0, %lld)", (long long)row,
                  (long long)n_rows_);
    return logits_.data() + size_t(row) * size_t(model_.hparams().n_vocab);
}

}  // namespace tessera
