#include "models/decoder_hparams.h"

#include <cmath>

#include "core/error.h"

namespace tessera {

int64_t read_vocab_size(const HParamReader& r) {
    const GGUFFile& file = r.file();
    int64_t n_vocab = r.get_int("vocab_size", 0);
    if (n_vocab == 0) {
        if (const GGUFValue* toks = file.find("tokenizer.ggml.tokens"); toks && toks->type == GGUFType::ARRAY)
            n_vocab = int64_t(toks->arr.size());
        else if (const auto* te = file.find_tensor("token_embd.weight"))
            n_vocab = te->ne[1];
    }
    TESSERA_CHECK(n_vocab > 0, "%s: cannot tell the vocabulary size (no %s, tokenizer.ggml.tokens or "
                  "token_embd.weight)", file.path().c_str(), r.key("vocab_size").c_str());
    return n_vocab;
}

void read_decoder_hparams(const HParamReader& r, HParams& hp, const DecoderDefaults& d) {
    const char* path = r.file().path().c_str();
    hp.n_embd = r.require_int("embedding_length");
    hp.n_layer = r.require_int("block_count");
    hp.n_ff = r.require_int("feed_forward_length");
    hp.n_head = r.require_int("attention.head_count");
    hp.n_head_kv = r.get_int("attention.head_count_kv", hp.n_head);
    hp.n_ctx_train = r.get_int("context_length", d.n_ctx_train);
    TESSERA_CHECK(hp.n_head_kv > 0 && hp.n_head % hp.n_head_kv == 0, "%s: %s %lld is not a multiple of %s %lld", path,
                  r.key("attention.head_count").c_str(), (long long)hp.n_head,
                  r.key("attention.head_count_kv").c_str(), (long long)hp.n_head_kv);
    const bool explicit_dims = r.has("attention.key_length") && r.has("attention.value_length");
    TESSERA_CHECK(explicit_dims || hp.n_embd % hp.n_head == 0, "%s: %s %lld is not a multiple of %s %lld", path,
                  r.key("embedding_length").c_str(), (long long)hp.n_embd, r.key("attention.head_count").c_str(),
                  (long long)hp.n_head);
    hp.head_dim_k = r.get_int("attention.key_length", hp.n_embd / hp.n_head);
    hp.head_dim_v = r.get_int("attention.value_length", hp.n_embd / hp.n_head);
    TESSERA_CHECK(hp.head_dim_k > 0 && hp.head_dim_v > 0, "%s: %s %lld and %s %lld must be > 0", path,
                  r.key("attention.key_length").c_str(), (long long)hp.head_dim_k,
                  r.key("attention.value_length").c_str(), (long long)hp.head_dim_v);
    hp.norm_eps = r.get_float("attention.layer_norm_rms_epsilon", d.norm_eps);
    TESSERA_CHECK(hp.norm_eps > 0 && std::isfinite(hp.norm_eps), "%s: %s %g must be > 0", path,
                  r.key("attention.layer_norm_rms_epsilon").c_str(), double(hp.norm_eps));
    hp.n_vocab = read_vocab_size(r);
}

int32_t read_sliding_window(const HParamReader& r, int32_t fallback) {
    const int64_t w = r.get_int("attention.sliding_window", fallback);
    TESSERA_CHECK(w >= 0 && w <= INT32_MAX, "%s: %s %lld must be >= 0", r.file().path().c_str(),
                  r.key("attention.sliding_window").c_str(), (long long)w);
    return int32_t(w);
}

RopeParams read_rope_params(const HParamReader& r, const HParams& hp, int32_t mode,
                            std::initializer_list<const char*> allowed, std::string* type_out) {
    const char* path = r.file().path().c_str();
    RopeParams rp;
    rp.mode = mode;
    const int64_t n_dims = r.get_int("rope.dimension_count", hp.head_dim_k);
    TESSERA_CHECK(n_dims > 0 && n_dims % 2 == 0 && n_dims <= hp.head_dim_k,
                  "%s: %s %lld must be even and in 1..head_dim %lld", path, r.key("rope.dimension_count").c_str(),
                  (long long)n_dims, (long long)hp.head_dim_k);
    rp.n_dims = int32_t(n_dims);
    rp.freq_base = r.get_float("rope.freq_base", 10000.0f);
    TESSERA_CHECK(rp.freq_base > 0 && std::isfinite(rp.freq_base), "%s: %s %g must be > 0", path,
                  r.key("rope.freq_base").c_str(), double(rp.freq_base));

    std::string type = r.get_str("rope.scaling.type", "");
    float factor = r.get_float("rope.scaling.factor", 0.0f);
    if (factor == 0.0f && r.has("rope.scale_linear")) {
        factor = r.get_float("rope.scale_linear", 0.0f);
        if (type.empty()) type = "linear";
    }
    if (type.empty()) type = "none";
    bool known = false;
    std::string list;
    for (const char* a : allowed) {
        known = known || type == a;
        list += (list.empty() ? "" : ", ") + std::string(a);
    }
    TESSERA_CHECK_AS(Unsupported, known, "%s: %s '%s' is not supported (%s)", path, r.key("rope.scaling.type").c_str(), type.c_str(),
                  list.c_str());
    TESSERA_CHECK(factor >= 0 && std::isfinite(factor), "%s: %s %g must be > 0", path,
                  r.key("rope.scaling.factor").c_str(), double(factor));
    if (type != "none" && factor > 0) rp.freq_scale = 1.0f / factor;
    const int64_t n_ctx_orig = r.get_int("rope.scaling.original_context_length", hp.n_ctx_train);
    TESSERA_CHECK(n_ctx_orig > 0 && n_ctx_orig <= INT32_MAX, "%s: %s %lld must be > 0", path,
                  r.key("rope.scaling.original_context_length").c_str(), (long long)n_ctx_orig);
    rp.n_ctx_orig = int32_t(n_ctx_orig);
    rp.attn_factor = r.get_float("rope.scaling.attn_factor", 1.0f);
    TESSERA_CHECK(rp.attn_factor > 0 && std::isfinite(rp.attn_factor), "%s: %s %g must be > 0", path,
                  r.key("rope.scaling.attn_factor").c_str(), double(rp.attn_factor));
    if (type == "yarn") {
        rp.ext_factor = r.get_float("rope.scaling.yarn_ext_factor", 1.0f);
        rp.attn_factor *= r.get_float("rope.scaling.yarn_attn_factor", 1.0f);
        rp.beta_fast = r.get_float("rope.scaling.yarn_beta_fast", 32.0f);
        rp.beta_slow = r.get_float("rope.scaling.yarn_beta_slow", 1.0f);
    }
    if (type_out) *type_out = type;
    return rp;
}

}  // namespace tessera
