// make-model for the Llama-shaped families and gpt-oss: random-weight GGUF files in llama.cpp's layout for
// qwen2, qwen3, qwen3moe, phi3 and gpt-oss at their real shapes (qwen2.5-0.5b, qwen3-0.6b,
// qwen3-30b-a3b-shape, phi3-mini, gpt-oss-20b-shape) and tiny ones for tests and demos. Tensors are made
// while the file is written, one at a time (GGUFWriter's producers), so a file larger than memory can be
// written. Called from models/make_model.cpp's make_model().
#pragma once
#include <string>
#include <vector>

#include "models/make_model.h"

namespace tessera {

struct FamilyShape {
    std::string arch;  // qwen2, qwen3, qwen3moe, phi3, gpt-oss
    int64_t n_vocab = 1024, n_ctx = 512, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
    float norm_eps = 1e-6f, rope_base = 10000.0f;
    bool tied_output = false;
    int64_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0;  // qwen3moe, gpt-oss
    int64_t window = 0;                                      // phi3 (stated, unused), gpt-oss (even layers)
    float yarn_factor = 0;                                   // gpt-oss: rope.scaling.type yarn
    int64_t yarn_orig_ctx = 4096;
};

std::vector<std::string> family_presets();
// True when `arch` is one of these families or `preset` is one of their presets.
bool is_family(const std::string& arch, const std::string& preset);
// A preset's shape; `arch` with preset "tiny" resolves to that family's tiny preset. Throws Error.
FamilyShape family_preset(const std::string& arch, const std::string& preset);
MadeModel make_family_model(const MakeModelOptions& options, const std::string& out_path);

}  // namespace tessera
