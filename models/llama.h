// Llama-shaped decoders as llama.cpp's GGUF files describe them (keys <arch>.*, tensors token_embd /
// blk.N.{attn_norm, attn_q, attn_k, attn_v (or attn_qkv), attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down
// (or ffn_up holding gate | up), or the routed experts ffn_gate_inp, ffn_{gate,up,down}_exps} / output_norm /
// output). One builder serves every family that differs from Llama only in the switches below; a new such
// family is a LlamaTraits entry in models/llama_families.cpp and one line in models/architectures.cpp.
#pragma once
#include <memory>

#include "models/model.h"

namespace tessera {

struct LlamaTraits {
    const char* arch = "llama";       // general.architecture, and the prefix of its keys
    int32_t rope_mode = kRopeNormal;  // pairs (2i, 2i+1), or kRopeNeox (i, i + n_dims/2)
    bool qk_norm = false;             // RMSNorm over each q and k head (attn_q_norm / attn_k_norm) before RoPE
    bool fused_qkv = false;           // attn_qkv: rows q | k | v
    bool fused_gate_up = false;       // ffn_up: rows gate | up (no ffn_gate)
    bool moe = false;                 // routed experts: softmax over all, top k, weights renormalised
    bool sliding_window = true;       // <arch>.attention.sliding_window applies (phi3: read, then off)
    bool long_rope = false;           // rope_factors_long / rope_factors_short (Phi-3's LongRoPE)
    int64_t n_ctx_train = 2048;       // <arch>.context_length when absent
};

std::unique_ptr<Architecture> make_llama_like_architecture(const LlamaTraits& traits);

std::unique_ptr<Architecture> make_llama_architecture();
std::unique_ptr<Architecture> make_qwen2_architecture();
std::unique_ptr<Architecture> make_qwen3_architecture();
std::unique_ptr<Architecture> make_qwen3moe_architecture();
std::unique_ptr<Architecture> make_phi3_architecture();

}  // namespace tessera
