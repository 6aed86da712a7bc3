// The architecture table. Adding an architecture is one line here (see models/model.h).
#include <functional>

#include "models/deepseek2.h"
#include "models/gemma.h"
#include "models/gpt_oss.h"
#include "models/llama.h"
#include "models/model.h"

namespace tessera {

namespace {

struct Entry {
    const char* name;
    std::unique_ptr<Architecture> (*make)();
};

const Entry kArchitectures[] = {
    {"llama", make_llama_architecture},
    {"qwen2", make_qwen2_architecture},
    {"qwen3", make_qwen3_architecture},
    {"qwen3moe", make_qwen3moe_architecture},
    {"phi3", make_phi3_architecture},
    {"gemma", make_gemma_architecture},
    {"gemma2", make_gemma2_architecture},
    {"gemma3", make_gemma3_architecture},
    {"deepseek2", make_deepseek2_architecture},
    {"gpt-oss", make_gpt_oss_architecture},
};

}  // namespace

std::unique_ptr<Architecture> make_architecture(const std::string& name) {
    for (const Entry& e : kArchitectures)
        if (name == e.name) return e.make();
    return nullptr;
}

std::vector<std::string> architecture_names() {
    std::vector<std::string> names;
    for (const Entry& e : kArchitectures) names.push_back(e.name);
    return names;
}

}  // namespace tessera
