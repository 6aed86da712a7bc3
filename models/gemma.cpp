// Gemma, Gemma 2 and Gemma 3 (text): one forward pass with three switches.
//
// Per block:  h = RMSNorm(x) * attn_norm
//             q, k, v = h Wq, h Wk, h Wv           (heads of key_length / value_length)
//             [gemma3] q, k = RMSNorm(q) * q_norm, RMSNorm(k) * k_norm   (per head)
//             q, k = RoPE_neox(q), RoPE_neox(k)   (per-layer base/scale for gemma3)
//             q = q * attn_scale
//             a = attention(q, K, V)              (window on window layers; softcap for gemma2)
//             a = a Wo;  [gemma2/3] a = RMSNorm(a) * post_attention_norm
//             x = x + a
//             f = down(gelu(gate(RMSNorm(x) * ffn_norm)) * up(...))
//             [gemma2/3] f = RMSNorm(f) * post_ffw_norm
//             x = x + f
// Then RMSNorm(x) * output_norm, the output projection (tied to token_embd unless the file has
// output.weight) and, for gemma2 (and window-less gemma3 files that ask for it), the final logit softcap.
// Facts follow llama.cpp's graphs; the code is ours.
#include "models/gemma.h"

#include <cmath>

#include "core/error.h"
#include "models/decoder_hparams.h"

namespace tessera {

namespace {

enum class Variant { Gemma, Gemma2, Gemma3 };

const char* variant_name(Variant v) {
    switch (v) {
        case Variant::Gemma: return "gemma";
        case Variant::Gemma2: return "gemma2";
        case Variant::Gemma3: return "gemma3";
    }
    return "?";
}

struct GemmaLayer {
    Tensor *attn_norm, *wq, *wk, *wv, *wo;
    Tensor *q_norm = nullptr, *k_norm = nullptr;  // gemma3
    Tensor* post_attn_norm = nullptr;             // gemma2/3
    Tensor *ffn_norm, *ffn_gate, *ffn_up, *ffn_down;
    Tensor* post_ffn_norm = nullptr;  // gemma2/3
    bool window = false;              // sliding-window layer
};

class Gemma final : public Architecture {
public:
    explicit Gemma(Variant v) : variant_(v) {}
    const char* name() const override { return variant_name(variant_); }
    void load(const GGUFFile& file, HParams& hp, TensorBinder& bind) override;
    std::vector<LayerCache> cache_layout(const HParams& hp) const override;
    Tensor* build(BatchGraph& b) const override;

private:
    void read_hparams(const GGUFFile& file, HParams& hp);
    bool is_window_layer(int64_t il) const;

    Variant variant_;
    HParams hp_;
    int32_t window_ = 0;       // sliding window (0: every layer global)
    float attn_softcap_ = 0;   // gemma2: scores -> c tanh(scores / c)
    float final_softcap_ = 0;  // gemma2: logits -> c tanh(logits / c)
    float attn_scale_ = 1;     // applied to q before attention (llama.cpp's f_attention_scale)
    RopeParams rope_global_;   // full-attention layers (every layer for gemma, gemma2)
    RopeParams rope_window_;   // window layers
    Tensor* tok_embd_ = nullptr;
    Tensor* output_norm_ = nullptr;
    Tensor* output_ = nullptr;
    std::vector<GemmaLayer> layers_;
};

bool Gemma::is_window_layer(int64_t il) const {
    if (window_ <= 0) return false;
    switch (variant_) {
        case Variant::Gemma: return false;
        case Variant::Gemma2: return il % 2 == 0;  // even layers slide, odd layers are global
        case Variant::Gemma3: return il % 6 < 5;   // five window layers, then one global
    }
    return false;
}

void Gemma::read_hparams(const GGUFFile& file, HParams& hp) {
    const char* arch = variant_name(variant_);
    const std::string& path = file.path();
    HParamReader r(file, arch);
    DecoderDefaults defaults;
    defaults.n_ctx_train = 8192;
    defaults.norm_eps = 1e-6f;
    read_decoder_hparams(r, hp, defaults);

    // Sliding window: gemma2 defaults to 4096 (llama.cpp's default for files without the key);
    // gemma3 files always carry it; gemma has none.
    if (variant_ == Variant::Gemma2) window_ = read_sliding_window(r, 4096);
    if (variant_ == Variant::Gemma3) window_ = read_sliding_window(r, 0);

    // Softcaps: gemma2 always caps (defaults 50 / 30 as in llama.cpp). gemma3 caps the final logits only when
    // the file says so and has no sliding window: llama.cpp's sliding-window gemma3 graph never caps.
    if (variant_ == Variant::Gemma2) {
        attn_softcap_ = r.get_float("attn_logit_softcapping", 50.0f);
        final_softcap_ = r.get_float("final_logit_softcapping", 30.0f);
    } else if (variant_ == Variant::Gemma3) {
        final_softcap_ = window_ > 0 ? 0.0f : r.get_float("final_logit_softcapping", 0.0f);
    }
    TESSERA_CHECK(attn_softcap_ >= 0 && final_softcap_ >= 0, "%s: %s softcapping values must be >= 0", path.c_str(),
                  arch);

    // Attention scale: query_pre_attn_scalar is not in the GGUF; llama.cpp uses 1/sqrt(head_dim) except for
    // the 27B shapes (gemma2 with 46 layers, gemma3 with 62), which use 1/sqrt(n_embd / n_head).
    const bool is_27b = (variant_ == Variant::Gemma2 && hp.n_layer == 46) ||
                        (variant_ == Variant::Gemma3 && hp.n_layer == 62);
    attn_scale_ = is_27b ? 1.0f / std::sqrt(float(hp.n_embd / hp.n_head)) : 1.0f / std::sqrt(float(hp.head_dim_k));

    // RoPE: NeoX pairs. Global layers use the file's base and linear scaling.
    const RopeParams rp = read_rope_params(r, hp, kRopeNeox, {"none", "linear"});
    rope_global_ = rp;
    rope_window_ = rp;
    if (variant_ == Variant::Gemma3) {
        // Gemma 3's local layers keep the original RoPE: base 10000, no scaling.
        rope_window_.freq_base = 10000.0f;
        rope_window_.freq_scale = 1.0f;
    }
}

void Gemma::load(const GGUFFile& file, HParams& hp, TensorBinder& bind) {
    read_hparams(file, hp);
    hp_ = hp;
    const bool post_norms = variant_ != Variant::Gemma;
    const bool qk_norm = variant_ == Variant::Gemma3;

    const Dim embd{hp.n_embd, "n_embd (embedding_length)"};
    const Dim vocab{hp.n_vocab, "n_vocab"};
    const Dim ff{hp.n_ff, "n_ff (feed_forward_length)"};
    const Dim q_out{hp.n_head * hp.head_dim_k, "n_head * key_length"};
    const Dim k_out{hp.n_head_kv * hp.head_dim_k, "n_head_kv * key_length"};
    const Dim v_out{hp.n_head_kv * hp.head_dim_v, "n_head_kv * value_length"};
    const Dim o_in{hp.n_head * hp.head_dim_v, "n_head * value_length"};
    const Dim head_k{hp.head_dim_k, "key_length"};

    tok_embd_ = bind.require("token_embd.weight", {embd, vocab});
    output_norm_ = bind.require("output_norm.weight", {embd});
    output_ = bind.optional("output.weight", {embd, vocab});
    if (!output_) output_ = tok_embd_;

    layers_.resize(size_t(hp.n_layer));
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        GemmaLayer& L = layers_[size_t(il)];
        L.attn_norm = bind.require(p + "attn_norm.weight", {embd});
        L.wq = bind.require(p + "attn_q.weight", {embd, q_out});
        L.wk = bind.require(p + "attn_k.weight", {embd, k_out});
        L.wv = bind.require(p + "attn_v.weight", {embd, v_out});
        L.wo = bind.require(p + "attn_output.weight", {o_in, embd});
        if (qk_norm) {
            L.q_norm = bind.require(p + "attn_q_norm.weight", {head_k});
            L.k_norm = bind.require(p + "attn_k_norm.weight", {head_k});
        }
        if (post_norms) L.post_attn_norm = bind.require(p + "post_attention_norm.weight", {embd});
        L.ffn_norm = bind.require(p + "ffn_norm.weight", {embd});
        L.ffn_gate = bind.require(p + "ffn_gate.weight", {embd, ff});
        L.ffn_up = bind.require(p + "ffn_up.weight", {embd, ff});
        L.ffn_down = bind.require(p + "ffn_down.weight", {ff, embd});
        if (post_norms) L.post_ffn_norm = bind.require(p + "post_ffw_norm.weight", {embd});
        L.window = is_window_layer(il);
    }

}

std::vector<LayerCache> Gemma::cache_layout(const HParams& hp) const {
    std::vector<LayerCache> layout(size_t(hp.n_layer));
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        LayerCache& l = layout[size_t(il)];
        const bool window = is_window_layer(il);
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

Tensor* Gemma::build(BatchGraph& b) const {
    Context& ctx = b.ctx;
    const int64_t n = b.n_tokens;
    const HParams& hp = hp_;
    const float eps = hp.norm_eps;
    auto rms = [&](Tensor* t, Tensor* w) { return mul(ctx, rms_norm(ctx, t, eps), w); };

    // Token embeddings scaled by sqrt(n_embd).
    Tensor* x = scale(ctx, get_rows(ctx, tok_embd_, b.tokens), std::sqrt(float(hp.n_embd)));
    for (int il = 0; il < int(layers_.size()); ++il) {
        const GemmaLayer& L = layers_[size_t(il)];
        const RopeParams& rp = L.window ? rope_window_ : rope_global_;

        // ---- self-attention ----
        Tensor* h = rms(x, L.attn_norm);
        Tensor* q = reshape_3d(ctx, mul_mat(ctx, L.wq, h), hp.head_dim_k, hp.n_head, n);
        Tensor* k = reshape_3d(ctx, mul_mat(ctx, L.wk, h), hp.head_dim_k, hp.n_head_kv, n);
        Tensor* v = mul_mat(ctx, L.wv, h);
        if (L.q_norm) {
            q = rms(q, L.q_norm);  // RMSNorm over each head's dims
            k = rms(k, L.k_norm);
        }
        q = rope(ctx, q, b.positions, rp);
        k = rope(ctx, k, b.positions, rp);
        // The scale goes on q (as llama.cpp does) so the softcap sees scaled scores whatever the op's order.
        q = scale(ctx, q, attn_scale_);
        b.store_kv(il, k, v);
        AttentionSpec spec;
        spec.scale = 1.0f;
        spec.softcap = attn_softcap_;
        spec.window = L.window ? window_ : 0;
        spec.causal = true;
        Tensor* a = b.attention(il, q, spec);
        a = mul_mat(ctx, L.wo, reshape_2d(ctx, a, hp.head_dim_v * hp.n_head, n));
        if (L.post_attn_norm) a = rms(a, L.post_attn_norm);
        x = add(ctx, a, x);

        // ---- feed-forward: down(gelu(gate(h)) * up(h)) ----
        h = rms(x, L.ffn_norm);
        Tensor* f = geglu(ctx, mul_mat(ctx, L.ffn_gate, h), mul_mat(ctx, L.ffn_up, h));
        f = mul_mat(ctx, L.ffn_down, f);
        if (L.post_ffn_norm) f = rms(f, L.post_ffn_norm);
        x = add(ctx, f, x);
    }

    x = b.select_output_rows(x);
    x = rms(x, output_norm_);
    Tensor* logits = mul_mat(ctx, output_, x);  // [n_vocab, n or 1]
    if (final_softcap_ > 0) logits = softcap(ctx, logits, final_softcap_);
    return logits;
}

}  // namespace

std::unique_ptr<Architecture> make_gemma_architecture() { return std::make_unique<Gemma>(Variant::Gemma); }
std::unique_ptr<Architecture> make_gemma2_architecture() { return std::make_unique<Gemma>(Variant::Gemma2); }
std::unique_ptr<Architecture> make_gemma3_architecture() { return std::make_unique<Gemma>(Variant::Gemma3); }

}  // namespace tessera
