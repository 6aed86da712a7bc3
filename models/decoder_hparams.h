// The hyper-parameters every decoder-only file states, read once for every architecture under the file's own
// key prefix ("llama.", "qwen2.", "gpt-oss.", ...) with llama.cpp's key names and defaults, so that adding a
// family does not mean copying this reading (and its error messages) again. Errors name the file and the full key.
#pragma once
#include <initializer_list>

#include "models/model.h"

namespace tessera {

struct DecoderDefaults {
    int64_t n_ctx_train = 2048;  // <arch>.context_length when absent
    float norm_eps = 1e-5f;      // <arch>.attention.layer_norm_rms_epsilon when absent
};

// Fills hp's n_embd, n_layer, n_ff, n_head, n_head_kv, n_ctx_train, head_dim_k / head_dim_v (key_length /
// value_length, default n_embd / n_head), norm_eps and n_vocab, each checked before use.
void read_decoder_hparams(const HParamReader& r, HParams& hp, const DecoderDefaults& defaults = {});

// <arch>.vocab_size, else the length of tokenizer.ggml.tokens, else the rows of token_embd.weight.
int64_t read_vocab_size(const HParamReader& r);

// <arch>.attention.sliding_window (0 when absent), checked >= 0.
int32_t read_sliding_window(const HParamReader& r, int32_t fallback = 0);

// RoPE in `mode` over <arch>.rope.dimension_count dims (default head_dim_k) with <arch>.rope.freq_base and the
// scaling keys: rope.scaling.type (one of `allowed`), rope.scaling.factor (or the older rope.scale_linear; as in
// llama.cpp it applies unless the type is "none"), rope.scaling.original_context_length (default the training
// context), rope.scaling.attn_factor, and for YaRN the ext factor (1) and beta fast / slow (32 / 1).
// The scaling type read is returned in *type_out when given ("none" when the file names none).
RopeParams read_rope_params(const HParamReader& r, const HParams& hp, int32_t mode,
                            std::initializer_list<const char*> allowed = {"none", "linear", "yarn"},
                            std::string* type_out = nullptr);

}  // namespace tessera
