// DeepSeek-V2 / V2-Lite / V3 / R1 (llama.cpp's architecture "deepseek2", keys deepseek2.*).
//
// Attention is MLA, always run in absorbed form: per token and layer the cache keeps only the
// normalized KV latent (kv_lora_rank) and the shared RoPE key (rope dim) in one row; queries are
// mapped into latent space through the K up-projection (attn_k_b), so attention is MQA with
// d_k = kv_lora + rope, d_v = kv_lora (V is a view of the same cache rows), and the output goes
// back through the V up-projection (attn_v_b). Files with the older single attn_kv_b are split
// into k_b / v_b at load. The softmax scale is that of the original heads,
// mscale^2 / sqrt(nope + rope), with DeepSeek's YaRN mscale when the file asks for YaRN.
//
// q comes through q-LoRA (attn_q_a, attn_q_a_norm, attn_q_b) or directly (attn_q), decided by
// which tensors the file has. FFN: leading dense layers, then MoE layers (models/moe.h) plus
// shared experts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "models/model.h"

namespace tessera {

std::unique_ptr<Architecture> make_deepseek2_architecture();

// Cache bytes per token for an MLA model (all layers) and what plain MHA caching of the same
// heads would need, both for `type` (used by the CLI's cache report and by tests).
struct MlaCacheFigures {
    size_t latent_bytes_per_token = 0;  // (kv_lora + rope) per layer
    size_t mha_bytes_per_token = 0;     // n_head * ((nope + rope) + v) per layer
};
MlaCacheFigures mla_cache_figures(int64_t n_layer, int64_t n_head, int64_t kv_lora, int64_t rope_dim,
                                  int64_t nope_dim, int64_t v_dim, DType type);

// DeepSeek's YaRN as the released models use it (mscale == mscale_all_dim): the rotary cos/sin keep
// magnitude 1, so the rope op's own (1 + 0.1 ln factor) is cancelled by rope_attn_factor; the softmax
// scale is mscale^2 / sqrt(d_k) with mscale = 1 + log_mul * ln(factor), log_mul = 0.1 * mscale_all_dim
// (what the converter writes as rope.scaling.yarn_log_multiplier). factor <= 1: no YaRN.
struct DeepSeekYarnScales {
    float rope_attn_factor = 1.0f;
    float kq_scale = 1.0f;
};
DeepSeekYarnScales deepseek_yarn_scales(float factor, float log_mul, int64_t d_k);

}  // namespace tessera
