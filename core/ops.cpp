// Op builders: check shapes, create the node, record parameters.
#include "core/ops.h"

#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace tessera {

namespace {

std::string desc(const Tensor* t) {
    std::string s = t->name.empty() ? std::string(op_name(t->op)) : "'" + t->name + "'";
    return s + " " + type_name(t->type) + " " + t->shape_str();
}

[[noreturn]] void shape_error(const char* op, const std::string& why, const Tensor* a, const Tensor* b = nullptr) {
    std::string msg = std::string(op) + ": " + why + " (a = " + desc(a);
    if (b) msg += ", b = " + desc(b);
    throw Error(msg + ")");
}

void require(bool cond, const char* op, const std::string& why, const Tensor* a, const Tensor* b = nullptr) {
    if (!cond) shape_error(op, why, a, b);
}

void require_non_null(const Tensor* t, const char* op, const char* what) {
    TESSERA_CHECK(t != nullptr, "%s: %s is null", op, what);
}

// An op's parameters are one value or struct, kept bit for bit in the node's params (store_params) and
// read back by the op's accessor (load_params), which checks the node is that op.
template <class P>
void store_params(Tensor* t, const P& p) {
    static_assert(std::is_trivially_copyable_v<P> && sizeof(P) <= sizeof(Tensor::params),
                  "an op's parameters must fit Tensor::params");
    std::memcpy(t->params, &p, sizeof p);
}

template <class P>
P load_params(const Tensor& node, std::initializer_list<Op> ops, const char* accessor) {
    bool ok = false;
    for (Op op : ops) ok = ok || node.op == op;
    TESSERA_CHECK(ok, "%s: node '%s' is a %s", accessor, node.name.c_str(), op_name(node.op));
    P p;
    std::memcpy(&p, node.params, sizeof p);
    return p;
}


Tensor* make_view(Context& ctx, Op op, Tensor* a, const int64_t ne[4], const size_t nb[4], size_t offset) {
    Tensor* t = ctx.new_node(op, a->type, ne, {a});
    for (int i = 0; i < kMaxDims; ++i) t->nb[i] = nb[i];
    t->view_src = a;
    t->view_offset = offset;
    t->name = a->name.empty() ? "" : a->name + " (" + op_name(op) + ")";
    return t;
}

Tensor* unary(Context& ctx, Op op, Tensor* a) {
    require_non_null(a, op_name(op), "a");
    require(a->type == DType::F32, op_name(op), "input must be f32", a);
    return ctx.new_node(op, DType::F32, a->ne, {a});
}

Tensor* binary_broadcast(Context& ctx, Op op, Tensor* a, Tensor* b) {
    require_non_null(a, op_name(op), "a");
    require_non_null(b, op_name(op), "b");
    require(a->type == DType::F32 && b->type == DType::F32, op_name(op), "inputs must be f32", a, b);
    for (int i = 0; i < kMaxDims; ++i)
        require(b->ne[i] > 0 && a->ne[i] % b->ne[i] == 0, op_name(op), "b does not broadcast over a", a, b);
    return ctx.new_node(op, DType::F32, a->ne, {a, b});
}

}  // namespace

// ---- views ----

Tensor* view(Context& ctx, Tensor* a, std::array<int64_t, 4> ne, std::array<size_t, 4> nb, size_t offset) {
    require_non_null(a, "view", "a");
    Tensor probe;
    probe.type = a->type;
    for (int i = 0; i < 4; ++i) {
        probe.ne[i] = ne[i];
        probe.nb[i] = nb[i];
        require(ne[i] >= 1, "view", "dims must be >= 1", a);
    }
    // Bounds are checked against the storage owner, walking the chain of views to it.
    size_t base = offset;
    const Tensor* owner = a;
    while (owner->view_src) {
        base += owner->view_offset;
        owner = owner->view_src;
    }
    require(base + probe.nbytes() <= owner->nbytes(), "view", "view extends past its source's storage", a);
    return make_view(ctx, Op::View, a, ne.data(), nb.data(), offset);
}

Tensor* view_1d(Context& ctx, Tensor* a, int64_t ne0, size_t offset) {
    const size_t rb = row_bytes(a->type, ne0);
    return view(ctx, a, {ne0, 1, 1, 1}, {type_traits(a->type).block_bytes, rb, rb, rb}, offset);
}

Tensor* view_2d(Context& ctx, Tensor* a, int64_t ne0, int64_t ne1, size_t nb1, size_t offset) {
    return view(ctx, a, {ne0, ne1, 1, 1}, {type_traits(a->type).block_bytes, nb1, nb1 * size_t(ne1), nb1 * size_t(ne1)},
                offset);
}

Tensor* view_3d(Context& ctx, Tensor* a, int64_t ne0, int64_t ne1, int64_t ne2, size_t nb1, size_t nb2,
                size_t offset) {
    return view(ctx, a, {ne0, ne1, ne2, 1}, {type_traits(a->type).block_bytes, nb1, nb2, nb2 * size_t(ne2)}, offset);
}

Tensor* reshape(Context& ctx, Tensor* a, std::array<int64_t, 4> ne) {
    require_non_null(a, "reshape", "a");
    require(a->is_contiguous(), "reshape", "source must be contiguous", a);
    require(ne[0] * ne[1] * ne[2] * ne[3] == a->nelements(), "reshape",
            "element count changes (to [" + std::to_string(ne[0]) + ", " + std::to_string(ne[1]) + ", " +
                std::to_string(ne[2]) + ", " + std::to_string(ne[3]) + "])",
            a);
    Tensor probe;
    probe.type = a->type;
    for (int i = 0; i < 4; ++i) probe.ne[i] = ne[i];
    set_contiguous_strides(probe);
    return make_view(ctx, Op::Reshape, a, probe.ne, probe.nb, 0);
}

Tensor* reshape_2d(Context& ctx, Tensor* a, int64_t ne0, int64_t ne1) { return reshape(ctx, a, {ne0, ne1, 1, 1}); }
Tensor* reshape_3d(Context& ctx, Tensor* a, int64_t ne0, int64_t ne1, int64_t ne2) {
    return reshape(ctx, a, {ne0, ne1, ne2, 1});
}

Tensor* permute(Context& ctx, Tensor* a, int p0, int p1, int p2, int p3) {
    require_non_null(a, "permute", "a");
    const int p[4] = {p0, p1, p2, p3};
    bool seen[4] = {};
    for (int i = 0; i < 4; ++i) {
        TESSERA_CHECK(p[i] >= 0 && p[i] < 4 && !seen[p[i]], "permute: axes (%d, %d, %d, %d) are not a permutation",
                      p0, p1, p2, p3);
        seen[p[i]] = true;
    }
    int64_t ne[4];
    size_t nb[4];
    for (int i = 0; i < 4; ++i) {
        ne[p[i]] = a->ne[i];
        nb[p[i]] = a->nb[i];
    }
    Tensor* t = make_view(ctx, Op::Permute, a, ne, nb, 0);
    store_params(t, p);  // for a reader of the graph; the strides already are the permutation
    return t;
}

Tensor* transpose(Context& ctx, Tensor* a) {
    Tensor* t = permute(ctx, a, 1, 0, 2, 3);
    t->op = Op::Transpose;
    return t;
}

// ---- data movement ----

Tensor* cont(Context& ctx, Tensor* a) {
    require_non_null(a, "cont", "a");
    return ctx.new_node(Op::Cont, a->type, a->ne, {a});
}

Tensor* cast(Context& ctx, Tensor* a, DType type) {
    require_non_null(a, "cast", "a");
    require(a->ne[0] % type_traits(type).block_size == 0, "cast",
            std::string("row length is not a multiple of ") + type_name(type) + "'s block size", a);
    return ctx.new_node(Op::Cont, type, a->ne, {a});
}

Tensor* cpy(Context& ctx, Tensor* a, Tensor* b) {
    require_non_null(a, "cpy", "a");
    require_non_null(b, "cpy", "b");
    require(a->nelements() == b->nelements(), "cpy", "element counts differ", a, b);
    require(b->ne[0] % type_traits(b->type).block_size == 0, "cpy", "destination rows are not whole blocks", a, b);
    Tensor* t = ctx.new_node(Op::Cpy, b->type, b->ne, {a, b});
    for (int i = 0; i < 4; ++i) t->nb[i] = b->nb[i];
    t->view_src = b;
    t->view_offset = 0;
    return t;
}

Tensor* set_rows(Context& ctx, Tensor* a, Tensor* b, Tensor* rows) {
    require_non_null(a, "set_rows", "a");
    require_non_null(b, "set_rows", "b");
    require_non_null(rows, "set_rows", "rows");
    require(a->type == DType::F32 && a->nb[0] == sizeof(float), "set_rows", "a must be f32 with contiguous rows", a, b);
    require(a->ne[2] == 1 && a->ne[3] == 1 && b->ne[2] == 1 && b->ne[3] == 1, "set_rows", "a and b must be 2-D", a, b);
    require(a->ne[0] == b->ne[0], "set_rows", "row lengths differ", a, b);
    require(b->ne[0] % type_traits(b->type).block_size == 0 && b->nb[0] == type_traits(b->type).block_bytes,
            "set_rows", "destination rows are not whole blocks in place", a, b);
    require(rows->type == DType::I32 && rows->ne[0] == a->ne[1] && rows->nrows() == 1, "set_rows",
            "rows must be i32 [n] with one id per row of a", a, rows);
    Tensor* t = ctx.new_node(Op::SetRows, b->type, b->ne, {a, b, rows});
    for (int i = 0; i < 4; ++i) t->nb[i] = b->nb[i];
    t->view_src = b;
    t->view_offset = 0;
    return t;
}

Tensor* get_rows(Context& ctx, Tensor* table, Tensor* ids) {
    require_non_null(table, "get_rows", "table");
    require_non_null(ids, "get_rows", "ids");
    require(ids->type == DType::I32, "get_rows", "ids must be i32", table, ids);
    require(table->ne[2] == 1 && table->ne[3] == 1, "get_rows", "table must be 2-D", table, ids);
    require(ids->ne[1] == 1 && ids->ne[2] == 1 && ids->ne[3] == 1, "get_rows", "ids must be 1-D", table, ids);
    const int64_t ne[4] = {table->ne[0], ids->ne[0], 1, 1};
    return ctx.new_node(Op::GetRows, DType::F32, ne, {table, ids});
}

Tensor* concat(Context& ctx, Tensor* a, Tensor* b, int dim) {
    require_non_null(a, "concat", "a");
    require_non_null(b, "concat", "b");
    TESSERA_CHECK(dim >= 0 && dim < 4, "concat: dim %d out of range", dim);
    require(a->type == DType::F32 && b->type == DType::F32, "concat", "inputs must be f32", a, b);
    int64_t ne[4];
    for (int i = 0; i < 4; ++i) {
        if (i == dim) {
            ne[i] = a->ne[i] + b->ne[i];
        } else {
            require(a->ne[i] == b->ne[i], "concat", "dims other than " + std::to_string(dim) + " differ", a, b);
            ne[i] = a->ne[i];
        }
    }
    Tensor* t = ctx.new_node(Op::Concat, DType::F32, ne, {a, b});
    store_params(t, int32_t(dim));
    return t;
}

int concat_dim(const Tensor& node) { return load_params<int32_t>(node, {Op::Concat}, "concat_dim"); }

// ---- matrix products ----

Tensor* mul_mat(Context& ctx, Tensor* a, Tensor* b) {
    require_non_null(a, "mul_mat", "a");
    require_non_null(b, "mul_mat", "b");
    require(a->ne[0] == b->ne[0], "mul_mat", "inner dims (ne[0]) differ", a, b);
    require(b->type == DType::F32, "mul_mat", "b (activations) must be f32", a, b);
    require(a->nb[0] == type_traits(a->type).block_bytes, "mul_mat", "a's rows must be contiguous", a, b);
    require(b->ne[2] % a->ne[2] == 0 && b->ne[3] % a->ne[3] == 0, "mul_mat", "a does not broadcast over b", a, b);
    const int64_t ne[4] = {a->ne[1], b->ne[1], b->ne[2], b->ne[3]};
    return ctx.new_node(Op::MulMat, DType::F32, ne, {a, b});
}

Tensor* mul_mat_id(Context& ctx, Tensor* experts, Tensor* b, Tensor* ids) {
    require_non_null(experts, "mul_mat_id", "experts");
    require_non_null(b, "mul_mat_id", "b");
    require_non_null(ids, "mul_mat_id", "ids");
    require(experts->ne[0] == b->ne[0], "mul_mat_id", "inner dims (ne[0]) differ", experts, b);
    require(experts->ne[3] == 1, "mul_mat_id", "experts must be 3-D", experts, b);
    require(b->type == DType::F32 && ids->type == DType::I32, "mul_mat_id", "b must be f32 and ids i32", b, ids);
    require(ids->ne[1] == b->ne[2] && ids->ne[2] == 1 && ids->ne[3] == 1, "mul_mat_id",
            "ids must be [n_used, n_tokens] matching b's dim 2", b, ids);
    require(b->ne[1] == 1 || b->ne[1] == ids->ne[0], "mul_mat_id", "b's dim 1 must be 1 or n_used", b, ids);
    require(b->ne[3] == 1, "mul_mat_id", "b must be 3-D", b, ids);
    const int64_t ne[4] = {experts->ne[1], ids->ne[0], b->ne[2], 1};
    return ctx.new_node(Op::MulMatId, DType::F32, ne, {experts, b, ids});
}

// ---- elementwise ----

Tensor* add(Context& ctx, Tensor* a, Tensor* b) { return binary_broadcast(ctx, Op::Add, a, b); }
Tensor* mul(Context& ctx, Tensor* a, Tensor* b) { return binary_broadcast(ctx, Op::Mul, a, b); }
Tensor* div(Context& ctx, Tensor* a, Tensor* b) { return binary_broadcast(ctx, Op::Div, a, b); }

Tensor* scale(Context& ctx, Tensor* a, float s) {
    Tensor* t = unary(ctx, Op::Scale, a);
    store_params(t, s);
    return t;
}

Tensor* silu(Context& ctx, Tensor* a) { return unary(ctx, Op::Silu, a); }
Tensor* gelu(Context& ctx, Tensor* a) { return unary(ctx, Op::Gelu, a); }
Tensor* gelu_erf(Context& ctx, Tensor* a) { return unary(ctx, Op::GeluErf, a); }
Tensor* sigmoid(Context& ctx, Tensor* a) { return unary(ctx, Op::Sigmoid, a); }

Tensor* softcap(Context& ctx, Tensor* a, float cap) {
    TESSERA_CHECK(cap > 0.0f, "softcap: cap must be > 0 (got %g)", double(cap));
    Tensor* t = unary(ctx, Op::Softcap, a);
    store_params(t, cap);
    return t;
}

float elementwise_param(const Tensor& node) {
    if (node.op == Op::Scale || node.op == Op::Softcap)
        return load_params<float>(node, {Op::Scale, Op::Softcap}, "elementwise_param");
    return 0.0f;
}

static Tensor* glu(Context& ctx, Op op, Tensor* gate, Tensor* up) {
    require_non_null(gate, op_name(op), "gate");
    require_non_null(up, op_name(op), "up");
    require(gate->type == DType::F32 && up->type == DType::F32, op_name(op), "inputs must be f32", gate, up);
    require(gate->same_shape(*up), op_name(op), "gate and up shapes differ", gate, up);
    return ctx.new_node(op, DType::F32, gate->ne, {gate, up});
}

Tensor* swiglu(Context& ctx, Tensor* gate, Tensor* up) { return glu(ctx, Op::SwiGlu, gate, up); }
Tensor* geglu(Context& ctx, Tensor* gate, Tensor* up) { return glu(ctx, Op::GeGlu, gate, up); }
Tensor* swiglu_clamped(Context& ctx, Tensor* gate, Tensor* up, float alpha, float limit) {
    TESSERA_CHECK(limit > 0.0f && std::isfinite(limit) && std::isfinite(alpha),
                  "swiglu_clamped: limit must be > 0 and finite, alpha finite (got %g, %g)", double(limit),
                  double(alpha));
    Tensor* t = glu(ctx, Op::SwiGluClamped, gate, up);
    store_params(t, SwigluClamp{alpha, limit});
    return t;
}

SwigluClamp swiglu_clamped_params(const Tensor& node) {
    return load_params<SwigluClamp>(node, {Op::SwiGluClamped}, "swiglu_clamped_params");
}

// ---- normalization ----

Tensor* rms_norm(Context& ctx, Tensor* a, float eps) {
    Tensor* t = unary(ctx, Op::RmsNorm, a);
    store_params(t, eps);
    return t;
}

Tensor* norm(Context& ctx, Tensor* a, float eps) {
    Tensor* t = unary(ctx, Op::Norm, a);
    store_params(t, eps);
    return t;
}

float norm_eps(const Tensor& node) { return load_params<float>(node, {Op::RmsNorm, Op::Norm}, "norm_eps"); }

// ---- rope ----

Tensor* rope(Context& ctx, Tensor* x, Tensor* pos, const RopeParams& p, Tensor* freq_factors) {
    require_non_null(x, "rope", "x");
    require_non_null(pos, "rope", "pos");
    require(x->type == DType::F32, "rope", "x must be f32", x);
    require(pos->type == DType::I32 && pos->ne[0] == x->ne[2] && pos->nrows() == 1, "rope",
            "pos must be i32 [n_tokens] with n_tokens = x's dim 2", x, pos);
    TESSERA_CHECK(p.n_dims > 0 && p.n_dims % 2 == 0 && p.n_dims <= x->ne[0],
                  "rope: n_dims %d must be even and in 1..%lld", p.n_dims, (long long)x->ne[0]);
    TESSERA_CHECK(p.mode == kRopeNormal || p.mode == kRopeNeox, "rope: unknown mode %d", p.mode);
    if (freq_factors)
        require(freq_factors->type == DType::F32 && freq_factors->ne[0] >= p.n_dims / 2, "rope",
                "freq_factors must be f32 with n_dims/2 entries", x, freq_factors);
    Tensor* t = ctx.new_node(Op::Rope, DType::F32, x->ne, {x, pos, freq_factors});
    store_params(t, p);
    return t;
}

RopeParams rope_params(const Tensor& node) { return load_params<RopeParams>(node, {Op::Rope}, "rope_params"); }

// ---- softmax ----

Tensor* softmax(Context& ctx, Tensor* a, Tensor* mask, float scale_) {
    require_non_null(a, "softmax", "a");
    require(a->type == DType::F32, "softmax", "input must be f32", a);
    if (mask)
        require(mask->type == DType::F32 && mask->ne[0] == a->ne[0] && mask->ne[1] >= a->ne[1] &&
                    mask->ne[2] == 1 && mask->ne[3] == 1,
                "softmax", "mask must be f32 [ne0, >= ne1] of a", a, mask);
    Tensor* t = ctx.new_node(Op::SoftMax, DType::F32, a->ne, {a, mask});
    store_params(t, scale_);
    return t;
}

float softmax_scale(const Tensor& node) { return load_params<float>(node, {Op::SoftMax}, "softmax_scale"); }

// ---- reductions ----

Tensor* sum(Context& ctx, Tensor* a) {
    require_non_null(a, "sum", "a");
    require(a->type == DType::F32, "sum", "input must be f32", a);
    const int64_t ne[4] = {1, a->ne[1], a->ne[2], a->ne[3]};
    return ctx.new_node(Op::Sum, DType::F32, ne, {a});
}

Tensor* mean(Context& ctx, Tensor* a) {
    require_non_null(a, "mean", "a");
    require(a->type == DType::F32, "mean", "input must be f32", a);
    const int64_t ne[4] = {1, a->ne[1], a->ne[2], a->ne[3]};
    return ctx.new_node(Op::Mean, DType::F32, ne, {a});
}

Tensor* argmax(Context& ctx, Tensor* a) {
    require_non_null(a, "argmax", "a");
    require(a->type == DType::F32 && a->ne[0] > 0, "argmax", "input must be non-empty f32", a);
    const int64_t ne[4] = {a->ne[1], a->ne[2], a->ne[3], 1};
    return ctx.new_node(Op::ArgMax, DType::I32, ne, {a});
}

Tensor* top_k(Context& ctx, Tensor* a, int k) {
    require_non_null(a, "top_k", "a");
    require(a->type == DType::F32, "top_k", "input must be f32", a);
    require(k >= 1 && k <= a->ne[0], "top_k", "k = " + std::to_string(k) + " is not in 1..ne[0]", a);
    const int64_t ne[4] = {k, a->ne[1], a->ne[2], a->ne[3]};
    Tensor* t = ctx.new_node(Op::TopK, DType::I32, ne, {a});
    store_params(t, int32_t(k));
    return t;
}

int top_k_count(const Tensor& node) { return load_params<int32_t>(node, {Op::TopK}, "top_k_count"); }

// ---- attention ----

Tensor* attention(Context& ctx, Tensor* q, Tensor* k, Tensor* v, Tensor* q_pos, Tensor* k_pos,
                  const AttentionSpec& spec) {
    require_non_null(q, "attention", "q");
    require_non_null(k, "attention", "k");
    require_non_null(v, "attention", "v");
    require_non_null(q_pos, "attention", "q_pos");
    require_non_null(k_pos, "attention", "k_pos");
    require(q->type == DType::F32, "attention", "q must be f32", q);
    auto cache_type_ok = [](DType t) { return t == DType::F32 || t == DType::F16 || t == DType::Q8_0; };
    require(cache_type_ok(k->type) && cache_type_ok(v->type), "attention", "k and v must be f32, f16 or q8_0", k, v);
    require(q->ne[0] == k->ne[0], "attention", "q and k head dims (ne[0]) differ", q, k);
    require(k->ne[1] == v->ne[1] && k->ne[2] == v->ne[2], "attention", "k and v differ in heads or length", k, v);
    require(k->ne[1] >= 1 && q->ne[1] % k->ne[1] == 0, "attention",
            "n_head (q dim 1) is not a multiple of n_kv_head (k dim 1)", q, k);
    require(q->ne[3] == 1 && k->ne[3] == 1 && v->ne[3] == 1, "attention", "inputs must be 3-D", q, k);
    require(q_pos->type == DType::I32 && q_pos->ne[0] == q->ne[2] && q_pos->nrows() == 1, "attention",
            "q_pos must be i32 [n_q]", q, q_pos);
    require(k_pos->type == DType::I32 && k_pos->ne[0] == k->ne[2] && k_pos->nrows() == 1, "attention",
            "k_pos must be i32 [n_kv]", k, k_pos);
    TESSERA_CHECK(spec.window >= 0, "attention: window %d must be >= 0", spec.window);
    TESSERA_CHECK(spec.softcap >= 0.0f, "attention: softcap %g must be >= 0", double(spec.softcap));
    if (spec.sinks)
        require(spec.sinks->type == DType::F32 && spec.sinks->ne[0] == q->ne[1] && spec.sinks->nrows() == 1 &&
                    spec.sinks->is_contiguous(),
                "attention", "sinks must be contiguous f32 [n_head]", q, spec.sinks);
    require((spec.q_seq == nullptr) == (spec.k_seq == nullptr), "attention",
            "q_seq and k_seq go together (both or neither)", q, k);
    if (spec.q_seq) {
        require(spec.q_seq->type == DType::I32 && spec.q_seq->ne[0] == q->ne[2] && spec.q_seq->nrows() == 1,
                "attention", "q_seq must be i32 [n_q]", q, spec.q_seq);
        require(spec.k_seq->type == DType::I32 && spec.k_seq->ne[0] == k->ne[2] && spec.k_seq->nrows() == 1,
                "attention", "k_seq must be i32 [n_kv]", k, spec.k_seq);
    }
    const int64_t ne[4] = {v->ne[0], q->ne[1], q->ne[2], 1};
    Tensor* t = ctx.new_node(Op::Attention, DType::F32, ne, {q, k, v, q_pos, k_pos});
    t->src[5] = spec.sinks;  // may be null with sequences after it
    t->src[6] = spec.q_seq;
    t->src[7] = spec.k_seq;
    // The tensors of the spec are sources of the node (so the graph orders and allocates them); the stored
    // spec holds no pointer, which a copied graph would leave pointing at the old tensor.
    AttentionSpec stored = spec;
    stored.sinks = stored.q_seq = stored.k_seq = nullptr;
    store_params(t, stored);
    return t;
}

AttentionSpec attention_spec(const Tensor& node) {
    AttentionSpec spec = load_params<AttentionSpec>(node, {Op::Attention}, "attention_spec");
    spec.sinks = node.src[5];
    spec.q_seq = node.src[6];
    spec.k_seq = node.src[7];
    return spec;
}

}  // namespace tessera
