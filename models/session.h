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
    int n_seq = 1;  // sequences the cache holds side by side (each with n_ctx positions): decode_batch
};

class Session {
public:
    Session(const Model& model, const SessionOptions& options);

    // Appends tokens to sequence 0 at its next positions, in chunks of n_batch. Afterwards logits() holds
    // the rows of this call (every token with logits_all, else the last). On error the cache is left as it
    // was before the call.
    void decode(const int32_t* tokens, int64_t n);
    // Several sequences in one forward pass: token i goes to sequence seqs[i] at that sequence's next
    // position (the tokens of one sequence in their order; sequences may interleave). Afterwards logits()
    // holds a row for each token with want_logits[i] != 0, in token order (want_logits null: the last
    // token of each sequence in the call; with logits_all: every token), and logit_seq(row) says whose.
    // Calls of more than n_batch tokens run in chunks. On error every sequence is left as it was.
    void decode_batch(const int32_t* tokens, const int32_t* seqs, const uint8_t* want_logits, int64_t n);
    const float* logits(int64_t row) const;  // row in [0, n_logit_rows())
    int64_t n_logit_rows() const { return n_rows_; }
    int32_t logit_seq(int64_t row) const;    // the sequence of a logits row
    int64_t n_vocab() const { return model_.hparams().n_vocab; }

    int n_seq() const { return cache_->n_seq(); }
    int64_t n_past(int seq = 0) const { return cache_->used(seq); }
    int64_t n_ctx() const { return cache_->n_ctx(); }  // positions per sequence
    void truncate(int64_t n_keep) { cache_->truncate(0, n_keep); }
    void truncate(int seq, int64_t n_keep) { cache_->truncate(seq, n_keep); }
    void clear_seq(int seq) { cache_->clear(seq); }
    void clear_all() { cache_->clear(); }
    // dst then holds the same tokens as src (a shared prompt prefix decoded once, then forked).
    void copy_seq(int src, int dst) { cache_->copy_seq(src, dst); }
    const KVCache& cache() const { return *cache_; }
    const SessionOptions& options() const { return options_; }
    Backend& backend() { return *backend_; }

    // With capture_attention: the attention inputs of the last decode() call, [chunk][layer].
    const std::vector<std::vector<AttentionRecord>>& attention_records() const { return attention_; }

    // How many graphs were built (the rest of the steps re-used one): for tests and figures.
    int graphs_built() const { return graphs_built_; }

private:
    using Key = std::tuple<int64_t, int64_t, int64_t>;  // n_tokens, kv_span, n_outputs

    BatchGraph& graph_for(int64_t n_tokens, int64_t kv_span, int64_t n_outputs);
    void run_chunk(const int32_t* tokens, const int32_t* seqs, const uint8_t* want, int64_t n);
    int64_t kv_span_for(int64_t used_after) const;

    const Model& model_;
    SessionOptions options_;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<KVCache> cache_;
    struct CachedGraph {
        std::unique_ptr<BatchGraph> graph;
        uint64_t last_use = 0;  // graph_uses_ when it was last picked: the least recent goes first
    };
    std::map<Key, CachedGraph> graphs_;
    uint64_t graph_uses_ = 0;
    int graphs_built_ = 0;
    std::vector<float> logits_;
    std::vector<int32_t> logit_seqs_;  // the sequence of each logits row
    int64_t n_rows_ = 0;
    // per-chunk staging: positions, output rows, tokens of each sequence seen so far
    std::vector<int32_t> chunk_pos_, chunk_rows_;
    std::vector<int64_t> seq_count_;
    std::vector<std::vector<AttentionRecord>> attention_;

    void read_attention_taps(const BatchGraph& g);
};

}  // namespace tessera
