// Google's Gemma family as llama.cpp's GGUF files describe it:
//   gemma   (keys gemma.*):  Llama-like blocks with GELU-gated FFN (GEGLU), embeddings scaled by
//                            sqrt(n_embd), head dim from attention.key_length, NeoX RoPE, output
//                            tied to the token embeddings.
//   gemma2  (keys gemma2.*): adds RMSNorms after attention and after the FFN, attention logit
//                            softcapping, final logit softcapping, and sliding-window attention on
//                            even layers (odd layers global).
//   gemma3  (keys gemma3.*): like gemma2 without softcaps, plus RMSNorm on each q and k head; five
//                            window layers (RoPE base 10000) to one global layer (the file's RoPE
//                            base and linear scaling).
// The converter already stored the norm weights as (1 + w), so they are used as stored.
#pragma once
#include <memory>

#include "models/model.h"

namespace tessera {

std::unique_ptr<Architecture> make_gemma_architecture();
std::unique_ptr<Architecture> make_gemma2_architecture();
std::unique_ptr<Architecture> make_gemma3_architecture();

}  // namespace tessera
