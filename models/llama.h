// The Llama architecture as llama.cpp's GGUF files describe it (keys llama.*,
// tensors token_embd / blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,
// ffn_norm,ffn_gate,ffn_up,ffn_down} / output_norm / output).
#pragma once
#include <memory>

#include "models/model.h"

namespace tessera {

std::unique_ptr<Architecture> make_llama_architecture();

}  // namespace tessera
