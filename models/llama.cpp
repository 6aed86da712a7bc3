// The Llama-shaped decoder, top to bottom: per block
//   h = RMSNorm(x) * attn_norm
//   q, k, v = Wq h + bq, Wk h + bk, Wv h + bv          (or one fused attn_qkv, rows q | k | v)
//   [qk_norm] q, k = RMSNorm(q) * q_norm, RMSNorm(k) * k_norm   per head
//   q, k = RoPE(q), RoPE(k)                             (normal or NeoX pairs; rope_freqs / LongRoPE factors)
//   x = x + Wo attention(q, K, V) + bo                  (window on every layer when the file has one)
//   h = RMSNorm(x) * ffn_norm
//   x = x + down(silu(gate h) * up h)                   (or fused gate | up, or routed experts)
// then RMSNorm and the output projection (tied to the token embeddings when the file has no output).
// The switches are a family's LlamaTraits (models/llama.h).
#include "models/llama.h"

#include <cmath>

#include "core/error.h"
#include "models/decoder_hparams.h"
#include "models/moe.h"

namespace tessera {

namespace {

struct LlamaLayer {
    Tensor *attn_norm = nullptr, *wq = nullptr, *wk = nullptr, *wv = nullptr, *wqkv = nullptr, *wo = nullptr;
    Tensor *bq = nullptr, *bk = nullptr, *bv = nullptr, *bqkv = nullptr, *bo = nullptr;  // optional biases
    Tensor *q_norm = nullptr, *k_norm = nullptr;
    Tensor *ffn_norm = nullptr, *ffn_gate = nullptr, *ffn_up = nullptr, *ffn_down = nullptr;
    Tensor *ffn_gate_b = nullptr, *ffn_up_b = nullptr, *ffn_down_b = nullptr;  // optional biases
    MoEWeights moe;
};

Tensor* add_bias(Context& ctx, Tensor* x, Tensor* bias) { return bias ? add(ctx, x, bias) : x; }

// Rows [first, first + rows) of x [ne0, n] as a contiguous [rows, n] (a fused projection's part).
Tensor* rows_of(Context& ctx, Tensor* x, int64_t first, int64_t rows) {
    return cont(ctx, view_2d(ctx, x, rows, x->ne[1], x->nb[1], size_t(first) * x->nb[0]));
}

class Llama final : public Architecture {
public:
    explicit Llama(const LlamaTraits& t) : t_(t) {}
    const char* name() const override { return t_.arch; }
    void load(const GGUFFile& file, HParams& hp, TensorBinder& bind) override;
    std::vector<LayerCache> cache_layout(const HParams& hp) const override;
    Tensor* build(BatchGraph& b) const override;

private:
    void read_hparams(const GGUFFile& file, HParams& hp);
    void bind_layer(TensorBinder& bind, int64_t il, LlamaLayer& L) const;
    Tensor* attention_block(BatchGraph& b, int il, Tensor* h) const;
    Tensor* ffn_block(Context& ctx, const LlamaLayer& L, Tensor* h) const;

    LlamaTraits t_;
    HParams hp_;
    RopeParams rope_;
    int32_t window_ = 0;
    float attn_scale_ = 1.0f;
    MoEConfig moe_;
    int64_t n_ff_exp_ = 0;
    std::unique_ptr<MoERoutingTables> tables_;
    Tensor* tok_embd_ = nullptr;
    Tensor* output_norm_ = nullptr;
    Tensor* output_ = nullptr;
    Tensor* rope_freqs_ = nullptr;  // Llama 3.1 per-pair frequency divisors
    Tensor *rope_long_ = nullptr, *rope_short_ = nullptr;  // LongRoPE: divisors beyond / within n_ctx_orig
    std::vector<LlamaLayer> layers_;
};

void Llama::read_hparams(const GGUFFile& file, HParams& hp) {
    HParamReader r(file, t_.arch);
    DecoderDefaults d;
    d.n_ctx_train = t_.n_ctx_train;
    read_decoder_hparams(r, hp, d);
    // phi3 files state a window that llama.cpp reads and then does not apply; the key is still checked.
    const int32_t window = read_sliding_window(r);
    window_ = t_.sliding_window ? window : 0;
    std::string scaling;
    rope_ = read_rope_params(r, hp, t_.rope_mode,
                             t_.long_rope ? std::initializer_list<const char*>{"none", "linear", "yarn", "longrope"}
                                          : std::initializer_list<const char*>{"none", "linear", "yarn"},
                             &scaling);
    attn_scale_ = 1.0f / std::sqrt(float(hp.head_dim_k));
    if (t_.moe) {
        n_ff_exp_ = r.require_int("expert_feed_forward_length");
        moe_.n_expert = r.require_int("expert_count");
        moe_.n_expert_used = r.require_int("expert_used_count");
        moe_.gating = MoEGating::Softmax;
        moe_.norm_weights = true;  // llama.cpp always renormalises the selected weights for these families
        validate_moe_config(moe_, file.path() + ": " + t_.arch);
        tables_ = std::make_unique<MoERoutingTables>(moe_);
        hp.n_expert = moe_.n_expert;
        hp.n_expert_used = moe_.n_expert_used;
    }
}

void Llama::bind_layer(TensorBinder& bind, int64_t il, LlamaLayer& L) const {
    const HParams& hp = hp_;
    const Dim embd{hp.n_embd, "n_embd (embedding_length)"};
    const Dim ff{hp.n_ff, "n_ff (feed_forward_length)"};
    const Dim ff2{2 * hp.n_ff, "2 * n_ff (gate | up)"};
    const Dim q_out{hp.n_head * hp.head_dim_k, "n_head * head_dim (attention.head_count)"};
    const Dim k_out{hp.n_head_kv * hp.head_dim_k, "n_head_kv * head_dim (attention.head_count_kv)"};
    const Dim v_out{hp.n_head_kv * hp.head_dim_v, "n_head_kv * head_dim_v (attention.head_count_kv)"};
    const Dim qkv_out{q_out.value + k_out.value + v_out.value, "q + k + v widths"};
    const Dim o_in{hp.n_head * hp.head_dim_v, "n_head * head_dim_v (attention.head_count)"};
    const Dim head_k{hp.head_dim_k, "head_dim (attention.key_length)"};
    const Dim n_exp{moe_.n_expert, "expert_count"};
    const Dim ff_exp{n_ff_exp_, "expert_feed_forward_length"};

    const std::string p = "blk." + std::to_string(il) + ".";
    L.attn_norm = bind.require(p + "attn_norm.weight", {embd});
    if (t_.fused_qkv && bind.has(p + "attn_qkv.weight")) {
        L.wqkv = bind.require(p + "attn_qkv.weight", {embd, qkv_out});
        L.bqkv = bind.optional(p + "attn_qkv.bias", {qkv_out});
    } else {
        L.wq = bind.require(p + "attn_q.weight", {embd, q_out});
        L.wk = bind.require(p + "attn_k.weight", {embd, k_out});
        L.wv = bind.require(p + "attn_v.weight", {embd, v_out});
        L.bq = bind.optional(p + "attn_q.bias", {q_out});
        L.bk = bind.optional(p + "attn_k.bias", {k_out});
        L.bv = bind.optional(p + "attn_v.bias", {v_out});
    }
    if (t_.qk_norm) {
        L.q_norm = bind.require(p + "attn_q_norm.weight", {head_k});
        L.k_norm = bind.require(p + "attn_k_norm.weight", {head_k});
    }
    L.wo = bind.require(p + "attn_output.weight", {o_in, embd});
    L.bo = bind.optional(p + "attn_output.bias", {embd});
    L.ffn_norm = bind.require(p + "ffn_norm.weight", {embd});
    if (t_.moe) {
        L.moe.gate_inp = bind.require(p + "ffn_gate_inp.weight", {embd, n_exp});
        L.moe.gate_exps = bind.require(p + "ffn_gate_exps.weight", {embd, ff_exp, n_exp});
        L.moe.up_exps = bind.require(p + "ffn_up_exps.weight", {embd, ff_exp, n_exp});
        L.moe.down_exps = bind.require(p + "ffn_down_exps.weight", {ff_exp, embd, n_exp});
        return;
    }
    if (t_.fused_gate_up && !bind.has(p + "ffn_gate.weight")) {
        L.ffn_up = bind.require(p + "ffn_up.weight", {embd, ff2});
    } else {
        L.ffn_gate = bind.require(p + "ffn_gate.weight", {embd, ff});
        L.ffn_up = bind.require(p + "ffn_up.weight", {embd, ff});
        L.ffn_gate_b = bind.optional(p + "ffn_gate.bias", {ff});
        L.ffn_up_b = bind.optional(p + "ffn_up.bias", {ff});
    }
    L.ffn_down = bind.require(p + "ffn_down.weight", {ff, embd});
    L.ffn_down_b = bind.optional(p + "ffn_down.bias", {embd});
}

void Llama::load(const GGUFFile& file, HParams& hp, TensorBinder& bind) {
    read_hparams(file, hp);
    hp_ = hp;
    TESSERA_CHECK_AS(Unsupported, t_.moe || !bind.has("blk.0.ffn_gate_inp.weight"),
                  "%s: %s mixture-of-experts files (blk.N.ffn_gate_inp) are not supported", file.path().c_str(),
                  t_.arch);

    const Dim embd{hp.n_embd, "n_embd (embedding_length)"};
    const Dim vocab{hp.n_vocab, "n_vocab"};
    const Dim pairs{rope_.n_dims / 2, "rope.dimension_count / 2"};
    tok_embd_ = bind.require("token_embd.weight", {embd, vocab});
    output_norm_ = bind.require("output_norm.weight", {embd});
    output_ = bind.optional("output.weight", {embd, vocab});
    if (!output_) output_ = tok_embd_;
    rope_freqs_ = bind.optional("rope_freqs.weight", {pairs});
    if (t_.long_rope) {
        rope_long_ = bind.optional("rope_factors_long.weight", {pairs});
        rope_short_ = bind.optional("rope_factors_short.weight", {pairs});
        TESSERA_CHECK((rope_long_ == nullptr) == (rope_short_ == nullptr),
                      "%s: rope_factors_long.weight and rope_factors_short.weight come as a pair", file.path().c_str());
    }
    layers_.resize(size_t(hp.n_layer));
    for (int64_t il = 0; il < hp.n_layer; ++il) bind_layer(bind, il, layers_[size_t(il)]);
}

std::vector<LayerCache> Llama::cache_layout(const HParams& hp) const {
    LayerCache l;
    l.kind = window_ > 0 ? CacheKind::Window : CacheKind::Full;
    l.window = window_;
    l.ring = window_ > 0;  // a window model keeps only window + n_batch - 1 slots per layer
    l.head_dim_k = hp.head_dim_k;
    l.head_dim_v = hp.head_dim_v;
    l.k_width = hp.head_dim_k * hp.n_head_kv;
    l.v_width = hp.head_dim_v * hp.n_head_kv;
    return std::vector<LayerCache>(size_t(hp.n_layer), l);
}

Tensor* Llama::attention_block(BatchGraph& b, int il, Tensor* h) const {
    Context& ctx = b.ctx;
    const LlamaLayer& L = layers_[size_t(il)];
    const HParams& hp = hp_;
    const int64_t n = b.n_tokens;
    const int64_t q_w = hp.n_head * hp.head_dim_k, k_w = hp.n_head_kv * hp.head_dim_k;
    const int64_t v_w = hp.n_head_kv * hp.head_dim_v;

    Tensor *q, *k, *v;
    if (L.wqkv) {
        Tensor* qkv = add_bias(ctx, mul_mat(ctx, L.wqkv, h), L.bqkv);
        q = rows_of(ctx, qkv, 0, q_w);
        k = rows_of(ctx, qkv, q_w, k_w);
        v = rows_of(ctx, qkv, q_w + k_w, v_w);
    } else {
        q = mul_mat(ctx, L.wq, h);
        k = mul_mat(ctx, L.wk, h);
        v = mul_mat(ctx, L.wv, h);
        // Adjacent in the graph (store_kv would put k's and v's chains before q's): a backend can then run
        // the three products of one input as one (the cpu backend: one fork/join, one activation conversion).
        b.graph.expand(q);
        b.graph.expand(k);
        b.graph.expand(v);
        q = add_bias(ctx, q, L.bq);
        k = add_bias(ctx, k, L.bk);
        v = add_bias(ctx, v, L.bv);
    }
    q = reshape_3d(ctx, q, hp.head_dim_k, hp.n_head, n);
    k = reshape_3d(ctx, k, hp.head_dim_k, hp.n_head_kv, n);
    if (L.q_norm) {
        q = mul(ctx, rms_norm(ctx, q, hp.norm_eps), L.q_norm);  // RMSNorm over each head's dims
        k = mul(ctx, rms_norm(ctx, k, hp.norm_eps), L.k_norm);
    }
    // LongRoPE: the long factors once the session's context goes past the original one (llama.cpp's rule).
    Tensor* factors = rope_freqs_;
    if (rope_long_) factors = b.n_ctx() > rope_.n_ctx_orig ? rope_long_ : rope_short_;
    q = rope(ctx, q, b.positions, rope_, factors);
    k = rope(ctx, k, b.positions, rope_, factors);
    b.store_kv(il, k, v);

    AttentionSpec spec;
    spec.scale = attn_scale_;
    spec.window = window_;
    spec.causal = true;
    Tensor* attn = b.attention(il, q, spec);
    attn = reshape_2d(ctx, attn, hp.head_dim_v * hp.n_head, n);
    return add_bias(ctx, mul_mat(ctx, L.wo, attn), L.bo);
}

Tensor* Llama::ffn_block(Context& ctx, const LlamaLayer& L, Tensor* h) const {
    if (L.moe.gate_inp) return moe_ffn(ctx, h, L.moe, moe_, *tables_);
    Tensor *gate, *up;
    if (!L.ffn_gate) {  // fused: rows gate | up
        Tensor* gu = mul_mat(ctx, L.ffn_up, h);
        gate = rows_of(ctx, gu, 0, hp_.n_ff);
        up = rows_of(ctx, gu, hp_.n_ff, hp_.n_ff);
    } else {
        gate = add_bias(ctx, mul_mat(ctx, L.ffn_gate, h), L.ffn_gate_b);
        up = add_bias(ctx, mul_mat(ctx, L.ffn_up, h), L.ffn_up_b);
    }
    return add_bias(ctx, mul_mat(ctx, L.ffn_down, swiglu(ctx, gate, up)), L.ffn_down_b);
}

Tensor* Llama::build(BatchGraph& b) const {
    Context& ctx = b.ctx;
    const float eps = hp_.norm_eps;
    Tensor* x = get_rows(ctx, tok_embd_, b.tokens);  // [n_embd, n]
    for (int il = 0; il < int(layers_.size()); ++il) {
        const LlamaLayer& L = layers_[size_t(il)];
        x = add(ctx, x, attention_block(b, il, mul(ctx, rms_norm(ctx, x, eps), L.attn_norm)));
        x = add(ctx, x, ffn_block(ctx, L, mul(ctx, rms_norm(ctx, x, eps), L.ffn_norm)));
    }
    x = b.select_output_rows(x);
    x = mul(ctx, rms_norm(ctx, x, eps), output_norm_);
    return mul_mat(ctx, output_, x);  // [n_vocab, n or 1]
}

}  // namespace

std::unique_ptr<Architecture> make_llama_like_architecture(const LlamaTraits& traits) {
    return std::make_unique<Llama>(traits);
}

}  // namespace tessera
