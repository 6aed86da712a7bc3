// The reference attention: the oracle the fast kernels are tested against.
// It does the obvious thing: for every (query, head) it materializes the whole
// row of scores in double precision, applies the softcap, masks invisible
// keys (by position, window and, with several sequences in the batch, sequence), takes the softmax (with the head's sink logit in its denominator
// when the op has sinks) and the weighted sum of V rows. K and V rows are
// dequantized once per KV head with the type's own to_float, so the cache
// type's rounding is the same one every backend sees. Contract: core/ops.h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/reference/reference_ops.h"
#include "core/error.h"
#include "core/ops.h"

namespace tessera::ref {

namespace {

// Key position kp is visible to a query at position qp (core/ops.h's rule, verbatim).
bool visible(int64_t qp, int64_t kp, bool causal, int64_t window) {
    if (kp < 0) return false;                      // empty cache slot
    if (causal && kp > qp) return false;           // the future
    if (window > 0 && qp - kp >= window) return false;  // slid out of the window
    return true;
}

// All n_kv rows of one KV head of k or v as floats, row j at [j * ne0].
std::vector<float> dequantize_head(const Tensor& t, int64_t head) {
    const TypeTraits& tr = type_traits(t.type);
    TESSERA_CHECK(tr.to_float != nullptr, "attention: no float conversion for %s", tr.name);
    const int64_t d = t.ne[0], n = t.ne[2];
    std::vector<float> rows(size_t(d * n));
    for (int64_t j = 0; j < n; ++j) tr.to_float(t.at(0, head, j), rows.data() + j * d, d);
    return rows;
}

}  // namespace

void attention(Tensor* dst) {
    const Tensor& q = *dst->src[0];
    const Tensor& k = *dst->src[1];
    const Tensor& v = *dst->src[2];
    const Tensor& q_pos = *dst->src[3];
    const Tensor& k_pos = *dst->src[4];
    TESSERA_CHECK(q.type == DType::F32 && q_pos.type == DType::I32 && k_pos.type == DType::I32,
                  "attention '%s': q must be f32 and positions i32", dst->name.c_str());
    TESSERA_CHECK(dst->type == DType::F32 && dst->is_contiguous(), "attention '%s': output must be contiguous f32",
                  dst->name.c_str());

    const AttentionSpec spec = attention_spec(*dst);
    const double scale = spec.scale;
    const double softcap = spec.softcap;
    const int64_t window = spec.window;
    const bool causal = spec.causal;
    const Tensor* sinks = spec.sinks;  // F32 [n_head] or null
    // several sequences: a query sees only the cells of its own sequence
    const int32_t* q_seq = spec.q_seq ? spec.q_seq->data_as<const int32_t>() : nullptr;
    const int32_t* k_seq = spec.k_seq ? spec.k_seq->data_as<const int32_t>() : nullptr;
    TESSERA_CHECK(!q_seq == !k_seq, "attention '%s': q_seq and k_seq go together", dst->name.c_str());

    const int64_t d_k = q.ne[0], n_head = q.ne[1], n_q = q.ne[2];
    const int64_t d_v = v.ne[0], n_kv_head = k.ne[1], n_kv = k.ne[2];
    const int64_t group = n_head / n_kv_head;
    const int32_t* qp = q_pos.data_as<const int32_t>();
    const int32_t* kp = k_pos.data_as<const int32_t>();

    std::vector<double> scores(static_cast<size_t>(n_kv));
    std::vector<double> acc(static_cast<size_t>(d_v));
    std::vector<double> query(static_cast<size_t>(d_k));
    for (int64_t kvh = 0; kvh < n_kv_head; ++kvh) {
        const std::vector<float> keys = dequantize_head(k, kvh);
        const std::vector<float> values = dequantize_head(v, kvh);
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
            for (int64_t i = 0; i < n_q; ++i) {
                for (int64_t c = 0; c < d_k; ++c) query[size_t(c)] = *reinterpret_cast<const float*>(q.at(c, h, i));
                // scores of every key; invisible ones are -inf and drop out of the softmax
                double best = -std::numeric_limits<double>::infinity();
                for (int64_t j = 0; j < n_kv; ++j) {
                    if (!visible(qp[i], kp[j], causal, window) || (q_seq && k_seq[j] != q_seq[i])) {
                        scores[size_t(j)] = -std::numeric_limits<double>::infinity();
                        continue;
                    }
                    double dot = 0;
                    for (int64_t c = 0; c < d_k; ++c)
                        dot += query[size_t(c)] * keys[size_t(j * d_k + c)];
                    double s = dot * scale;
                    if (softcap > 0) s = softcap * std::tanh(s / softcap);
                    scores[size_t(j)] = s;
                    best = std::max(best, s);
                }
                float* out = reinterpret_cast<float*>(dst->at(0, h, i));
                if (best == -std::numeric_limits<double>::infinity()) {  // no visible key: zeros by contract
                    for (int64_t c = 0; c < d_v; ++c) out[c] = 0.0f;
                    continue;
                }
                // A sink joins the denominator (and the max that keeps the exponentials in range), not the sum of values.
                const double sink = sinks ? double(sinks->data_as<const float>()[h]) : 0.0;
                if (sinks) best = std::max(best, sink);
                double sum = sinks ? std::exp(sink - best) : 0.0;
                std::fill(acc.begin(), acc.end(), 0.0);
                for (int64_t j = 0; j < n_kv; ++j) {
                    if (scores[size_t(j)] == -std::numeric_limits<double>::infinity()) continue;
                    const double p = std::exp(scores[size_t(j)] - best);
                    sum += p;
                    for (int64_t c = 0; c < d_v; ++c) acc[size_t(c)] += p * values[size_t(j * d_v + c)];
                }
                for (int64_t c = 0; c < d_v; ++c) out[c] = float(acc[size_t(c)] / sum);
            }
        }
    }
}

}  // namespace tessera::ref
