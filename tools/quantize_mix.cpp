// llama.cpp's quantization mixes (the rules of its llama_tensor_get_type, for the file types tessera
// writes), restated: see mix_rules_help() for the same in words.
#include "tools/quantize_mix.h"

#include <strings.h>

#include "core/error.h"

namespace tessera::cli {

namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// More bits for the first and last eighth of the layers and every third layer in between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

}  // namespace

const std::vector<QuantTarget>& quant_targets() {
    // LLAMA_FTYPE numbers: MOSTLY_Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10,
    // Q3_K_M = 12, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17, Q6_K = 18, IQ4_NL = 25, IQ4_XS = 30,
    // MXFP4_MOE = 38.
    static const std::vector<QuantTarget> targets = {
        {"Q4_0", DType::Q4_0, 2},   {"Q4_1", DType::Q4_1, 3},   {"Q5_0", DType::Q5_0, 8},
        {"Q5_1", DType::Q5_1, 9},   {"Q8_0", DType::Q8_0, 7},   {"Q2_K", DType::Q2_K, 10},
        {"Q3_K_M", DType::Q3_K, 12}, {"Q4_K_S", DType::Q4_K, 14}, {"Q4_K_M", DType::Q4_K, 15},
        {"Q5_K_S", DType::Q5_K, 16}, {"Q5_K_M", DType::Q5_K, 17}, {"Q6_K", DType::Q6_K, 18},
        {"IQ4_NL", DType::IQ4_NL, 25}, {"IQ4_XS", DType::IQ4_XS, 30}, {"MXFP4_MOE", DType::MXFP4, 38},
    };
    return targets;
}

QuantTarget parse_quant_target(const std::string& name) {
    std::string n = name;
    if (strcasecmp(n.c_str(), "Q3_K") == 0) n = "Q3_K_M";
    if (strcasecmp(n.c_str(), "Q4_K") == 0) n = "Q4_K_M";
    if (strcasecmp(n.c_str(), "Q5_K") == 0) n = "Q5_K_M";
    for (const auto& t : quant_targets())
        if (strcasecmp(t.name.c_str(), n.c_str()) == 0) return t;
    std::string valid;
    for (const auto& t : quant_targets()) valid += (valid.empty() ? "" : ", ") + t.name;
    throw Error("unknown quantization type '" + name + "' (valid: " + valid + "; Q3_K, Q4_K, Q5_K mean the _M mixes)");
}

bool should_quantize(const std::string& name, int n_dims) {
    if (n_dims < 2 || !ends_with(name, "weight")) return false;
    if (contains(name, "_norm.weight") || contains(name, "ffn_gate_inp.weight")) return false;
    if (name == "position_embd.weight" || name == "token_types.weight") return false;
    return true;
}

DType mix_type(const QuantTarget& t, const MixContext& ctx, MixCounters& c, const std::string& name, int64_t ne2) {
    const uint32_t f = t.file_type;
    enum : uint32_t {
        Q2_K = 10, Q3_K_M = 12, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17, IQ4_NL = 25, IQ4_XS = 30,
        MXFP4_MOE = 38
    };
    const bool iq4 = f == IQ4_NL || f == IQ4_XS;
    DType type = t.base;
    const bool is_output = name == "output.weight" || (!ctx.has_output && name == "token_embd.weight");
    if (ctx.pure) return type;
    const int n_gqa = ctx.n_head_kv > 0 ? ctx.n_head / ctx.n_head_kv : 1;
    if (f == MXFP4_MOE) return ne2 > 1 ? DType::MXFP4 : DType::Q8_0;  // experts MXFP4, everything else Q8_0
    if (is_output) {
        // The output matrix is the most sensitive: Q6_K unless the whole file is Q8_0 anyway.
        if (t.base != DType::Q8_0) type = DType::Q6_K;
    } else if (contains(name, "attn_v.weight")) {
        const int i = c.i_attn_v++, n = ctx.n_attn_v;
        if (f == Q2_K) type = n_gqa >= 4 ? DType::Q4_K : DType::Q3_K;
        else if (f == Q3_K_M) type = i < 2 ? DType::Q5_K : DType::Q4_K;
        else if (iq4 && n_gqa >= 4) type = DType::Q5_K;
        else if ((f == Q4_K_M || f == Q5_K_M) && use_more_bits(i, n)) type = DType::Q6_K;
        else if (f == Q4_K_S && i < 4) type = DType::Q5_K;
    } else if (contains(name, "ffn_down")) {
        const int i = c.i_ffn_down++, n = ctx.n_ffn_down;
        if (f == Q2_K) type = DType::Q3_K;
        else if (f == Q3_K_M) type = i < n / 16 ? DType::Q5_K : DType::Q4_K;
        else if ((f == Q4_K_M || f == Q5_K_M) && use_more_bits(i, n)) type = DType::Q6_K;
        else if (iq4 && i < n / 8) type = DType::Q5_K;
        else if (f == Q4_K_S && i < n / 8) type = DType::Q5_K;
    } else if (contains(name, "attn_output.weight")) {
        if (ctx.n_expert == 8) {  // 8-expert MoE (Mixtral-like): attention is a small share, give it more bits
            if (f == Q2_K || f == Q3_K_M || f == Q4_K_S || f == Q4_K_M || iq4) type = DType::Q5_K;
        } else if (f == Q2_K) type = DType::Q3_K;
        else if (f == Q3_K_M) type = DType::Q4_K;
    } else if (contains(name, "attn_qkv.weight")) {
        if (f == Q3_K_M) type = DType::Q4_K;
        else if (f == Q4_K_M) type = DType::Q5_K;
        else if (f == Q5_K_M) type = DType::Q6_K;
    }
    (void)Q5_K_S;
    return type;
}

DType row_fallback(DType t, int64_t ne0) {
    const int64_t bs = type_traits(t).block_size;
    if (ne0 % bs == 0) return t;
    DType alt = DType::F16;
    switch (t) {
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::IQ4_XS: alt = DType::IQ4_NL; break;
        case DType::Q4_K: alt = DType::Q5_0; break;
        case DType::Q5_K: alt = DType::Q5_1; break;
        case DType::Q6_K: alt = DType::Q8_0; break;
        default: break;
    }
    if (alt != DType::F16 && ne0 % type_traits(alt).block_size != 0) alt = DType::F16;
    return alt;
}

const char* mix_rules_help() {
    return "Which tensors get which type (llama.cpp's rules for the same file types):\n"
           "  - Only 2-D '*.weight' tensors are quantized; norms, 1-D tensors (biases, scales), MoE routers\n"
           "    (ffn_gate_inp) stay as they are (F32).\n"
           "  - output.weight (token_embd.weight when the output is tied to it): Q6_K, except for Q8_0 files.\n"
           "  - Mixes, with 'more bits' layers = the first and last eighth of the layers and every third in between:\n"
           "      Q4_K_M / Q5_K_M: attn_v and ffn_down get Q6_K on 'more bits' layers; attn_qkv Q5_K / Q6_K.\n"
           "      Q4_K_S: attn_v Q5_K on the first 4 layers, ffn_down Q5_K on the first eighth.\n"
           "      Q3_K_M: attn_v Q5_K on the first 2 layers else Q4_K; ffn_down Q5_K on the first 16th else\n"
           "              Q4_K; attn_output and attn_qkv Q4_K.\n"
           "      Q2_K:   attn_v Q4_K (Q3_K with fewer than 4 query heads per kv head); ffn_down and\n"
           "              attn_output Q3_K.\n"
           "      IQ4_NL / IQ4_XS: attn_v Q5_K with 4 or more query heads per kv head; ffn_down Q5_K on the\n"
           "              first eighth.\n"
           "      With 8 experts (Mixtral-like), attn_output gets Q5_K in Q2_K, Q3_K_M, Q4_K_S, Q4_K_M, IQ4_*.\n"
           "    Q5_K_S and the 32-block types (Q4_0 ... Q8_0) use their base type everywhere but the output.\n"
           "  - MXFP4_MOE: stacked expert tensors (ffn_*_exps) MXFP4, every other quantized tensor Q8_0.\n"
           "  - Rows whose length is not a multiple of the block: Q2_K/Q3_K/IQ4_XS fall back to IQ4_NL,\n"
           "    Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; when even 32 does not divide the row, F16.\n"
           "  - --pure: every quantized tensor gets the base type (the output too).\n";
}

}  // namespace tessera::cli
