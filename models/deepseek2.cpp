// DeepSeek-V2/V3 forward pass, top to bottom (facts from llama.cpp's deepseek2 graph and
// DeepSeek's papers; the code is ours). Per block:
//   h = RMSNorm(x) * attn_norm
//   q = q_b(RMSNorm(q_a h) * q_a_norm)  or  q = W_q h           [n_head, nope + rope]
//   [c, k_pe] = kv_a_mqa h;  c = RMSNorm(c) * kv_a_norm          latent [kv_lora], rope key [rope]
//   q_pe, k_pe = RoPE (normal pairs, YaRN when the file says so)
//   cache row = [c, k_pe]                                        kv_lora + rope values
//   q_abs = k_b[h]^T q_nope[h]   per head                       [kv_lora]
//   o = attention([q_abs, q_pe], rows, V = rows[:kv_lora])       MQA, scale mscale^2/sqrt(nope+rope)
//   x = x + W_o (v_b[h] o[h])
//   f = dense SwiGLU FFN (first leading_dense_block_count layers) or MoE + shared experts
//   x = x + f
// then RMSNorm and the output projection.
#include "models/deepseek2.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "models/decoder_hparams.h"
#include "models/moe.h"

namespace tessera {

namespace {

struct DeepSeekLayer {
    Tensor* attn_norm = nullptr;
    Tensor *wq = nullptr, *wq_a = nullptr, *q_a_norm = nullptr, *wq_b = nullptr;  // direct q, or q-LoRA
    Tensor *wkv_a = nullptr, *kv_a_norm = nullptr;
    Tensor *k_b = nullptr, *v_b = nullptr;  // [nope, kv_lora, n_head], [kv_lora, v, n_head]
    Tensor* wo = nullptr;
    Tensor* ffn_norm = nullptr;
    // dense FFN
    Tensor *ffn_gate = nullptr, *ffn_up = nullptr, *ffn_down = nullptr;
    // MoE
    MoEWeights moe;
    Tensor *shexp_gate = nullptr, *shexp_up = nullptr, *shexp_down = nullptr;
    bool is_moe = false;
};

class DeepSeek2 final : public Architecture {
public:
    const char* name() const override { return "deepseek2"; }
    void load(const GGUFFile& file, HParams& hp, TensorBinder& bind) override;
    std::vector<LayerCache> cache_layout(const HParams& hp) const override;
    Tensor* build(BatchGraph& b) const override;

private:
    void read_hparams(const GGUFFile& file, HParams& hp);
    void split_kv_b(const GGUFFile& file, TensorBinder& bind, const std::vector<Tensor*>& kv_b);
    Tensor* attention_block(BatchGraph& b, int il, Tensor* h) const;
    Tensor* ffn_block(Context& ctx, const DeepSeekLayer& L, Tensor* h) const;

    HParams hp_;
    int64_t q_lora_ = 0, kv_lora_ = 0, rope_dim_ = 0, nope_dim_ = 0, v_dim_ = 0;
    int64_t n_ff_exp_ = 0, n_shared_ = 0, n_dense_lead_ = 0;
    MoEConfig moe_;
    std::unique_ptr<MoERoutingTables> tables_;
    RopeParams rope_;
    float kq_scale_ = 1.0f;
    Tensor* tok_embd_ = nullptr;
    Tensor* output_norm_ = nullptr;
    Tensor* output_ = nullptr;
    std::vector<DeepSeekLayer> layers_;
};

void DeepSeek2::read_hparams(const GGUFFile& file, HParams& hp) {
    const std::string& path = file.path();
    const char* p = path.c_str();
    HParamReader r(file, "deepseek2");
    // key_length / value_length mean different things in the two DeepSeek layouts (below), so the shared
    // reader's head dims are replaced; they are not checked against n_embd / n_head.
    hp.n_embd = r.require_int("embedding_length");
    hp.n_layer = r.require_int("block_count");
    hp.n_ff = r.require_int("feed_forward_length");
    hp.n_head = r.require_int("attention.head_count");
    hp.n_head_kv = r.get_int("attention.head_count_kv", hp.n_head);
    hp.n_ctx_train = r.get_int("context_length", 4096);
    hp.norm_eps = r.get_float("attention.layer_norm_rms_epsilon", 1e-6f);
    TESSERA_CHECK(hp.norm_eps > 0 && std::isfinite(hp.norm_eps),
                  "%s: deepseek2.attention.layer_norm_rms_epsilon %g must be > 0", p, double(hp.norm_eps));
    hp.n_vocab = read_vocab_size(r);

    // Head geometry. Newer files (attn_k_b / attn_v_b) describe the absorbed MQA view in key_length /
    // value_length and the per-head sizes in key_length_mla / value_length_mla; older ones only the latter
    // meaning, in key_length / value_length.
    q_lora_ = r.get_int("attention.q_lora_rank", 0);
    kv_lora_ = r.require_int("attention.kv_lora_rank");
    rope_dim_ = r.require_int("rope.dimension_count");
    const int64_t d_k = r.has("attention.key_length_mla") ? r.require_int("attention.key_length_mla")
                                                          : r.require_int("attention.key_length");
    v_dim_ = r.has("attention.value_length_mla") ? r.require_int("attention.value_length_mla")
                                                 : r.require_int("attention.value_length");
    TESSERA_CHECK(rope_dim_ % 2 == 0 && rope_dim_ < d_k,
                  "%s: deepseek2.rope.dimension_count %lld must be even and below the key length %lld", p,
                  (long long)rope_dim_, (long long)d_k);
    TESSERA_CHECK(q_lora_ >= 0, "%s: deepseek2.attention.q_lora_rank must be >= 0", p);
    nope_dim_ = d_k - rope_dim_;
    hp.head_dim_k = d_k;
    hp.head_dim_v = v_dim_;

    // FFN / MoE.
    n_dense_lead_ = r.get_int("leading_dense_block_count", 0);
    TESSERA_CHECK(n_dense_lead_ >= 0 && n_dense_lead_ <= hp.n_layer,
                  "%s: deepseek2.leading_dense_block_count %lld must be in 0..block_count", p, (long long)n_dense_lead_);
    if (n_dense_lead_ < hp.n_layer) {
        n_ff_exp_ = r.require_int("expert_feed_forward_length");
        n_shared_ = r.get_int("expert_shared_count", 0);
        TESSERA_CHECK(n_shared_ >= 0, "%s: deepseek2.expert_shared_count must be >= 0", p);
        moe_.n_expert = r.require_int("expert_count");
        moe_.n_expert_used = r.require_int("expert_used_count");
        moe_.n_group = r.get_int("expert_group_count", 0);
        moe_.n_group_used = r.get_int("expert_group_used_count", 0);
        // Files without expert_gating_func are V2 / V2.5: softmax (llama.cpp's compatibility rule).
        const int64_t gating = r.get_int("expert_gating_func", 0);
        moe_.gating = gating == 0 ? MoEGating::Softmax : MoEGating(int32_t(gating));
        moe_.weights_scale = r.get_float("expert_weights_scale", 1.0f);
        moe_.norm_weights = file.has("deepseek2.expert_weights_norm") && file.get<bool>("deepseek2.expert_weights_norm");
        validate_moe_config(moe_, path);
        tables_ = std::make_unique<MoERoutingTables>(moe_);
        hp.n_expert = moe_.n_expert;
        hp.n_expert_used = moe_.n_expert_used;
    }

    // RoPE: normal pairs over the rope part of each head; YaRN as DeepSeek defines it.
    rope_.mode = kRopeNormal;
    rope_.n_dims = int32_t(rope_dim_);
    rope_.freq_base = r.get_float("rope.freq_base", 10000.0f);
    TESSERA_CHECK(rope_.freq_base > 0, "%s: deepseek2.rope.freq_base must be > 0", p);
    rope_.n_ctx_orig = int32_t(r.get_int("rope.scaling.original_context_length", hp.n_ctx_train));
    const std::string scaling = r.get_str("rope.scaling.type", "none");
    TESSERA_CHECK_AS(Unsupported, scaling == "none" || scaling == "yarn" || scaling == "linear",
                  "%s: deepseek2.rope.scaling.type '%s' is not supported (none, linear, yarn)", p, scaling.c_str());
    const float factor = r.get_float("rope.scaling.factor", 0.0f);
    TESSERA_CHECK(factor >= 0 && std::isfinite(factor), "%s: deepseek2.rope.scaling.factor %g must be > 0", p,
                  double(factor));
    if (scaling != "none" && factor > 0) rope_.freq_scale = 1.0f / factor;
    if (scaling == "yarn" && factor > 1.0f) {
        rope_.ext_factor = r.get_float("rope.scaling.yarn_ext_factor", 1.0f);
        rope_.beta_fast = r.get_float("rope.scaling.yarn_beta_fast", 32.0f);
        rope_.beta_slow = r.get_float("rope.scaling.yarn_beta_slow", 1.0f);
        const DeepSeekYarnScales ys =
            deepseek_yarn_scales(factor, r.get_float("rope.scaling.yarn_log_multiplier", 0.0f), d_k);
        rope_.attn_factor = ys.rope_attn_factor;
        kq_scale_ = ys.kq_scale;
    } else {
        kq_scale_ = 1.0f / std::sqrt(float(d_k));
    }
}

void DeepSeek2::split_kv_b(const GGUFFile& file, TensorBinder& bind, const std::vector<Tensor*>& kv_b) {
    // attn_kv_b [kv_lora, n_head * (nope + v)]: row h*(nope+v) + d is head h's K up-projection row d
    // (d < nope) or V up-projection row d - nope. Absorbed attention wants
    //   k_b[h][c][d] = kv_b[h*(nope+v) + d][c]        ([nope, kv_lora, n_head]: K rows transposed)
    //   v_b[h][j][c] = kv_b[h*(nope+v) + nope + j][c]  ([kv_lora, v, n_head])
    // They become weights of the Model (derived), so a device session gets them uploaded with the rest.
    const int64_t H = hp_.n_head, L = kv_lora_, N = nope_dim_, V = v_dim_;
    std::vector<float> row(static_cast<size_t>(L));
    for (size_t il = 0; il < kv_b.size(); ++il) {
        Tensor* src = kv_b[il];
        if (!src) continue;
        const TypeTraits& tr = type_traits(src->type);
        TESSERA_CHECK(tr.to_float != nullptr, "%s: %s: type %s cannot be converted", file.path().c_str(),
                      src->name.c_str(), tr.name);
        const std::string p = "blk." + std::to_string(il) + ".";
        Tensor* k_b = bind.derive(p + "attn_k_b.weight (from attn_kv_b)", DType::F32, {N, L, H});
        Tensor* v_b = bind.derive(p + "attn_v_b.weight (from attn_kv_b)", DType::F32, {L, V, H});
        float* kd = k_b->data_as<float>();
        float* vd = v_b->data_as<float>();
        for (int64_t h = 0; h < H; ++h)
            for (int64_t r = 0; r < N + V; ++r) {
                tr.to_float(src->at(0, h * (N + V) + r), row.data(), L);
                if (r < N) {
                    for (int64_t c = 0; c < L; ++c) kd[(h * L + c) * N + r] = row[size_t(c)];
                } else {
                    std::copy(row.begin(), row.end(), vd + (h * V + (r - N)) * L);
                }
            }
        layers_[il].k_b = k_b;
        layers_[il].v_b = v_b;
    }
}

void DeepSeek2::load(const GGUFFile& file, HParams& hp, TensorBinder& bind) {
    read_hparams(file, hp);
    hp_ = hp;
    const int64_t H = hp.n_head;
    const Dim embd{hp.n_embd, "n_embd (embedding_length)"};
    const Dim vocab{hp.n_vocab, "n_vocab"};
    const Dim ff{hp.n_ff, "n_ff (feed_forward_length)"};
    const Dim q_out{H * (nope_dim_ + rope_dim_), "n_head * (nope + rope)"};
    const Dim q_lora{q_lora_, "q_lora_rank"};
    const Dim kv_lora{kv_lora_, "kv_lora_rank"};
    const Dim kv_a_out{kv_lora_ + rope_dim_, "kv_lora_rank + rope.dimension_count"};
    const Dim nope{nope_dim_, "nope dim (key_length - rope)"};
    const Dim vdim{v_dim_, "value_length"};
    const Dim heads{H, "n_head"};
    const Dim kv_b_out{H * (nope_dim_ + v_dim_), "n_head * (nope + value_length)"};
    const Dim o_in{H * v_dim_, "n_head * value_length"};
    const Dim n_exp{moe_.n_expert, "expert_count"};
    const Dim ff_exp{n_ff_exp_, "expert_feed_forward_length"};
    const Dim ff_sh{n_ff_exp_ * n_shared_, "expert_feed_forward_length * expert_shared_count"};

    tok_embd_ = bind.require("token_embd.weight", {embd, vocab});
    output_norm_ = bind.require("output_norm.weight", {embd});
    output_ = bind.optional("output.weight", {embd, vocab});
    if (!output_) output_ = tok_embd_;

    layers_.resize(size_t(hp.n_layer));
    std::vector<Tensor*> kv_b(size_t(hp.n_layer), nullptr);
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        DeepSeekLayer& L = layers_[size_t(il)];
        L.attn_norm = bind.require(p + "attn_norm.weight", {embd});
        // q-LoRA or direct q: whichever the file has (not decided from the layer count).
        if (bind.has(p + "attn_q_a.weight")) {
            TESSERA_CHECK(q_lora_ > 0, "%s: %sattn_q_a.weight present but deepseek2.attention.q_lora_rank is missing",
                          file.path().c_str(), p.c_str());
            L.wq_a = bind.require(p + "attn_q_a.weight", {embd, q_lora});
            L.q_a_norm = bind.require(p + "attn_q_a_norm.weight", {q_lora});
            L.wq_b = bind.require(p + "attn_q_b.weight", {q_lora, q_out});
        } else {
            L.wq = bind.require(p + "attn_q.weight", {embd, q_out});
        }
        L.wkv_a = bind.require(p + "attn_kv_a_mqa.weight", {embd, kv_a_out});
        L.kv_a_norm = bind.require(p + "attn_kv_a_norm.weight", {kv_lora});
        if (bind.has(p + "attn_k_b.weight")) {
            L.k_b = bind.require(p + "attn_k_b.weight", {nope, kv_lora, heads});
            L.v_b = bind.require(p + "attn_v_b.weight", {kv_lora, vdim, heads});
        } else {
            kv_b[size_t(il)] = bind.load_only(p + "attn_kv_b.weight", {kv_lora, kv_b_out});
        }
        L.wo = bind.require(p + "attn_output.weight", {o_in, embd});
        L.ffn_norm = bind.require(p + "ffn_norm.weight", {embd});
        if (il < n_dense_lead_) {
            L.ffn_gate = bind.require(p + "ffn_gate.weight", {embd, ff});
            L.ffn_up = bind.require(p + "ffn_up.weight", {embd, ff});
            L.ffn_down = bind.require(p + "ffn_down.weight", {ff, embd});
        } else {
            L.is_moe = true;
            L.moe.gate_inp = bind.require(p + "ffn_gate_inp.weight", {embd, n_exp});
            L.moe.probs_bias = bind.optional(p + "exp_probs_b.bias", {n_exp});
            L.moe.gate_exps = bind.require(p + "ffn_gate_exps.weight", {embd, ff_exp, n_exp});
            L.moe.up_exps = bind.require(p + "ffn_up_exps.weight", {embd, ff_exp, n_exp});
            L.moe.down_exps = bind.require(p + "ffn_down_exps.weight", {ff_exp, embd, n_exp});
            if (n_shared_ > 0) {
                L.shexp_gate = bind.require(p + "ffn_gate_shexp.weight", {embd, ff_sh});
                L.shexp_up = bind.require(p + "ffn_up_shexp.weight", {embd, ff_sh});
                L.shexp_down = bind.require(p + "ffn_down_shexp.weight", {ff_sh, embd});
            }
        }
    }
    split_kv_b(file, bind, kv_b);
}

std::vector<LayerCache> DeepSeek2::cache_layout(const HParams& hp) const {
    LayerCache l;
    l.kind = CacheKind::Latent;
    l.k_width = kv_lora_ + rope_dim_;  // [latent, rope key]
    l.v_width = 0;                     // V = the latent part of the same row
    l.head_dim_k = kv_lora_ + rope_dim_;
    l.head_dim_v = kv_lora_;
    return std::vector<LayerCache>(size_t(hp.n_layer), l);
}

Tensor* DeepSeek2::attention_block(BatchGraph& b, int il, Tensor* h) const {
    Context& ctx = b.ctx;
    const DeepSeekLayer& L = layers_[size_t(il)];
    const int64_t n = b.n_tokens, H = hp_.n_head, d_k = nope_dim_ + rope_dim_;
    const float eps = hp_.norm_eps;

    // q: [d_k, H, n], split into q_nope (first nope dims of each head) and q_pe (the last rope dims).
    Tensor* q = L.wq ? mul_mat(ctx, L.wq, h)
                     : mul_mat(ctx, L.wq_b, mul(ctx, rms_norm(ctx, mul_mat(ctx, L.wq_a, h), eps), L.q_a_norm));
    q = reshape_3d(ctx, q, d_k, H, n);
    Tensor* q_nope = view_3d(ctx, q, nope_dim_, H, n, q->nb[1], q->nb[2], 0);
    Tensor* q_pe = view_3d(ctx, q, rope_dim_, H, n, q->nb[1], q->nb[2], size_t(nope_dim_) * sizeof(float));
    q_pe = rope(ctx, cont(ctx, q_pe), b.positions, rope_);

    // The compressed KV: latent c (normalized) and the shared rope key.
    Tensor* kv = mul_mat(ctx, L.wkv_a, h);  // [kv_lora + rope, n]
    Tensor* c = cont(ctx, view_2d(ctx, kv, kv_lora_, n, kv->nb[1], 0));
    c = mul(ctx, rms_norm(ctx, c, eps), L.kv_a_norm);
    Tensor* k_pe = view_3d(ctx, kv, rope_dim_, 1, n, kv->nb[1], kv->nb[1], size_t(kv_lora_) * sizeof(float));
    k_pe = rope(ctx, cont(ctx, k_pe), b.positions, rope_);
    b.store_kv(il, concat(ctx, reshape_3d(ctx, c, kv_lora_, 1, n), k_pe, 0), nullptr);

    // Absorb K's up-projection into the query: q_abs[h] = k_b[h]^T q_nope[h]  -> [kv_lora, H, n].
    Tensor* q_abs = mul_mat(ctx, L.k_b, permute(ctx, q_nope, 0, 2, 1, 3));  // [kv_lora, n, H]
    q_abs = cont(ctx, permute(ctx, q_abs, 0, 2, 1, 3));
    Tensor* q_full = concat(ctx, q_abs, q_pe, 0);  // [kv_lora + rope, H, n]

    AttentionSpec spec;
    spec.scale = kq_scale_;
    spec.causal = true;
    Tensor* o = b.attention(il, q_full, spec);
    // o: [kv_lora, H, n] in latent space; V's up-projection per head, then the output projection.
    Tensor* ov = mul_mat(ctx, L.v_b, permute(ctx, o, 0, 2, 1, 3));  // [v, n, H]
    ov = cont(ctx, permute(ctx, ov, 0, 2, 1, 3));                    // [v, H, n]
    return mul_mat(ctx, L.wo, reshape_2d(ctx, ov, v_dim_ * H, n));
}

Tensor* DeepSeek2::ffn_block(Context& ctx, const DeepSeekLayer& L, Tensor* h) const {
    auto swiglu_ffn = [&](Tensor* gate, Tensor* up, Tensor* down) {
        return mul_mat(ctx, down, swiglu(ctx, mul_mat(ctx, gate, h), mul_mat(ctx, up, h)));
    };
    if (!L.is_moe) return swiglu_ffn(L.ffn_gate, L.ffn_up, L.ffn_down);
    Tensor* out = moe_ffn(ctx, h, L.moe, moe_, *tables_);
    if (L.shexp_gate) out = add(ctx, out, swiglu_ffn(L.shexp_gate, L.shexp_up, L.shexp_down));
    return out;
}

Tensor* DeepSeek2::build(BatchGraph& b) const {
    Context& ctx = b.ctx;
    const float eps = hp_.norm_eps;
    Tensor* x = get_rows(ctx, tok_embd_, b.tokens);  // [n_embd, n]
    for (int il = 0; il < int(layers_.size()); ++il) {
        const DeepSeekLayer& L = layers_[size_t(il)];
        x = add(ctx, x, attention_block(b, il, mul(ctx, rms_norm(ctx, x, eps), L.attn_norm)));
        x = add(ctx, x, ffn_block(ctx, L, mul(ctx, rms_norm(ctx, x, eps), L.ffn_norm)));
    }
    x = b.select_output_rows(x);
    x = mul(ctx, rms_norm(ctx, x, eps), output_norm_);
    return mul_mat(ctx, output_, x);  // [n_vocab, n or 1]
}

}  // namespace

std::unique_ptr<Architecture> make_deepseek2_architecture() { return std::make_unique<DeepSeek2>(); }

DeepSeekYarnScales deepseek_yarn_scales(float factor, float log_mul, int64_t d_k) {
    DeepSeekYarnScales s;
    float mscale = 1.0f;
    if (factor > 1.0f) {
        // DeepSeek's rotary cos/sin carry mscale(factor, mscale) / mscale(factor, mscale_all_dim) = 1 for
        // every released model; the rope op multiplies by (1 + 0.1 ln factor) under YaRN, so cancel it.
        s.rope_attn_factor = 1.0f / (1.0f + 0.1f * std::log(factor));
        mscale = 1.0f + log_mul * std::log(factor);
    }
    s.kq_scale = mscale * mscale / std::sqrt(float(d_k));
    return s;
}

MlaCacheFigures mla_cache_figures(int64_t n_layer, int64_t n_head, int64_t kv_lora, int64_t rope_dim,
                                  int64_t nope_dim, int64_t v_dim, DType type) {
    MlaCacheFigures f;
    f.latent_bytes_per_token = row_bytes(type, kv_lora + rope_dim) * size_t(n_layer);
    f.mha_bytes_per_token =
        (row_bytes(type, n_head * (nope_dim + rope_dim)) + row_bytes(type, n_head * v_dim)) * size_t(n_layer);
    return f;
}

}  // namespace tessera
