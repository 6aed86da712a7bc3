// Ops are small free functions that add a node to a Context and return it.
// Shapes are checked here, at build time: a mismatch throws tessera::Error
// naming the op and the shapes. An op's parameters are stored in the node by
// its builder and read back through its accessor here (rope_params(node),
// attention_spec(node), ...): backends never decode Tensor::params by slot.
//
// Conventions (ggml's): ne[0] is the innermost, contiguous dim. A matrix of
// n rows of k elements has ne = [k, n].
#pragma once
#include <array>

#include "core/graph.h"

namespace tessera {

// ---- views (no copy, no compute) ----
// General view: shape ne, strides nb, at byte offset into a's storage.
Tensor* view(Context& ctx, Tensor* a, std::array<int64_t, 4> ne, std::array<size_t, 4> nb, size_t offset);
Tensor* view_1d(Context& ctx, Tensor* a, int64_t ne0, size_t offset);
Tensor* view_2d(Context& ctx, Tensor* a, int64_t ne0, int64_t ne1, size_t nb1, size_t offset);
Tensor* view_3d(Context& ctx, Tensor* a, int64_t ne0, int64_t ne1, int64_t ne2, size_t nb1, size_t nb2, size_t offset);
// Reshape needs a contiguous a; element count must match.
Tensor* reshape(Context& ctx, Tensor* a, std::array<int64_t, 4> ne);
Tensor* reshape_2d(Context& ctx, Tensor* a, int64_t ne0, int64_t ne1);
Tensor* reshape_3d(Context& ctx, Tensor* a, int64_t ne0, int64_t ne1, int64_t ne2);
// permute(a, p): source dim i becomes result dim p[i] (ggml's convention).
Tensor* permute(Context& ctx, Tensor* a, int p0, int p1, int p2, int p3);
Tensor* transpose(Context& ctx, Tensor* a);  // swaps dims 0 and 1

// ---- data movement ----
Tensor* cont(Context& ctx, Tensor* a);                // contiguous copy, same type
Tensor* cast(Context& ctx, Tensor* a, DType type);    // contiguous copy converted to type (op Cont, result type differs)
// Writes a (F32) into b's storage converting to b's type (F32, F16, BF16, Q8_0...).
// b is usually a view into a cache. Returns a node aliasing b; expand it before readers of b.
Tensor* cpy(Context& ctx, Tensor* a, Tensor* b);
// Scatter: row i of a (F32 [ne0, n], rows contiguous) is converted into row rows[i] of b ([ne0, n_rows],
// F32, F16, BF16 or Q8_0, rows of whole blocks, any row stride): the KV cache write of a batch whose tokens
// land in cells that are not side by side (several sequences). rows I32 [n], distinct, each in [0, n_rows):
// an id outside, or repeated, is an error at compute. Returns a node aliasing b, like cpy.
Tensor* set_rows(Context& ctx, Tensor* a, Tensor* b, Tensor* rows);
// table [ne0, n_rows] of any type, ids I32 [n] -> F32 [ne0, n]. An id outside [0, n_rows) is an error at compute.
Tensor* get_rows(Context& ctx, Tensor* table, Tensor* ids);
// Joins a and b along dim; all other dims equal.
Tensor* concat(Context& ctx, Tensor* a, Tensor* b, int dim);
int concat_dim(const Tensor& node);

// ---- matrix products ----
// a [k, n, a2, a3] (any type, rows contiguous) x b [k, m, b2, b3] (F32, any strides)
//   -> F32 [n, m, b2, b3], with a broadcast over dims 2, 3 (b2 % a2 == 0, b3 % a3 == 0).
// out[i, j] = dot(row i of a, row j of b).
Tensor* mul_mat(Context& ctx, Tensor* a, Tensor* b);
// Mixture of experts: experts [k, n, n_expert], b [k, b1, m] (b1 == 1 broadcasts, else b1 == n_used),
// ids I32 [n_used, m] -> F32 [n, n_used, m]; out[:, e, t] = experts[ids[e, t]] x b[:, e or 0, t].
Tensor* mul_mat_id(Context& ctx, Tensor* experts, Tensor* b, Tensor* ids);

// ---- elementwise (F32 out; b broadcasts over a: a.ne[i] % b.ne[i] == 0) ----
Tensor* add(Context& ctx, Tensor* a, Tensor* b);
Tensor* mul(Context& ctx, Tensor* a, Tensor* b);
Tensor* div(Context& ctx, Tensor* a, Tensor* b);
Tensor* scale(Context& ctx, Tensor* a, float s);
Tensor* silu(Context& ctx, Tensor* a);
Tensor* gelu(Context& ctx, Tensor* a);               // tanh approximation
Tensor* gelu_erf(Context& ctx, Tensor* a);           // exact, with erf
Tensor* sigmoid(Context& ctx, Tensor* a);
Tensor* softcap(Context& ctx, Tensor* a, float cap); // cap * tanh(a / cap)
Tensor* swiglu(Context& ctx, Tensor* gate, Tensor* up);  // silu(gate) * up, same shapes
Tensor* geglu(Context& ctx, Tensor* gate, Tensor* up);   // gelu(gate) * up (tanh form)
// The one number an elementwise node takes: scale's s, softcap's cap; 0 for the others.
float elementwise_param(const Tensor& node);
// gpt-oss's SwiGLU: x = min(gate, limit), y = clamp(up, -limit, limit), out = x sigmoid(alpha x) (y + 1).
// Same shapes; limit > 0.
Tensor* swiglu_clamped(Context& ctx, Tensor* gate, Tensor* up, float alpha, float limit);
struct SwigluClamp {
    float alpha;
    float limit;
};
SwigluClamp swiglu_clamped_params(const Tensor& node);

// ---- normalization over dim 0 (F32) ----
Tensor* rms_norm(Context& ctx, Tensor* a, float eps);  // a / sqrt(mean(a^2) + eps)
Tensor* norm(Context& ctx, Tensor* a, float eps);      // (a - mean) / sqrt(var + eps)
float norm_eps(const Tensor& node);                    // either's eps

// ---- rotary position embedding ----
enum RopeMode : int32_t { kRopeNormal = 0, kRopeNeox = 2 };  // pairs (2i, 2i+1) vs (i, i + n_dims/2)
struct RopeParams {
    int32_t n_dims = 0;         // rotated dims (<= head dim); the rest pass through
    int32_t mode = kRopeNormal;
    int32_t n_ctx_orig = 0;     // YaRN: original training context
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;    // 1 / linear scaling factor
    float ext_factor = 0.0f;    // YaRN ramp mix (0 = off)
    float attn_factor = 1.0f;   // scales cos/sin (YaRN mscale)
    float beta_fast = 32.0f;
    float beta_slow = 1.0f;
};
// x [head_dim, n_head, n_tokens], pos I32 [n_tokens], freq_factors F32 [n_dims/2] or null (divides theta).
// Rotation angle for pair i at position p: theta = p * freq_base^(-2i/n_dims) / freq_factor[i], then
// YaRN's mixing (core/rope_yarn.h, shared by every backend).
Tensor* rope(Context& ctx, Tensor* x, Tensor* pos, const RopeParams& p, Tensor* freq_factors = nullptr);
RopeParams rope_params(const Tensor& node);

// ---- softmax over dim 0: softmax(a * scale + mask) ----
// mask F32 [ne0, ne1] (or null) broadcast over dims 2, 3; -INFINITY entries exclude.
Tensor* softmax(Context& ctx, Tensor* a, Tensor* mask, float scale);
float softmax_scale(const Tensor& node);

// ---- reductions over dim 0 ----
Tensor* sum(Context& ctx, Tensor* a);     // F32 [1, ne1, ne2, ne3]
Tensor* mean(Context& ctx, Tensor* a);    // F32 [1, ne1, ne2, ne3]
Tensor* argmax(Context& ctx, Tensor* a);  // I32 [ne1, ne2, ne3, 1]; ties -> lowest index
// I32 [k, ne1, ne2, ne3]: indices of the k largest, largest first; ties -> lower index first.
Tensor* top_k(Context& ctx, Tensor* a, int k);
int top_k_count(const Tensor& node);

// ---- fused attention (tiled online softmax) ----
struct AttentionSpec {
    float scale = 1.0f;
    float softcap = 0.0f;  // 0 = none; else scores -> softcap * tanh(scores / softcap) before softmax
    int32_t window = 0;    // 0 = none; else query at position i sees keys j with i - window < j
    bool causal = true;    // keys j <= i only
    // Attention sinks (gpt-oss): F32 [n_head], one logit per query head that joins the softmax denominator
    // without a value row, so it takes part of the probability mass and adds nothing. Not scaled, not capped.
    // Null = none.
    Tensor* sinks = nullptr;
    // Several sequences in one batch (a server's slots): I32 [n_q], the sequence of each query, and I32
    // [n_kv], the sequence each cache cell holds. A query sees only its own sequence's cells. Both null =
    // one sequence (no such mask); both or neither.
    Tensor* q_seq = nullptr;
    Tensor* k_seq = nullptr;
};
// q [d_k, n_head, n_q] F32; k [d_k, n_kv_head, n_kv] and v [d_v, n_kv_head, n_kv] in F32, F16 or Q8_0,
// any strides with contiguous rows; q_pos I32 [n_q]; k_pos I32 [n_kv], a negative entry marks an empty
// cache slot that is never attended. Query head h reads KV head h / (n_head / n_kv_head).
// Key j is visible to query i iff k_pos[j] >= 0, (!causal || k_pos[j] <= q_pos[i]) and
// (window == 0 || q_pos[i] - k_pos[j] < window), and with sequences k_seq[j] == q_seq[i]. A row with no
// visible key yields zeros.
// With sinks, row (i, h) with visible scores s_j: m = max(max_j s_j, sink[h]),
//   out = sum_j exp(s_j - m) v_j / (sum_j exp(s_j - m) + exp(sink[h] - m)).
// -> F32 [d_v, n_head, n_q]. Sinks, when given, are the node's src[5]; q_seq and k_seq src[6] and src[7].
Tensor* attention(Context& ctx, Tensor* q, Tensor* k, Tensor* v, Tensor* q_pos, Tensor* k_pos,
                  const AttentionSpec& spec);
// The spec an attention node was built with. (A field added to AttentionSpec travels with it: the node
// keeps the whole struct. A tensor field, as sinks, is a source of the node and is read back from there.)
AttentionSpec attention_spec(const Tensor& node);

}  // namespace tessera
