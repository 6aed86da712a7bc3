// gpt-oss, top to bottom (facts from llama.cpp's graph and OpenAI's model card; the code is ours). Per block:
//   h = RMSNorm(x) * attn_norm
//   q, k, v = Wq h + bq, Wk h + bk, Wv h + bv          (head dim key_length; q wider than n_embd)
//   q, k = RoPE_neox_yarn(q), RoPE_neox_yarn(k)
//   a = attention(q, K, V; scale 1/sqrt(head_dim), sinks, window on even layers)
//   x = x + Wo a + bo
//   h = RMSNorm(x) * post_attention_norm
//   x = x + MoE(h): logits = W_r h + b_r; top k of the logits; weights softmax over those k;
//                   expert j: down_j(swiglu_clamped(gate_j h + bg_j, up_j h + bu_j)) + bd_j
// then RMSNorm and the output projection.
#include "models/gpt_oss.h"

#include <cmath>

#include "core/error.h"
#include "models/decoder_hparams.h"
#include "models/moe.h"

namespace tessera {

namespace {

// The clamped SwiGLU's constants: fixed by the model (OpenAI's reference code), not stated in the files.
constexpr float kSwigluAlpha = 1.702f;
constexpr float kSwigluLimit = 7.0f;

struct GptOssLayer {
    Tensor *attn_norm = nullptr, *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
    Tensor *bq = nullptr, *bk = nullptr, *bv = nullptr, *bo = nullptr;
    Tensor* sinks = nullptr;     // [n_head]
    Tensor* ffn_norm = nullptr;  // blk.N.post_attention_norm
    MoEWeights moe;
    bool window = false;
};

Tensor* add_bias(Context& ctx, Tensor* x, Tensor* bias) { return bias ? add(ctx, x, bias) : x; }

class GptOss final : public Architecture {
public:
    const char* name() const override { return "gpt-oss"; }
    void load(const GGUFFile& file, HParams& hp, TensorBinder& bind) override;
    std::vector<LayerCache> cache_layout(const HParams& hp) const override;
    Tensor* build(BatchGraph& b) const override;

private:
    void read_hparams(const GGUFFile& file, HParams& hp);
    Tensor* attention_block(BatchGraph& b, int il, Tensor* h) const;

    HParams hp_;
    RopeParams rope_;
    int32_t window_ = 0;
    int64_t n_ff_exp_ = 0;
    MoEConfig moe_;
    std::unique_ptr<MoERoutingTables> tables_;
    Tensor* tok_embd_ = nullptr;
    Tensor* output_norm_ = nullptr;
    Tensor* output_ = nullptr;
    std::vector<GptOssLayer> layers_;
};

void GptOss::read_hparams(const GGUFFile& file, HParams& hp) {
    HParamReader r(file, "gpt-oss");
    DecoderDefaults d;
    d.n_ctx_train = 131072;
    read_decoder_hparams(r, hp, d);
    window_ = read_sliding_window(r);
    rope_ = read_rope_params(r, hp, kRopeNeox, {"none", "yarn"});
    n_ff_exp_ = r.require_int("expert_feed_forward_length");
    moe_.n_expert = r.require_int("expert_count");
    moe_.n_expert_used = r.require_int("expert_used_count");
    moe_.gating = MoEGating::SoftmaxWeight;
    moe_.swiglu_alpha = kSwigluAlpha;
    moe_.swiglu_limit = kSwigluLimit;
    validate_moe_config(moe_, file.path() + ": gpt-oss");
    tables_ = std::make_unique<MoERoutingTables>(moe_);
    hp.n_expert = moe_.n_expert;
    hp.n_expert_used = moe_.n_expert_used;
}

void GptOss::load(const GGUFFile& file, HParams& hp, TensorBinder& bind) {
    read_hparams(file, hp);
    hp_ = hp;
    const Dim embd{hp.n_embd, "n_embd (embedding_length)"};
    const Dim vocab{hp.n_vocab, "n_vocab"};
    const Dim heads{hp.n_head, "n_head (attention.head_count)"};
    const Dim q_out{hp.n_head * hp.head_dim_k, "n_head * key_length"};
    const Dim k_out{hp.n_head_kv * hp.head_dim_k, "n_head_kv * key_length"};
    const Dim v_out{hp.n_head_kv * hp.head_dim_v, "n_head_kv * value_length"};
    const Dim o_in{hp.n_head * hp.head_dim_v, "n_head * value_length"};
    const Dim n_exp{moe_.n_expert, "expert_count"};
    const Dim ff_exp{n_ff_exp_, "expert_feed_forward_length"};

    tok_embd_ = bind.require("token_embd.weight", {embd, vocab});
    output_norm_ = bind.require("output_norm.weight", {embd});
    output_ = bind.optional("output.weight", {embd, vocab});
    if (!output_) output_ = tok_embd_;

    layers_.resize(size_t(hp.n_layer));
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        GptOssLayer& L = layers_[size_t(il)];
        L.attn_norm = bind.require(p + "attn_norm.weight", {embd});
        L.wq = bind.require(p + "attn_q.weight", {embd, q_out});
        L.wk = bind.require(p + "attn_k.weight", {embd, k_out});
        L.wv = bind.require(p + "attn_v.weight", {embd, v_out});
        L.wo = bind.require(p + "attn_output.weight", {o_in, embd});
        L.bq = bind.optional(p + "attn_q.bias", {q_out});
        L.bk = bind.optional(p + "attn_k.bias", {k_out});
        L.bv = bind.optional(p + "attn_v.bias", {v_out});
        L.bo = bind.optional(p + "attn_output.bias", {embd});
        L.sinks = bind.require(p + "attn_sinks.weight", {heads});
        TESSERA_CHECK(L.sinks->type == DType::F32, "%s: tensor %sattn_sinks.weight has type %s, expected f32",
                      file.path().c_str(), p.c_str(), type_name(L.sinks->type));
        L.ffn_norm = bind.require(p + "post_attention_norm.weight", {embd});
        L.moe.gate_inp = bind.require(p + "ffn_gate_inp.weight", {embd, n_exp});
        L.moe.gate_inp_b = bind.optional(p + "ffn_gate_inp.bias", {n_exp});
        L.moe.gate_exps = bind.require(p + "ffn_gate_exps.weight", {embd, ff_exp, n_exp});
        L.moe.up_exps = bind.require(p + "ffn_up_exps.weight", {embd, ff_exp, n_exp});
        L.moe.down_exps = bind.require(p + "ffn_down_exps.weight", {ff_exp, embd, n_exp});
        L.moe.gate_exps_b = bind.optional(p + "ffn_gate_exps.bias", {ff_exp, n_exp});
        L.moe.up_exps_b = bind.optional(p + "ffn_up_exps.bias", {ff_exp, n_exp});
        L.moe.down_exps_b = bind.optional(p + "ffn_down_exps.bias", {embd, n_exp});
        L.window = window_ > 0 && il % 2 == 0;  // even layers slide, odd layers see the whole context
    }
}

std::vector<LayerCache> GptOss::cache_layout(const HParams& hp) const {
    std::vector<LayerCache> layout(size_t(hp.n_layer));
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        LayerCache& l = layout[size_t(il)];
        const bool window = layers_[size_t(il)].window;
        l.kind = window ? CacheKind::Window : CacheKind::Full;
        l.window = window ? window_ : 0;
        l.ring = window;  // window layers keep a ring of window + n_batch - 1 slots
        l.head_dim_k = hp.head_dim_k;
        l.head_dim_v = hp.head_dim_v;
        l.k_width = hp.head_dim_k * hp.n_head_kv;
        l.v_width = hp.head_dim_v * hp.n_head_kv;
    }
    return layout;
}

Tensor* GptOss::attention_block(BatchGraph& b, int il, Tensor* h) const {
    Context& ctx = b.ctx;
    const GptOssLayer& L = layers_[size_t(il)];
    const int64_t n = b.n_tokens;
    Tensor* q = add_bias(ctx, mul_mat(ctx, L.wq, h), L.bq);
    Tensor* k = add_bias(ctx, mul_mat(ctx, L.wk, h), L.bk);
    Tensor* v = add_bias(ctx, mul_mat(ctx, L.wv, h), L.bv);
    q = rope(ctx, reshape_3d(ctx, q, hp_.head_dim_k, hp_.n_head, n), b.positions, rope_);
    k = rope(ctx, reshape_3d(ctx, k, hp_.head_dim_k, hp_.n_head_kv, n), b.positions, rope_);
    b.store_kv(il, k, v);
    AttentionSpec spec;
    spec.scale = 1.0f / std::sqrt(float(hp_.head_dim_k));
    spec.window = L.window ? window_ : 0;
    spec.causal = true;
    spec.sinks = L.sinks;
    Tensor* a = b.attention(il, q, spec);
    a = reshape_2d(ctx, a, hp_.head_dim_v * hp_.n_head, n);
    return add_bias(ctx, mul_mat(ctx, L.wo, a), L.bo);
}

Tensor* GptOss::build(BatchGraph& b) const {
    Context& ctx = b.ctx;
    const float eps = hp_.norm_eps;
    Tensor* x = get_rows(ctx, tok_embd_, b.tokens);  // [n_embd, n]
    for (int il = 0; il < int(layers_.size()); ++il) {
        const GptOssLayer& L = layers_[size_t(il)];
        x = add(ctx, x, attention_block(b, il, mul(ctx, rms_norm(ctx, x, eps), L.attn_norm)));
        x = add(ctx, x, moe_ffn(ctx, mul(ctx, rms_norm(ctx, x, eps), L.ffn_norm), L.moe, moe_, *tables_));
    }
    x = b.select_output_rows(x);
    x = mul(ctx, rms_norm(ctx, x, eps), output_norm_);
    return mul_mat(ctx, output_, x);  // [n_vocab, n or 1]
}

}  // namespace

std::unique_ptr<Architecture> make_gpt_oss_architecture() { return std::make_unique<GptOss>(); }

}  // namespace tessera
