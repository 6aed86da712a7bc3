// A session: one conversation's state over a model: a backend, the KV cache,
// the graphs built so far (one per batch shape, re-used), and the last logits.
// It splits what it is asked to decode into chunks and picks (or builds) the
// graph for each; the graph itself owns its inputs (models/batch_graph.h).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/backend.h"
#include "models/attention_maps.h"
#include "models/batch_graph.h"
#include "models/kv_cache.h"
#include "models/model.h"

namespace tessera {

struct SessionOptions {
    int64_t n_ctx = 0;      // 0 = the model's training context
    int n_threads = 0;      // 0 = physical cores
    int64_t n_batch = 512;  // prefill chunk size
    DType cache_type = DType::F16;
    std::string backend = "cpu";
    bool logits_all = false;  // keep logits for every token of decode() (eval), else only the last
    bool capture_attention = false;  // keep each attention layer's inputs of the last decode() (attention_maps)
};

class Session {
public:
    Session(const Model& model, const SessionOptions& options);

    // Appends tokens at the next positions, in chunks of n_batch. Afterwards logits() holds the
    // rows of this call (every token with logits_all, else the last). On error the cache is
    // left as it was before the call.
    void decode(const int32_t* tokens, int64_t n);
    const float* logits(int64_t row) const;  // row in [0, n_logit_rows())
    int64_t n_logit_rows() const { return n_rows_; }
    int64_t n_vocab() const { return model_.hparams().n_vocab; }

    int64_t n_past() const { return cache_->used(); }
    int64_t n_ctx() const { return cache_->n_ctx(); }
    void truncate(int64_t n_keep) { cache_->truncate(n_keep); }
    const KVCache& cache() const { return *cache_; }
    const SessionOptions& options() const { return options_; }
    Backend& backend() { return *backend_; }

    // With capture_attention: the attention inputs of the last decode() call, [chunk][layer].
    const std::vector<std::vector<AttentionRecord>>& attention_records() const { return attention_; }

    // How many graphs were built (the rest of the steps re-used one): for tests and figures.
    int graphs_built() const { return graphs_built_; }

private:
    using Key = std::tuple<int64_t, int64_t, bool>;  // n_tokens, kv_span, logits_all

    BatchGraph& graph_for(int64_t n_tokens, int64_t kv_span);
    void run_chunk(const int32_t* tokens, int64_t n);
    int64_t kv_span_for(int64_t used_after) const;

    const Model& model_;
    SessionOptions options_;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<KVCache> cache_;
    std::map<Key, std::unique_ptr<BatchGraph>> graphs_;
    int graphs_built_ = 0;
    std::vector<float> logits_;
    int64_t n_rows_ = 0;
    std::vector<std::vector<AttentionRecord>> attention_;

    void read_attention_taps(const BatchGraph& g);
};

}  // namespace tessera
