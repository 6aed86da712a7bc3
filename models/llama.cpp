// Llama: RMSNorm -> attention with RoPE (pairs 2i, 2i+1) over the KV cache ->
// residual -> RMSNorm -> SwiGLU FFN -> residual, N times; then RMSNorm and the
// output projection (tied to the token embeddings when the file has no output).
#include "models/llama.h"

#include <cmath>

#include "core/error.h"

namespace tessera {

namespace {

struct LlamaLayer {
    Tensor *attn_norm, *wq, *wk, *wv, *wo;
    Tensor *bq, *bk, *bv, *bo;  // optional biases
    Tensor *ffn_norm, *ffn_gate, *ffn_up, *ffn_down;
    Tensor *ffn_gate_b, *ffn_up_b, *ffn_down_b;  // optional biases
};

class Llama final : public Architecture {
public:
    const char* name() const override { return "llama"; }
    void load(const GGUFFile& file, HParams& hp, TensorBinder& bind) override;
    std::vector<LayerCache> cache_layout(const HParams& hp) const override;
    Tensor* build(BatchGraph& b) const override;
    size_t decode_weight_bytes() const override { return decode_bytes_; }

private:
    void read_hparams(const GGUFFile& file, HParams& hp);
    void read_rope(const HParamReader& r, const HParams& hp);

    HParams hp_;
    RopeParams rope_;
    int32_t window_ = 0;
    float attn_scale_ = 1.0f;
    Tensor* tok_embd_ = nullptr;
    Tensor* output_norm_ = nullptr;
    Tensor* output_ = nullptr;
    Tensor* rope_freqs_ = nullptr;  // Llama 3.1 per-pair frequency divisors
    std::vector<LlamaLayer> layers_;
    size_t decode_bytes_ = 0;
};

void Llama::read_hparams(const GGUFFile& file, HParams& hp) {
    HParamReader r(file, "llama");
    hp.n_embd = r.require_int("embedding_length");
    hp.n_layer = r.require_int("block_count");
    hp.n_ff = r.require_int("feed_forward_length");
    hp.n_head = r.require_int("attention.head_count");
    hp.n_head_kv = r.get_int("attention.head_count_kv", hp.n_head);
    hp.n_ctx_train = r.get_int("context_length", 2048);
    TESSERA_CHECK(hp.n_head_kv > 0 && hp.n_head % hp.n_head_kv == 0,
                  "%s: llama.attention.head_count %lld is not a multiple of llama.attention.head_count_kv %lld",
                  file.path().c_str(), (long long)hp.n_head, (long long)hp.n_head_kv);
    TESSERA_CHECK(r.has("attention.key_length") || hp.n_embd % hp.n_head == 0,
                  "%s: llama.embedding_length %lld is not a multiple of llama.attention.head_count %lld",
                  file.path().c_str(), (long long)hp.n_embd, (long long)hp.n_head);
    hp.head_dim_k = r.get_int("attention.key_length", hp.n_embd / hp.n_head);
    hp.head_dim_v = r.get_int("attention.value_length", hp.n_embd / hp.n_head);
    TESSERA_CHECK(hp.head_dim_k > 0 && hp.head_dim_v > 0, "%s: head dims must be > 0", file.path().c_str());
    hp.norm_eps = r.get_float("attention.layer_norm_rms_epsilon", 1e-5f);
    TESSERA_CHECK(hp.norm_eps > 0 && std::isfinite(hp.norm_eps),
                  "%s: llama.attention.layer_norm_rms_epsilon %g must be > 0", file.path().c_str(), double(hp.norm_eps));
    window_ = int32_t(r.get_int("attention.sliding_window", 0));
    TESSERA_CHECK(window_ >= 0, "%s: llama.attention.sliding_window %d must be >= 0", file.path().c_str(), window_);

    // n_vocab: the vocabulary's size when the file has one, else the embedding table's rows.
    hp.n_vocab = r.get_int("vocab_size", 0);
    if (hp.n_vocab == 0) {
        if (const GGUFValue* toks = file.find("tokenizer.ggml.tokens"); toks && toks->type == GGUFType::ARRAY)
            hp.n_vocab = int64_t(toks->arr.size());
        else if (const auto* te = file.find_tensor("token_embd.weight"))
            hp.n_vocab = te->ne[1];
    }
    TESSERA_CHECK(hp.n_vocab > 0, "%s: cannot tell the vocabulary size (no llama.vocab_size, tokenizer.ggml.tokens "
                  "or token_embd.weight)", file.path().c_str());
    read_rope(r, hp);
    attn_scale_ = 1.0f / std::sqrt(float(hp.head_dim_k));
}

void Llama::read_rope(const HParamReader& r, const HParams& hp) {
    const std::string& path = r.file().path();
    rope_.mode = kRopeNormal;
    rope_.n_dims = int32_t(r.get_int("rope.dimension_count", hp.head_dim_k));
    TESSERA_CHECK(rope_.n_dims > 0 && rope_.n_dims % 2 == 0 && rope_.n_dims <= hp.head_dim_k,
                  "%s: llama.rope.dimension_count %d must be even and in 1..head_dim %lld", path.c_str(),
                  rope_.n_dims, (long long)hp.head_dim_k);
    rope_.freq_base = r.get_float("rope.freq_base", 10000.0f);
    TESSERA_CHECK(rope_.freq_base > 0, "%s: llama.rope.freq_base must be > 0", path.c_str());

    // Scaling: llama.rope.scaling.{type,factor,original_context_length}; older files write rope.scale_linear.
    std::string type = r.get_str("rope.scaling.type", "");
    float factor = r.get_float("rope.scaling.factor", 0.0f);
    if (type.empty() && r.has("rope.scale_linear")) {
        type = "linear";
        factor = r.get_float("rope.scale_linear", 1.0f);
    }
    if (type.empty()) type = "none";
    TESSERA_CHECK_AS(Unsupported, type == "none" || type == "linear" || type == "yarn",
                  "%s: llama.rope.scaling.type '%s' is not supported (none, linear, yarn)", path.c_str(), type.c_str());
    rope_.n_ctx_orig = int32_t(r.get_int("rope.scaling.original_context_length", hp.n_ctx_train));
    if (type != "none" && factor != 0.0f) {
        TESSERA_CHECK(factor > 0, "%s: llama.rope.scaling.factor %g must be > 0", path.c_str(), double(factor));
        rope_.freq_scale = 1.0f / factor;
    }
    if (type == "yarn") {
        rope_.ext_factor = r.get_float("rope.scaling.yarn_ext_factor", 1.0f);
        rope_.attn_factor = r.get_float("rope.scaling.yarn_attn_factor", 1.0f);
        rope_.beta_fast = r.get_float("rope.scaling.yarn_beta_fast", 32.0f);
        rope_.beta_slow = r.get_float("rope.scaling.yarn_beta_slow", 1.0f);
    }
}

void Llama::load(const GGUFFile& file, HParams& hp, TensorBinder& bind) {
    read_hparams(file, hp);
    hp_ = hp;
    TESSERA_CHECK_AS(Unsupported, !bind.has("blk.0.ffn_gate_inp.weight"),
                  "%s: llama mixture-of-experts files (blk.N.ffn_gate_inp) are not supported", file.path().c_str());

    const Dim embd{hp.n_embd, "n_embd (llama.embedding_length)"};
    const Dim vocab{hp.n_vocab, "n_vocab"};
    const Dim ff{hp.n_ff, "n_ff (llama.feed_forward_length)"};
    const Dim q_out{hp.n_head * hp.head_dim_k, "n_head * head_dim (llama.attention.head_count)"};
    const Dim k_out{hp.n_head_kv * hp.head_dim_k, "n_head_kv * head_dim (llama.attention.head_count_kv)"};
    const Dim v_out{hp.n_head_kv * hp.head_dim_v, "n_head_kv * head_dim_v (llama.attention.head_count_kv)"};
    const Dim o_in{hp.n_head * hp.head_dim_v, "n_head * head_dim_v (llama.attention.head_count)"};

    tok_embd_ = bind.require("token_embd.weight", {embd, vocab});
    output_norm_ = bind.require("output_norm.weight", {embd});
    output_ = bind.optional("output.weight", {embd, vocab});
    const bool tied = output_ == nullptr;
    if (tied) output_ = tok_embd_;
    rope_freqs_ = bind.optional("rope_freqs.weight", {{rope_.n_dims / 2, "rope.dimension_count / 2"}});

    layers_.resize(size_t(hp.n_layer));
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        LlamaLayer& L = layers_[size_t(il)];
        L.attn_norm = bind.require(p + "attn_norm.weight", {embd});
        L.wq = bind.require(p + "attn_q.weight", {embd, q_out});
        L.wk = bind.require(p + "attn_k.weight", {embd, k_out});
        L.wv = bind.require(p + "attn_v.weight", {embd, v_out});
        L.wo = bind.require(p + "attn_output.weight", {o_in, embd});
        L.bq = bind.optional(p + "attn_q.bias", {q_out});
        L.bk = bind.optional(p + "attn_k.bias", {k_out});
        L.bv = bind.optional(p + "attn_v.bias", {v_out});
        L.bo = bind.optional(p + "attn_output.bias", {embd});
        L.ffn_norm = bind.require(p + "ffn_norm.weight", {embd});
        L.ffn_gate = bind.require(p + "ffn_gate.weight", {embd, ff});
        L.ffn_up = bind.require(p + "ffn_up.weight", {embd, ff});
        L.ffn_down = bind.require(p + "ffn_down.weight", {ff, embd});
        L.ffn_gate_b = bind.optional(p + "ffn_gate.bias", {ff});
        L.ffn_up_b = bind.optional(p + "ffn_up.bias", {ff});
        L.ffn_down_b = bind.optional(p + "ffn_down.bias", {embd});
    }

    // Decode reads every weight once, except the embedding table: one row, unless it is also the output.
    size_t bytes = tok_embd_->row_bytes() + output_norm_->nbytes() + (tied ? tok_embd_->nbytes() : output_->nbytes());
    for (const LlamaLayer& L : layers_)
        for (Tensor* t : {L.attn_norm, L.wq, L.wk, L.wv, L.wo, L.bq, L.bk, L.bv, L.bo, L.ffn_norm, L.ffn_gate,
                          L.ffn_up, L.ffn_down, L.ffn_gate_b, L.ffn_up_b, L.ffn_down_b})
            if (t) bytes += t->nbytes();
    decode_bytes_ = bytes;
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

Tensor* add_bias(Context& ctx, Tensor* x, Tensor* bias) { return bias ? add(ctx, x, bias) : x; }

Tensor* Llama::build(BatchGraph& b) const {
    Context& ctx = b.ctx;
    const int64_t n = b.n_tokens;
    const HParams& hp = hp_;
    AttentionSpec spec;
    spec.scale = attn_scale_;
    spec.window = window_;
    spec.causal = true;

    Tensor* x = get_rows(ctx, tok_embd_, b.tokens);  // [n_embd, n]
    for (int il = 0; il < int(layers_.size()); ++il) {
        const LlamaLayer& L = layers_[size_t(il)];

        // ---- self-attention ----
        Tensor* h = mul(ctx, rms_norm(ctx, x, hp.norm_eps), L.attn_norm);
        Tensor* q = add_bias(ctx, mul_mat(ctx, L.wq, h), L.bq);
        Tensor* k = add_bias(ctx, mul_mat(ctx, L.wk, h), L.bk);
        Tensor* v = add_bias(ctx, mul_mat(ctx, L.wv, h), L.bv);
        q = rope(ctx, reshape_3d(ctx, q, hp.head_dim_k, hp.n_head, n), b.positions, rope_, rope_freqs_);
        k = rope(ctx, reshape_3d(ctx, k, hp.head_dim_k, hp.n_head_kv, n), b.positions, rope_, rope_freqs_);
        b.store_kv(il, k, v);
        Tensor* attn = attention(ctx, q, b.cache_k(il), b.cache_v(il), b.positions, b.cache_positions(il), spec);
        attn = reshape_2d(ctx, attn, hp.head_dim_v * hp.n_head, n);
        x = add(ctx, x, add_bias(ctx, mul_mat(ctx, L.wo, attn), L.bo));

        // ---- feed-forward: down(silu(gate(h)) * up(h)) ----
        h = mul(ctx, rms_norm(ctx, x, hp.norm_eps), L.ffn_norm);
        Tensor* gate = add_bias(ctx, mul_mat(ctx, L.ffn_gate, h), L.ffn_gate_b);
        Tensor* up = add_bias(ctx, mul_mat(ctx, L.ffn_up, h), L.ffn_up_b);
        Tensor* down = add_bias(ctx, mul_mat(ctx, L.ffn_down, swiglu(ctx, gate, up)), L.ffn_down_b);
        x = add(ctx, x, down);
    }

    x = b.select_output_rows(x);
    x = mul(ctx, rms_norm(ctx, x, hp.norm_eps), output_norm_);
    return mul_mat(ctx, output_, x);  // [n_vocab, n or 1]
}

}  // namespace

std::unique_ptr<Architecture> make_llama_architecture() { return std::make_unique<Llama>(); }

}  // namespace tessera
