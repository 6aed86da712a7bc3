// OpenAI's gpt-oss as llama.cpp's GGUF files describe it (keys gpt-oss.*): attention with q/k/v/o biases and a
// learned sink logit per head (blk.N.attn_sinks), sliding-window attention on even layers and full attention on
// odd ones, NeoX RoPE with YaRN, and a routed MoE FFN (router bias, per-expert biases, top-k on the logits
// weighted by a softmax over the selected ones, the clamped SwiGLU). The norm before the FFN is stored as
// blk.N.post_attention_norm.
#pragma once
#include <memory>

#include "models/model.h"

namespace tessera {

std::unique_ptr<Architecture> make_gpt_oss_architecture();

}  // namespace tessera
