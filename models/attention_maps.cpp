#include "models/attention_maps.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace tessera {

std::vector<double> AttentionRecord::probabilities(int64_t head, int64_t i) const {
    TESSERA_CHECK(head >= 0 && head < n_head && i >= 0 && i < n_query, "attention map: head %lld row %lld out of range",
                  (long long)head, (long long)i);
    const int64_t kv_head = head / (n_head / n_kv_head);
    const float* query = q.data() + size_t((i * n_head + head) * d_k);
    const int64_t qp = q_pos[size_t(i)];
    std::vector<double> p(size_t(n_cell), 0.0);
    double best = -std::numeric_limits<double>::infinity();
    std::vector<bool> seen(size_t(n_cell), false);
    for (int64_t j = 0; j < n_cell; ++j) {
        const int64_t kp = k_pos[size_t(j)];
        // core/ops.h's visibility rule: a filled cell, not in the future, not slid out of the window
        if (kp < 0 || (spec.causal && kp > qp) || (spec.window > 0 && qp - kp >= spec.window)) continue;
        const float* key = k.data() + size_t((j * n_kv_head + kv_head) * d_k);
        double dot = 0;
        for (int64_t c = 0; c < d_k; ++c) dot += double(query[c]) * double(key[c]);
        double s = dot * double(spec.scale);
        if (spec.softcap > 0) s = double(spec.softcap) * std::tanh(s / double(spec.softcap));
        p[size_t(j)] = s;
        seen[size_t(j)] = true;
        best = std::max(best, s);
    }
    if (best == -std::numeric_limits<double>::infinity()) return p;  // sees nothing: zeros
    // A sink joins the denominator as the op does (core/ops.h), with no cell of its own.
    const double sink = sinks.empty() ? 0.0 : double(sinks[size_t(head)]);
    if (!sinks.empty()) best = std::max(best, sink);
    double sum = sinks.empty() ? 0.0 : std::exp(sink - best);
    for (int64_t j = 0; j < n_cell; ++j) {
        if (!seen[size_t(j)]) continue;
        p[size_t(j)] = std::exp(p[size_t(j)] - best);
        sum += p[size_t(j)];
    }
    for (double& x : p) x /= sum;
    return p;
}

AttentionMap attention_map(const std::vector<std::vector<AttentionRecord>>& chunks, int64_t layer, int64_t head) {
    TESSERA_CHECK(!chunks.empty() && !chunks[0].empty(),
                  "attention map: nothing captured (the session needs capture_attention, then a decode)");
    const int64_t n_layer = int64_t(chunks[0].size());
    TESSERA_CHECK(layer >= 0 && layer < n_layer, "attention map: layer %lld is not in [0, %lld)", (long long)layer,
                  (long long)n_layer);
    const int64_t n_head = chunks[0][size_t(layer)].n_head;
    TESSERA_CHECK(head >= 0 && head < n_head, "attention map: head %lld is not in [0, %lld)", (long long)head,
                  (long long)n_head);
    AttentionMap map;
    map.first_query = std::numeric_limits<int64_t>::max();
    int64_t last_query = -1;
    for (const auto& chunk : chunks) {
        const AttentionRecord& r = chunk[size_t(layer)];
        for (int64_t i = 0; i < r.n_query; ++i) {
            map.first_query = std::min<int64_t>(map.first_query, r.q_pos[size_t(i)]);
            last_query = std::max<int64_t>(last_query, r.q_pos[size_t(i)]);
        }
        for (int32_t kp : r.k_pos) map.n_key = std::max<int64_t>(map.n_key, int64_t(kp) + 1);
    }
    map.n_query = last_query - map.first_query + 1;
    map.probs.assign(size_t(map.n_query * map.n_key), 0.0f);
    for (const auto& chunk : chunks) {
        const AttentionRecord& r = chunk[size_t(layer)];
        for (int64_t i = 0; i < r.n_query; ++i) {
            const std::vector<double> p = r.probabilities(head, i);
            float* row = map.probs.data() + size_t((r.q_pos[size_t(i)] - map.first_query) * map.n_key);
            for (int64_t j = 0; j < r.n_cell; ++j)
                if (r.k_pos[size_t(j)] >= 0) row[r.k_pos[size_t(j)]] += float(p[size_t(j)]);
        }
    }
    return map;
}

}  // namespace tessera
