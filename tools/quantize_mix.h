// Which type each tensor gets when a model is quantized: llama.cpp's file types ("Q4_K_M", ...) and
// its per-tensor rules, so `tessera quantize` makes files with the same tensor types llama-quantize makes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"

namespace tessera::cli {

// One target as named on the command line.
struct QuantTarget {
    std::string name;    // canonical, e.g. "Q4_K_M"
    DType base;          // the type most tensors get
    uint32_t file_type;  // llama.cpp's LLAMA_FTYPE_MOSTLY_* number, written as general.file_type
};

// Accepted names (case-insensitive); "Q3_K", "Q4_K", "Q5_K" mean the _M mixes, as in llama-quantize.
const std::vector<QuantTarget>& quant_targets();
// Throws tessera::Error naming the valid targets when `name` is not one of them.
QuantTarget parse_quant_target(const std::string& name);

// What the rules need to know about the model as a whole.
struct MixContext {
    int n_attn_v = 0;      // number of attn_v.weight tensors (one per layer)
    int n_ffn_down = 0;    // number of ffn_down tensors
    int n_head = 0, n_head_kv = 0;
    int n_expert = 0;      // {arch}.expert_count (0 for dense models)
    bool has_output = false;  // an output.weight exists (else token_embd is the output matrix, tied)
    bool pure = false;        // --pure: every quantized tensor gets the base type
};

// Running counters over the tensors in file order (llama.cpp numbers attn_v / ffn_down by appearance).
struct MixCounters {
    int i_attn_v = 0, i_ffn_down = 0;
};

// True when the tensor is quantized at all: a 2-D (or more) "*.weight" that is not a norm, not a MoE
// router (ffn_gate_inp) and not a position/token-type embedding. Everything else is copied unchanged.
bool should_quantize(const std::string& name, int n_dims);

// The type for one quantized tensor, before the row-length fallback. ne2 > 1 marks a stacked-experts tensor
// (ffn_*_exps), which the MXFP4_MOE mix tells apart from the rest.
DType mix_type(const QuantTarget& t, const MixContext& ctx, MixCounters& counters, const std::string& name,
               int64_t ne2);

// The type actually used for rows of ne0 values: 256-block types need ne0 % 256 == 0 and fall back to a
// 32-block type (Q2_K/Q3_K/IQ4_XS -> IQ4_NL, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0); 32-block types need
// ne0 % 32 == 0, else F16.
DType row_fallback(DType t, int64_t ne0);

// The text for --help: the rules above in words.
const char* mix_rules_help();

}  // namespace tessera::cli
