// A mixture-of-experts FFN layer as DeepSeek-V2/V3 route it (llama.cpp's facts):
//   logits = W_gate x (+ router bias, gpt-oss)          [n_expert] per token
//   probs  = softmax(logits) (V2, Qwen3-MoE) or sigmoid(logits) (V3); gpt-oss selects on the logits
//            and takes a softmax over the k selected logits only (SoftmaxWeight)
//   sel    = probs + exp_probs_b (V3's selection bias; selection only, never the weights)
//   group-limited routing (V3): experts form n_group groups; a group scores the sum of its two
//            best sel values; only the n_group_used best groups stay eligible
//   ids    = top-k(sel, n_expert_used)
//   w      = probs[ids]; optionally w /= sum(w); w *= weights_scale
//   out    = sum_j w_j * down_j(silu(gate_j x) * up_j x)    experts as 3-D tensors, mul_mat_id
//            (gpt-oss: per-expert biases on gate, up and down, and swiglu_clamped instead of silu * up)
// Only the selected experts' rows are read (mul_mat_id). Gathers of values by index are
// mul_mat_id / get_rows against small one-hot tables, so the whole routing stays in core ops.
#pragma once
#include <cstdint>
#include <memory>

#include "core/backend.h"
#include "core/ops.h"

namespace tessera {

enum class MoEGating : int32_t { Softmax = 1, Sigmoid = 2, SoftmaxWeight = 3 };  // llama.cpp's expert_gating_func ids

struct MoEConfig {
    int64_t n_expert = 0;
    int64_t n_expert_used = 0;
    int64_t n_group = 0;       // 0 or 1: no group-limited routing
    int64_t n_group_used = 0;
    MoEGating gating = MoEGating::Softmax;
    bool norm_weights = false;  // w /= sum(w) over the selected experts
    float weights_scale = 1.0f; // applied after normalization (0 or 1: none)
    float swiglu_limit = 0.0f;  // > 0: the experts use swiglu_clamped(gate, up, swiglu_alpha, limit) (gpt-oss)
    float swiglu_alpha = 1.702f;
};

struct MoEWeights {
    Tensor* gate_inp = nullptr;    // [n_embd, n_expert]
    Tensor* probs_bias = nullptr;  // [n_expert] or null
    Tensor* gate_exps = nullptr;   // [n_embd, n_ff_exp, n_expert]
    Tensor* up_exps = nullptr;     // [n_embd, n_ff_exp, n_expert]
    Tensor* down_exps = nullptr;   // [n_ff_exp, n_embd, n_expert]
    // Optional biases (gpt-oss): router [n_expert], experts [n_ff_exp, n_expert] / [n_embd, n_expert].
    Tensor* gate_inp_b = nullptr;
    Tensor *gate_exps_b = nullptr, *up_exps_b = nullptr, *down_exps_b = nullptr;
};

// The small constant tables the routing gathers with: identity matrices and a -1 scalar, in host
// memory owned here. Make one per model (they depend only on the config).
class MoERoutingTables {
public:
    explicit MoERoutingTables(const MoEConfig& cfg);
    Tensor* eye_expert = nullptr;     // [n_expert, 1, n_expert]: expert e's one "row" is one-hot e
    Tensor* eye_in_group = nullptr;   // [per_group, 1, per_group] (group routing only)
    Tensor* eye_group = nullptr;      // [n_group, n_group] (group routing only)
    Tensor* minus_one = nullptr;      // [1] = -1

private:
    Context ctx_;
    std::unique_ptr<HostBuffer> buffer_;
};

// Checks a config read from a file; throws Error naming `where` and the problem.
void validate_moe_config(const MoEConfig& cfg, const std::string& where);

// x: F32 [n_embd, n_tokens] -> F32 [n_embd, n_tokens] (routed experts only; add shared experts outside).
Tensor* moe_ffn(Context& ctx, Tensor* x, const MoEWeights& w, const MoEConfig& cfg, const MoERoutingTables& tables);

// The expert ids a routing picks, F32-free: I32 [n_expert_used, n_tokens] (exposed for tests).
Tensor* moe_select_experts(Context& ctx, Tensor* selection, const MoEConfig& cfg, const MoERoutingTables& tables);

}  // namespace tessera
