// `tessera demo`: one transformer block (Llama-shaped: rms_norm, q/k/v projections, rope, fused attention,
// output projection, residual, SwiGLU FFN, residual) with random weights, run on the cpu backend and on the
// reference backend (the oracle). Prints a few output values, how far the two backends differ, their
// times, and what the memory planner saved: its one buffer for all intermediates against one buffer each.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/ops.h"
#include "tools/args.h"
#include "tools/command.h"

namespace tessera::cli {

namespace {

struct BlockShape {
    int64_t n_embd = 512, n_head = 8, n_kv_head = 8, n_ff = 1536, seq = 64;
    DType wtype = DType::F16;
    int64_t head_dim() const { return n_embd / n_head; }
};

// The block's leaves: input, positions and weights. Built once; both backends' graphs read them.
struct BlockLeaves {
    Tensor *x, *pos, *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *w_gate, *w_up, *w_down;
};

BlockLeaves make_leaves(Context& ctx, const BlockShape& s) {
    const int64_t kv = s.n_kv_head * s.head_dim();
    BlockLeaves l;
    l.x = ctx.new_tensor(DType::F32, {s.n_embd, s.seq}, "x");
    l.pos = ctx.new_tensor(DType::I32, {s.seq}, "pos");
    l.attn_norm = ctx.new_tensor(DType::F32, {s.n_embd}, "attn_norm.weight");
    l.wq = ctx.new_tensor(s.wtype, {s.n_embd, s.n_embd}, "attn_q.weight");
    l.wk = ctx.new_tensor(s.wtype, {s.n_embd, kv}, "attn_k.weight");
    l.wv = ctx.new_tensor(s.wtype, {s.n_embd, kv}, "attn_v.weight");
    l.wo = ctx.new_tensor(s.wtype, {s.n_embd, s.n_embd}, "attn_output.weight");
    l.ffn_norm = ctx.new_tensor(DType::F32, {s.n_embd}, "ffn_norm.weight");
    l.w_gate = ctx.new_tensor(s.wtype, {s.n_embd, s.n_ff}, "ffn_gate.weight");
    l.w_up = ctx.new_tensor(s.wtype, {s.n_embd, s.n_ff}, "ffn_up.weight");
    l.w_down = ctx.new_tensor(s.wtype, {s.n_ff, s.n_embd}, "ffn_down.weight");
    return l;
}

// Gives every leaf storage in one host buffer and fills it: weights uniform in +-1/sqrt(fan_in) so
// activations keep their scale through the block, norms near 1, positions 0..seq-1.
std::unique_ptr<HostBuffer> fill_leaves(const BlockLeaves& l, uint64_t seed) {
    const std::vector<Tensor*> all = {l.x, l.pos, l.attn_norm, l.wq, l.wk, l.wv, l.wo, l.ffn_norm, l.w_gate, l.w_up,
                                      l.w_down};
    size_t total = 0;
    for (Tensor* t : all) total += (t->nbytes() + 63) / 64 * 64;
    auto buf = std::make_unique<HostBuffer>(total);
    size_t off = 0;
    std::mt19937_64 rng(seed);
    for (Tensor* t : all) {
        t->buffer = buf.get();
        t->data = static_cast<char*>(buf->base()) + off;
        t->flags |= kFlagInput;
        off += (t->nbytes() + 63) / 64 * 64;
        if (t == l.pos) {
            for (int64_t i = 0; i < t->ne[0]; ++i) t->data_as<int32_t>()[i] = int32_t(i);
            continue;
        }
        const bool is_norm = t == l.attn_norm || t == l.ffn_norm;
        const float r = t == l.x ? 1.0f : is_norm ? 0.1f : 1.0f / std::sqrt(float(t->ne[0]));
        std::uniform_real_distribution<float> dist(-r, r);
        std::vector<float> row(size_t(t->ne[0]));
        const TypeTraits& tr = type_traits(t->type);
        for (int64_t i = 0; i < t->nrows(); ++i) {
            for (float& v : row) v = (is_norm ? 1.0f : 0.0f) + dist(rng);
            tr.from_float(row.data(), static_cast<char*>(t->data) + size_t(i) * t->nb[1], t->ne[0]);
        }
    }
    return buf;
}

// out = x + attn(norm(x)); out = out + ffn(norm(out)).
Tensor* build_block(Context& ctx, const BlockLeaves& l, const BlockShape& s) {
    const int64_t hd = s.head_dim();
    const float eps = 1e-5f;
    Tensor* h = mul(ctx, rms_norm(ctx, l.x, eps), l.attn_norm);
    RopeParams rp;
    rp.n_dims = int32_t(hd);
    rp.freq_base = 10000.0f;
    Tensor* q = rope(ctx, reshape_3d(ctx, mul_mat(ctx, l.wq, h), hd, s.n_head, s.seq), l.pos, rp);
    Tensor* k = rope(ctx, reshape_3d(ctx, mul_mat(ctx, l.wk, h), hd, s.n_kv_head, s.seq), l.pos, rp);
    Tensor* v = reshape_3d(ctx, mul_mat(ctx, l.wv, h), hd, s.n_kv_head, s.seq);
    AttentionSpec spec;
    spec.scale = 1.0f / std::sqrt(float(hd));
    spec.causal = true;
    Tensor* att = attention(ctx, q, k, v, l.pos, l.pos, spec);
    Tensor* x1 = add(ctx, l.x, mul_mat(ctx, l.wo, reshape_2d(ctx, att, s.n_embd, s.seq)));
    Tensor* h2 = mul(ctx, rms_norm(ctx, x1, eps), l.ffn_norm);
    Tensor* ff = swiglu(ctx, mul_mat(ctx, l.w_gate, h2), mul_mat(ctx, l.w_up, h2));
    Tensor* out = add(ctx, x1, mul_mat(ctx, l.w_down, ff));
    out->flags |= kFlagOutput;
    out->name = "block_out";
    return out;
}

struct RunResult {
    std::vector<float> out;
    double ms = 0;
    MemoryPlan plan;
};

RunResult run_on(Backend& backend, Context& ctx, const BlockLeaves& l, const BlockShape& s, int reps) {
    Tensor* out = build_block(ctx, l, s);
    Graph graph;
    graph.expand(out);
    RunResult r;
    r.plan = plan_memory(graph);
    auto buf = backend.alloc_buffer(r.plan.peak_bytes);
    apply_memory_plan(graph, r.plan, *buf);
    std::vector<double> times;
    for (int i = 0; i < reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        backend.compute(graph);
        times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    r.ms = times[times.size() / 2];
    r.out.resize(size_t(out->nelements()));
    backend.get_tensor(*out, r.out.data(), 0, r.out.size() * sizeof(float));
    return r;
}

int demo(int argc, char** argv) {
    BlockShape s;
    int threads = 0, reps = 3, n_embd = 512, n_head = 8, n_kv_head = 8, n_ff = 1536, seq = 64;
    std::string wtype = "f16";
    uint64_t seed = 42;
    ArgParser p("demo", "[options]",
                "Runs one transformer block with random weights on the cpu and the reference backends\n"
                "and compares them.");
    p.option("-t,--threads", &threads, "N", "cpu backend threads (default: physical cores)", 0, 1024);
    p.option("--embd", &n_embd, "N", "embedding width (default 512)", 8, 8192);
    p.option("--heads", &n_head, "N", "query heads (default 8)", 1, 256);
    p.option("--kv-heads", &n_kv_head, "N", "key/value heads, divides --heads (default 8)", 1, 256);
    p.option("--ff", &n_ff, "N", "feed-forward width (default 1536)", 1, 65536);
    p.option("--seq", &seq, "N", "tokens (default 64)", 1, 4096);
    p.option("--type", &wtype, "TYPE", "projection weight type: f32, f16, bf16, q8_0, ... (default f16)");
    p.option("--reps", &reps, "N", "timed runs per backend, median shown (default 3)", 1, 100);
    p.option("--seed", &seed, "N", "random seed (default 42)");
    if (!p.parse(argc, argv)) return 0;
    if (n_embd % n_head != 0) throw UsageError("--heads: " + std::to_string(n_head) + " does not divide --embd");
    if (n_head % n_kv_head != 0) throw UsageError("--kv-heads: " + std::to_string(n_kv_head) + " does not divide --heads");
    if ((n_embd / n_head) % 2 != 0) throw UsageError("--embd / --heads must be even (rope rotates pairs)");
    s.n_embd = n_embd;
    s.n_head = n_head;
    s.n_kv_head = n_kv_head;
    s.n_ff = n_ff;
    s.seq = seq;
    s.wtype = type_from_name(wtype);
    const int64_t bs = type_traits(s.wtype).block_size;
    if (n_embd % bs != 0 || n_ff % bs != 0)
        throw UsageError(std::string("--type ") + type_name(s.wtype) + ": --embd and --ff must be multiples of " +
                         std::to_string(bs));

    Context ctx;
    const BlockLeaves leaves = make_leaves(ctx, s);
    auto leaf_buf = fill_leaves(leaves, seed);

    BackendOptions opt;
    opt.threads = threads;
    auto cpu = create_backend("cpu", opt);
    auto ref = create_backend("reference");
    const RunResult rc = run_on(*cpu, ctx, leaves, s, reps);
    const RunResult rr = run_on(*ref, ctx, leaves, s, 1);

    double max_abs = 0, max_ref = 0;
    for (size_t i = 0; i < rc.out.size(); ++i) {
        max_abs = std::max(max_abs, double(std::fabs(rc.out[i] - rr.out[i])));
        max_ref = std::max(max_ref, double(std::fabs(rr.out[i])));
    }
    std::printf("tessera demo: one transformer block, n_embd %lld, %lld heads (%lld kv), head dim %lld, ffn %lld, "
                "%lld tokens, %s weights\n",
                (long long)s.n_embd, (long long)s.n_head, (long long)s.n_kv_head, (long long)s.head_dim(),
                (long long)s.n_ff, (long long)s.seq, type_name(s.wtype));
    std::printf("  %-9s threads %-2d  %9.3f ms (median of %d)\n", cpu->name().c_str(), cpu->threads(), rc.ms, reps);
    std::printf("  %-9s threads %-2d  %9.3f ms\n", ref->name().c_str(), ref->threads(), rr.ms);
    const int64_t n = s.n_embd;
    for (int64_t tok : {int64_t(0), s.seq - 1}) {
        std::printf("  token %-3lld out[0..4]  cpu:", (long long)tok);
        for (int64_t i = 0; i < std::min<int64_t>(5, n); ++i) std::printf(" %+.6f", rc.out[size_t(tok * n + i)]);
        std::printf("\n  %-20s ref:", "");
        for (int64_t i = 0; i < std::min<int64_t>(5, n); ++i) std::printf(" %+.6f", rr.out[size_t(tok * n + i)]);
        std::printf("\n");
    }
    std::printf("  max |cpu - reference| = %.3g (largest |output| %.3g, relative %.3g)\n", max_abs, max_ref,
                max_ref > 0 ? max_abs / max_ref : 0.0);
    std::printf("  memory planner: %zu bytes peak for %zu intermediates vs %zu unplanned (%.1f%%)\n",
                rc.plan.peak_bytes, rc.plan.placements.size(), rc.plan.unplanned_bytes,
                rc.plan.unplanned_bytes ? 100.0 * double(rc.plan.peak_bytes) / double(rc.plan.unplanned_bytes) : 0.0);
    return 0;
}

int cmd_demo(int argc, char** argv) {
    return run_guarded("demo", [&] { return demo(argc, argv); });
}

RegisterCommand reg("demo", "one transformer block on random weights: cpu vs reference, time, planner savings",
                    cmd_demo);

}  // namespace

}  // namespace tessera::cli
