// The Llama-shaped families, each as the switches that set it apart (facts from llama.cpp's graphs for
// these architectures; see models/llama.h for what each switch means).
#include "models/llama.h"

namespace tessera {

std::unique_ptr<Architecture> make_llama_architecture() { return make_llama_like_architecture(LlamaTraits{}); }

// Qwen2 / Qwen2.5 / DeepSeek-R1-Distill-Qwen: q/k/v biases (bound when present), NeoX RoPE.
std::unique_ptr<Architecture> make_qwen2_architecture() {
    LlamaTraits t;
    t.arch = "qwen2";
    t.rope_mode = kRopeNeox;
    return make_llama_like_architecture(t);
}

// Qwen3: per-head q/k RMS norms; the head dim comes from key_length, not n_embd / n_head.
std::unique_ptr<Architecture> make_qwen3_architecture() {
    LlamaTraits t;
    t.arch = "qwen3";
    t.rope_mode = kRopeNeox;
    t.qk_norm = true;
    return make_llama_like_architecture(t);
}

// Qwen3-MoE: Qwen3's attention with routed experts (no shared expert).
std::unique_ptr<Architecture> make_qwen3moe_architecture() {
    LlamaTraits t;
    t.arch = "qwen3moe";
    t.rope_mode = kRopeNeox;
    t.qk_norm = true;
    t.moe = true;
    return make_llama_like_architecture(t);
}

// Phi-3 / Phi-3.5 mini: fused attn_qkv and gate|up, NeoX RoPE with LongRoPE factors when the file has them.
// llama.cpp reads phi3.attention.sliding_window and then attends over the full context; so do we.
std::unique_ptr<Architecture> make_phi3_architecture() {
    LlamaTraits t;
    t.arch = "phi3";
    t.rope_mode = kRopeNeox;
    t.fused_qkv = true;
    t.fused_gate_up = true;
    t.sliding_window = false;
    t.long_rope = true;
    t.n_ctx_train = 4096;
    return make_llama_like_architecture(t);
}

}  // namespace tessera
