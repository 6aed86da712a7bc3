// make-model for the Gemma family and DeepSeek2: random-weight GGUF files in llama.cpp's layout for
// gemma, gemma2, gemma3 and deepseek2, at real shapes (gemma-2b, gemma2-2b, gemma3-1b, gemma3-4b,
// deepseek-v2-lite, deepseek-v3-small: V3's head geometry with fewer layers and experts) and tiny
// ones for tests and demos. Called from models/make_model.cpp's make_model().
#pragma once
#include <string>
#include <vector>

#include "models/make_model.h"

namespace tessera {

struct GemmaDeepSeekShape {
    std::string arch;  // gemma, gemma2, gemma3, deepseek2
    int64_t n_vocab = 1024, n_ctx = 512, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
    float norm_eps = 1e-6f, rope_base = 10000.0f;
    // gemma2 / gemma3
    int64_t window = 0;
    float attn_softcap = 0, final_softcap = 0;
    float rope_linear = 0;  // gemma3 global layers: linear scaling factor (0: none)
    // deepseek2
    int64_t q_lora = 0, kv_lora = 0, rope_dim = 0, nope_dim = 0, v_dim = 0;
    int64_t n_expert = 0, n_expert_used = 0, n_expert_shared = 0, n_ff_exp = 0, n_dense_lead = 0;
    int64_t n_group = 0, n_group_used = 0;
    int gating = 1;             // 1 softmax (V2), 2 sigmoid (V3)
    bool probs_bias = false;    // exp_probs_b (V3)
    bool weights_norm = false;
    float weights_scale = 1.0f;
    bool kv_b_layout = false;   // older single attn_kv_b instead of attn_k_b / attn_v_b
    float yarn_factor = 0;      // rope.scaling.type yarn with this factor (0: no scaling)
    int64_t yarn_orig_ctx = 4096;
    float yarn_log_mul = 0;     // 0.1 * mscale_all_dim, as the converter writes it
};

// Names of the presets this file makes ("gemma-2b", ..., "gemma3-tiny", "deepseek2-tiny", ...).
std::vector<std::string> gemma_deepseek_presets();
// True when `arch` is one of gemma, gemma2, gemma3, deepseek2, or `preset` is one of ours.
bool is_gemma_deepseek(const std::string& arch, const std::string& preset);
// The shape of a preset; `arch` + "tiny" resolves to that architecture's tiny preset. Throws Error.
GemmaDeepSeekShape gemma_deepseek_preset(const std::string& arch, const std::string& preset);
// Writes the file (tokenizer from options.vocab_path, else a synthesized SPM vocabulary of n_vocab).
MadeModel make_gemma_deepseek_model(const MakeModelOptions& options, const std::string& out_path);
MadeModel make_gemma_deepseek_model(const GemmaDeepSeekShape& shape, const MakeModelOptions& options,
                                    const std::string& out_path);

}  // namespace tessera
