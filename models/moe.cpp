#include "models/moe.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace tessera {

namespace {

// A leaf pointing into `base` at `*offset` (advanced past it, 64-byte aligned).
Tensor* place(Context& ctx, Buffer* buf, char* base, size_t* offset, std::initializer_list<int64_t> ne,
              const char* name) {
    Tensor* t = ctx.new_tensor(DType::F32, ne, name);
    t->flags |= kFlagWeight;
    t->buffer = buf;
    t->data = base + *offset;
    *offset += (t->nbytes() + 63) / 64 * 64;
    return t;
}

void fill_identity(Tensor* t, int64_t n) {
    float* d = t->data_as<float>();
    std::memset(d, 0, size_t(n * n) * sizeof(float));
    for (int64_t i = 0; i < n; ++i) d[i * n + i] = 1.0f;
}

bool grouped(const MoEConfig& cfg) { return cfg.n_group > 1; }

// Sums x [ne0, k, n] over dim 1 -> [ne0, n] by adding the k strided slices (k small: experts or groups used).
Tensor* sum_dim1(Context& ctx, Tensor* x) {
    const int64_t ne0 = x->ne[0], k = x->ne[1], n = x->ne[2];
    auto slice = [&](int64_t j) { return view_2d(ctx, x, ne0, n, x->nb[2], size_t(j) * x->nb[1]); };
    Tensor* acc = slice(0);
    if (k == 1) return cont(ctx, acc);
    for (int64_t j = 1; j < k; ++j) acc = add(ctx, acc, slice(j));
    return acc;
}

}  // namespace

void validate_moe_config(const MoEConfig& cfg, const std::string& where) {
    const char* w = where.c_str();
    TESSERA_CHECK(cfg.n_expert >= 1, "%s: expert_count %lld must be >= 1", w, (long long)cfg.n_expert);
    TESSERA_CHECK(cfg.n_expert_used >= 1 && cfg.n_expert_used <= cfg.n_expert,
                  "%s: expert_used_count %lld must be in 1..expert_count %lld", w, (long long)cfg.n_expert_used,
                  (long long)cfg.n_expert);
    TESSERA_CHECK_AS(Unsupported, cfg.gating == MoEGating::Softmax || cfg.gating == MoEGating::Sigmoid ||
                      cfg.gating == MoEGating::SoftmaxWeight,
                  "%s: expert_gating_func %d is not supported (1 softmax, 2 sigmoid, 3 softmax of the selected)", w,
                  int(cfg.gating));
    TESSERA_CHECK(cfg.swiglu_limit >= 0.0f && std::isfinite(cfg.swiglu_limit),
                  "%s: swiglu_limit %g must be >= 0", w, double(cfg.swiglu_limit));
    if (cfg.n_group > 1) {
        TESSERA_CHECK(cfg.n_expert % cfg.n_group == 0, "%s: expert_count %lld is not a multiple of expert_group_count %lld",
                      w, (long long)cfg.n_expert, (long long)cfg.n_group);
        TESSERA_CHECK(cfg.n_expert / cfg.n_group >= 2, "%s: expert groups need >= 2 experts each (%lld / %lld)", w,
                      (long long)cfg.n_expert, (long long)cfg.n_group);
        TESSERA_CHECK(cfg.n_group_used >= 1 && cfg.n_group_used <= cfg.n_group,
                      "%s: expert_group_used_count %lld must be in 1..expert_group_count %lld", w,
                      (long long)cfg.n_group_used, (long long)cfg.n_group);
        TESSERA_CHECK(cfg.n_group_used * (cfg.n_expert / cfg.n_group) >= cfg.n_expert_used,
                      "%s: %lld groups of %lld experts cannot supply expert_used_count %lld", w,
                      (long long)cfg.n_group_used, (long long)(cfg.n_expert / cfg.n_group),
                      (long long)cfg.n_expert_used);
    }
    TESSERA_CHECK(cfg.weights_scale >= 0.0f, "%s: expert_weights_scale %g must be >= 0", w, double(cfg.weights_scale));
}

MoERoutingTables::MoERoutingTables(const MoEConfig& cfg) {
    const int64_t ne = cfg.n_expert;
    const int64_t ng = grouped(cfg) ? cfg.n_group : 0;
    const int64_t pg = grouped(cfg) ? cfg.n_expert / cfg.n_group : 0;
    auto padded = [](size_t n) { return (n * sizeof(float) + 63) / 64 * 64; };
    buffer_ = std::make_unique<HostBuffer>(padded(size_t(ne * ne)) + padded(size_t(pg * pg)) +
                                           padded(size_t(ng * ng)) + padded(1));
    char* base = static_cast<char*>(buffer_->base());
    size_t off = 0;
    eye_expert = place(ctx_, buffer_.get(), base, &off, {ne, 1, ne}, "moe.eye_expert");
    fill_identity(eye_expert, ne);
    if (grouped(cfg)) {
        eye_in_group = place(ctx_, buffer_.get(), base, &off, {pg, 1, pg}, "moe.eye_in_group");
        fill_identity(eye_in_group, pg);
        eye_group = place(ctx_, buffer_.get(), base, &off, {ng, ng}, "moe.eye_group");
        fill_identity(eye_group, ng);
    }
    minus_one = place(ctx_, buffer_.get(), base, &off, {1}, "moe.minus_one");
    minus_one->data_as<float>()[0] = -1.0f;
}

Tensor* moe_select_experts(Context& ctx, Tensor* selection, const MoEConfig& cfg, const MoERoutingTables& tables) {
    const int64_t n = selection->ne[1];
    if (grouped(cfg)) {
        const int64_t ng = cfg.n_group, pg = cfg.n_expert / cfg.n_group;
        // Score each group by the sum of its two best values.
        Tensor* groups = reshape_3d(ctx, selection, pg, 1, ng * n);  // one group per "token" of mul_mat_id
        Tensor* best2 = reshape_2d(ctx, top_k(ctx, reshape_2d(ctx, selection, pg, ng * n), 2), 2, ng * n);
        Tensor* best2_vals = mul_mat_id(ctx, tables.eye_in_group, groups, best2);  // [1, 2, ng * n]
        Tensor* group_score = reshape_2d(ctx, sum(ctx, reshape_2d(ctx, best2_vals, 2, ng * n)), ng, n);
        // Keep the n_group_used best groups: indicator 1 for kept, 0 for dropped ...
        Tensor* kept = top_k(ctx, group_score, int(cfg.n_group_used));  // I32 [n_group_used, n]
        Tensor* onehots = get_rows(ctx, tables.eye_group, reshape_2d(ctx, kept, cfg.n_group_used * n, 1));
        onehots = reshape_3d(ctx, onehots, ng, cfg.n_group_used, n);
        Tensor* indicator = sum_dim1(ctx, onehots);  // [ng, n]
        // ... turned into 0 for kept groups and -1e30 for dropped ones, added to every expert of the group.
        // (x + 0 leaves kept values exact; -1e30 puts dropped experts below any real score.)
        Tensor* mask = scale(ctx, add(ctx, indicator, tables.minus_one), 1e30f);
        Tensor* masked = add(ctx, reshape_3d(ctx, selection, pg, ng, n), reshape_3d(ctx, mask, 1, ng, n));
        selection = reshape_2d(ctx, masked, cfg.n_expert, n);
    }
    return top_k(ctx, selection, int(cfg.n_expert_used));  // [n_used, n]
}

Tensor* moe_ffn(Context& ctx, Tensor* x, const MoEWeights& w, const MoEConfig& cfg, const MoERoutingTables& tables) {
    const int64_t n_embd = x->ne[0], n = x->ne[1];
    const int64_t n_used = cfg.n_expert_used;
    auto bias = [&](Tensor* t, Tensor* b) { return b ? add(ctx, t, b) : t; };

    Tensor* logits = bias(mul_mat(ctx, w.gate_inp, x), w.gate_inp_b);  // [n_expert, n]
    // gather(t)[j, tok] = t[ids[j, tok], tok]: a dot with expert ids[j, tok]'s one-hot row.
    auto gather = [&](Tensor* t, Tensor* ids) {
        Tensor* g = mul_mat_id(ctx, tables.eye_expert, reshape_3d(ctx, t, cfg.n_expert, 1, n), ids);
        return reshape_2d(ctx, g, n_used, n);  // [1, n_used, n] -> [n_used, n]
    };
    Tensor* ids = nullptr;      // I32 [n_used, n]
    Tensor* weights = nullptr;  // [n_used, n]
    if (cfg.gating == MoEGating::SoftmaxWeight) {
        ids = moe_select_experts(ctx, logits, cfg, tables);
        weights = softmax(ctx, gather(logits, ids), nullptr, 1.0f);
    } else {
        Tensor* probs = cfg.gating == MoEGating::Sigmoid ? sigmoid(ctx, logits) : softmax(ctx, logits, nullptr, 1.0f);
        Tensor* selection = w.probs_bias ? add(ctx, probs, w.probs_bias) : probs;
        ids = moe_select_experts(ctx, selection, cfg, tables);
        weights = gather(probs, ids);
    }
    if (cfg.norm_weights) {
        // llama.cpp clamps the sum at 6.1e-5 before dividing; softmax and sigmoid weights of the
        // selected experts sum far above that, so the clamp never acts on them.
        weights = div(ctx, weights, sum(ctx, weights));
    }
    if (cfg.weights_scale != 0.0f && cfg.weights_scale != 1.0f) weights = scale(ctx, weights, cfg.weights_scale);

    // Per-expert biases [width, n_expert]: the selected experts' rows, as [width, n_used, n].
    Tensor* flat_ids = reshape_2d(ctx, ids, n_used * n, 1);
    auto expert_bias = [&](Tensor* t, Tensor* b) {
        return b ? add(ctx, t, reshape_3d(ctx, get_rows(ctx, b, flat_ids), b->ne[0], n_used, n)) : t;
    };
    Tensor* xb = reshape_3d(ctx, x, n_embd, 1, n);
    Tensor* gate = expert_bias(mul_mat_id(ctx, w.gate_exps, xb, ids), w.gate_exps_b);  // [n_ff_exp, n_used, n]
    Tensor* up = expert_bias(mul_mat_id(ctx, w.up_exps, xb, ids), w.up_exps_b);
    Tensor* act = cfg.swiglu_limit > 0 ? swiglu_clamped(ctx, gate, up, cfg.swiglu_alpha, cfg.swiglu_limit)
                                       : swiglu(ctx, gate, up);
    Tensor* down = expert_bias(mul_mat_id(ctx, w.down_exps, act, ids), w.down_exps_b);  // [n_embd, n_used, n]
    down = mul(ctx, down, reshape_3d(ctx, weights, 1, n_used, n));
    return sum_dim1(ctx, down);  // [n_embd, n]
}

}  // namespace tessera
