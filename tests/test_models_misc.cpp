// Gemma / DeepSeek pieces the golden files do not reach:
//  - ring caches: a gemma3-1b-shaped cache at 32K context is its global layers plus small rings;
//  - the MLA cache: (kv_lora + rope) values per token and layer at DeepSeek-V3's head geometry;
//  - MoE routing with expert groups (V3) against a scalar restatement of DeepSeek's algorithm;
//  - DeepSeek's YaRN scales against the published formula;
//  - every tiny preset: batch == one token at a time == reference backend (groups, YaRN, linear
//    RoPE scaling, q-LoRA-less and kv_b-layout files included).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "models/cache_report.h"
#include "models/deepseek2.h"
#include "models/make_model_presets_gemma_deepseek.h"
#include "models/moe.h"
#include "models/session.h"
#include "tests/golden_util.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

std::string tmp_path(const std::string& name) {
    return "/tmp/tessera_misc_" + std::to_string(::getpid()) + "_" + name + ".gguf";
}

// Writes a model of `shape` (F32 unless given) and opens it for `backend`; the file is removed at once (the
// mapping stays). A model opened for the cpu backend may have weights repacked for its kernel level (the amx
// level repacks F16 too), which the reference backend refuses to read: open one for each.
std::unique_ptr<Model> make(const GemmaDeepSeekShape& shape, const std::string& type = "f32",
                            const std::string& backend = "cpu") {
    MakeModelOptions o;
    o.arch = shape.arch;
    o.preset = "custom";
    o.type = type;
    const std::string path = tmp_path(shape.arch);
    make_gemma_deepseek_model(shape, o, path);
    ModelOptions mo;
    mo.backend = backend;
    auto m = Model::open(path, mo);
    std::remove(path.c_str());
    return m;
}

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& ids, bool incremental,
                             const std::string& backend = "cpu", int64_t n_batch = 512) {
    golden::RunOptions o;  // F32 cache, 2 threads, every row's logits
    o.n_ctx = 128;
    o.incremental = incremental;
    o.backend = backend;
    o.n_batch = n_batch;
    return golden::run_logits(m, ids, o);
}

}  // namespace

TEST_CASE("ring cache: a gemma3-1b-shaped cache at 32K context is its global layers plus rings") {
    // gemma3-1b's attention geometry (26 layers, 1 KV head of 256, window 512, 5 window : 1 global) with
    // a narrow residual stream: the cache depends only on the former.
    GemmaDeepSeekShape s = gemma_deepseek_preset("gemma3", "gemma3-1b");
    s.n_vocab = 512, s.n_embd = 64, s.n_ff = 64, s.n_head = 4;
    auto model = make(s);
    SessionOptions so;
    so.n_ctx = 32768;
    so.n_batch = 512;
    so.cache_type = DType::F16;
    Session sess(*model, so);
    const KVCache& c = sess.cache();

    const size_t row = 256 * 2;                 // one K (or V) row: 1 head x 256 dims x 2 bytes
    const int64_t n_global = 26 / 6;            // layers 5, 11, 17, 23
    const int64_t n_window = 26 - n_global;     // 22
    const int64_t ring = 512 + 512 - 1;         // window + n_batch - 1
    int64_t rings = 0;
    for (int il = 0; il < 26; ++il) {
        const bool global = il % 6 == 5;
        CHECK(c.layer(il).kind == (global ? CacheKind::Full : CacheKind::Window));
        CHECK(c.ring_slots(il) == (global ? 0 : ring));
        rings += c.ring_slots(il) > 0;
    }
    CHECK(rings == n_window);
    CHECK(c.linear_bytes() == size_t(n_global) * 2 * row * 32768);
    CHECK(c.ring_bytes() == size_t(n_window) * 2 * row * size_t(ring));
    CHECK(c.total_bytes() == c.linear_bytes() + c.ring_bytes());
    // What a cache without rings would take: every layer at 32K.
    const size_t no_rings = size_t(26) * 2 * row * 32768;
    MESSAGE("gemma3-1b shape, 32K context, f16: global layers " << c.linear_bytes() / 1048576.0 << " MiB, rings "
                                                                << c.ring_bytes() / 1048576.0 << " MiB; without rings "
                                                                << no_rings / 1048576.0 << " MiB");
    CHECK(c.ring_bytes() < c.linear_bytes() / 5);  // "about what its global layers need"
    const std::string report = describe_kv_cache(c, model->hparams());
    MESSAGE(report);
    CHECK(report.find("4 full layers 128.00 MiB") != std::string::npos);
    CHECK(report.find("22 window layers as rings of 1023 slots") != std::string::npos);
    // And it runs at this context (ring wrap-around itself is covered by the golden gemma tests, whose
    // 8-slot rings wrap six times, and by the chunked tiny-preset runs below).
    std::vector<int32_t> ids(24);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(3 + (i * 37) % 500);
    sess.decode(ids.data(), int64_t(ids.size()));
    CHECK(sess.n_past() == 24);
    for (int64_t v = 0; v < sess.n_vocab(); ++v) REQUIRE(std::isfinite(sess.logits(0)[v]));
}

TEST_CASE("ring cache: truncating past the ring's slack hides overwritten slots") {
    GemmaDeepSeekShape s = gemma_deepseek_preset("gemma2", "tiny");  // window 16
    auto model = make(s);
    SessionOptions so;
    so.n_ctx = 128;
    so.n_batch = 4;  // rings of 16 + 4 - 1 = 19 slots
    so.cache_type = DType::F32;
    Session sess(*model, so);
    REQUIRE(sess.cache().ring_slots(0) == 19);
    std::vector<int32_t> ids(60, 7);
    sess.decode(ids.data(), 60);
    sess.truncate(30);
    std::vector<int32_t> pos(19), seq(19);
    sess.cache().cell_info(19, 19, pos.data(), seq.data());
    // Slots of positions 11..29 were overwritten by 38..59 (ring 19) or hold them: every slot whose
    // position < 30 was overwritten by one >= 30 must read as empty.
    for (size_t c = 0; c < pos.size(); ++c) {
        CHECK((pos[c] == -1 || (pos[c] < 30 && pos[c] + 19 >= 60)));
        CHECK(seq[c] == (pos[c] == -1 ? -1 : 0));
    }
}

TEST_CASE("MLA cache: (kv_lora + rope) values per token and layer at DeepSeek-V3's head geometry") {
    // V3's heads (128 x (nope 128 + rope 64), v 128, kv_lora 512) with a narrow residual stream and one
    // (dense) layer, so the file stays small.
    GemmaDeepSeekShape s = gemma_deepseek_preset("deepseek2", "deepseek-v3-small");
    s.n_vocab = 512, s.n_embd = 64, s.n_layer = 1, s.n_dense_lead = 1, s.n_ff = 64, s.q_lora = 32;
    auto model = make(s, "f16");
    for (DType t : {DType::F16, DType::F32, DType::Q8_0}) {
        SessionOptions so;
        so.n_ctx = 64;
        so.cache_type = t;
        Session sess(*model, so);
        const size_t per_tok = row_bytes(t, 512 + 64) * 1;  // one layer
        CHECK(sess.cache().bytes_per_token() == per_tok);
        CHECK(sess.cache().total_bytes() == per_tok * 64);
        const MlaCacheFigures f = mla_cache_figures(1, 128, 512, 64, 128, 128, t);
        CHECK(f.latent_bytes_per_token == per_tok);
        const std::string report = describe_kv_cache(sess.cache(), model->hparams());
        CHECK(report.find("1 MLA latent layers") != std::string::npos);
        if (t == DType::F16) {
            MESSAGE(report);
            CHECK(report.find("1.12 KiB per token; per-head K and V would need 80.00 KiB") != std::string::npos);
        }
        MESSAGE(std::string(type_name(t)) << ": MLA " << f.latent_bytes_per_token << " bytes/token/layer vs MHA "
                              << f.mha_bytes_per_token << " (" << double(f.mha_bytes_per_token) / f.latent_bytes_per_token
                              << "x)");
        std::vector<int32_t> ids{1, 5, 9, 200};
        sess.decode(ids.data(), 4);
        for (int64_t v = 0; v < sess.n_vocab(); ++v) REQUIRE(std::isfinite(sess.logits(0)[v]));
    }
    // The cpu backend's attention at d_k = 576, d_v = 512, 128 query heads on one latent head agrees with
    // the reference oracle (F32 everywhere: 1e-4 relative is ~1000 ulps of summation-order slack).
    const std::vector<int32_t> ids{1, 5, 9, 200, 31, 7};
    const auto cpu = logits_of(*model, ids, false);
    const auto ref = logits_of(*make(s, "f16", "reference"), ids, false, "reference");
    const auto inc = logits_of(*model, ids, true);
    MESSAGE("V3 geometry: cpu vs reference " << rel_rms(cpu, ref) << ", incremental vs reference " << rel_rms(inc, ref));
    CHECK(rel_rms(cpu, ref) < 1e-4);
    CHECK(rel_rms(inc, ref) < 1e-4);
    // V3 itself: 61 layers; F16 cache 576 * 2 * 61 = 70272 bytes per token; per-head K and V would need
    // 128 * (192 + 128) * 2 * 61 = 4997120.
    const MlaCacheFigures v3 = mla_cache_figures(61, 128, 512, 64, 128, 128, DType::F16);
    CHECK(v3.latent_bytes_per_token == size_t(576 * 2 * 61));
    CHECK(v3.mha_bytes_per_token == size_t(128 * (192 + 128) * 2 * 61));
}

namespace {

// DeepSeek-V3's routing, restated from its model code for one token: sel = probs + bias; group score =
// sum of the group's two best; keep the n_group_used best groups; top-k of sel among their experts.
std::vector<int> route_scalar(const std::vector<float>& sel, int n_group, int n_group_used, int k) {
    const int n = int(sel.size()), per = n / n_group;
    std::vector<float> gscore(static_cast<size_t>(n_group));
    for (int g = 0; g < n_group; ++g) {
        std::vector<float> v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
        std::sort(v.begin(), v.end(), std::greater<float>());
        gscore[size_t(g)] = v[0] + v[1];
    }
    std::vector<int> gorder(static_cast<size_t>(n_group));
    std::iota(gorder.begin(), gorder.end(), 0);
    std::stable_sort(gorder.begin(), gorder.end(), [&](int a, int b) { return gscore[size_t(a)] > gscore[size_t(b)]; });
    std::vector<bool> keep(size_t(n_group), false);
    for (int i = 0; i < n_group_used; ++i) keep[size_t(gorder[size_t(i)])] = true;
    std::vector<int> order;
    for (int e = 0; e < n; ++e)
        if (keep[size_t(e / per)]) order.push_back(e);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return sel[size_t(a)] > sel[size_t(b)]; });
    order.resize(size_t(k));
    return order;
}

float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }
float siluf(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace

TEST_CASE("MoE routing: group-limited top-k and the weighted expert sum match DeepSeek's algorithm") {
    MoEConfig cfg;
    cfg.n_expert = 16, cfg.n_expert_used = 4, cfg.n_group = 4, cfg.n_group_used = 2;
    cfg.gating = MoEGating::Sigmoid, cfg.norm_weights = true, cfg.weights_scale = 2.5f;
    validate_moe_config(cfg, "test");
    const int64_t n_embd = 24, n_ff = 8, n_tok = 7, E = cfg.n_expert;

    for (const char* backend_name : {"reference", "cpu"}) {
        INFO(backend_name);
        MoERoutingTables tables(cfg);
        Context ctx;
        HostArena arena;
        Tensor* x = arena.make(ctx, DType::F32, {n_embd, n_tok}, "x");
        Tensor* gate_inp = arena.make(ctx, DType::F32, {n_embd, E}, "gate_inp");
        Tensor* bias = arena.make(ctx, DType::F32, {E}, "bias");
        Tensor* g_exps = arena.make(ctx, DType::F32, {n_embd, n_ff, E}, "gate_exps");
        Tensor* u_exps = arena.make(ctx, DType::F32, {n_embd, n_ff, E}, "up_exps");
        Tensor* d_exps = arena.make(ctx, DType::F32, {n_ff, n_embd, E}, "down_exps");
        arena.fill_random(x, 1, -1, 1);
        arena.fill_random(gate_inp, 2, -1, 1);
        arena.fill_random(bias, 3, -0.3f, 0.3f);
        arena.fill_random(g_exps, 4, -0.5f, 0.5f);
        arena.fill_random(u_exps, 5, -0.5f, 0.5f);
        arena.fill_random(d_exps, 6, -0.5f, 0.5f);
        MoEWeights w{gate_inp, bias, g_exps, u_exps, d_exps};

        Tensor* sel_in = arena.make(ctx, DType::F32, {E, n_tok}, "selection");
        arena.fill_random(sel_in, 7, -1, 1);
        Tensor* ids = moe_select_experts(ctx, sel_in, cfg, tables);
        Tensor* out = moe_ffn(ctx, x, w, cfg, tables);
        ids->flags |= kFlagOutput;
        out->flags |= kFlagOutput;
        Graph g;
        g.expand(ids);
        g.expand(out);
        auto backend = create_backend(backend_name);
        auto buf = allocate_graph(g, *backend);
        backend->compute(g);

        // Routing on given selection values.
        const auto sel = to_floats(*sel_in);
        const auto got_ids = to_i32(*ids);
        for (int64_t t = 0; t < n_tok; ++t) {
            std::vector<float> col(sel.begin() + t * E, sel.begin() + (t + 1) * E);
            const auto want = route_scalar(col, 4, 2, 4);
            std::vector<int> got(got_ids.begin() + t * 4, got_ids.begin() + (t + 1) * 4);
            CHECK(got == want);
        }

        // The whole layer, in double.
        const auto xv = to_floats(*x), gi = to_floats(*gate_inp), bv = to_floats(*bias);
        const auto gv = to_floats(*g_exps), uv = to_floats(*u_exps), dv = to_floats(*d_exps);
        std::vector<float> want(size_t(n_embd * n_tok));
        for (int64_t t = 0; t < n_tok; ++t) {
            std::vector<float> probs(static_cast<size_t>(E)), s2(static_cast<size_t>(E));
            for (int64_t e = 0; e < E; ++e) {
                double acc = 0;
                for (int64_t i = 0; i < n_embd; ++i) acc += double(gi[size_t(e * n_embd + i)]) * xv[size_t(t * n_embd + i)];
                probs[size_t(e)] = sigmoidf(float(acc));
                s2[size_t(e)] = probs[size_t(e)] + bv[size_t(e)];
            }
            const auto chosen = route_scalar(s2, 4, 2, 4);
            double wsum = 0;
            for (int e : chosen) wsum += probs[size_t(e)];
            for (int e : chosen) {
                const double weight = probs[size_t(e)] / wsum * 2.5;
                std::vector<double> act(static_cast<size_t>(n_ff));
                for (int64_t f = 0; f < n_ff; ++f) {
                    double a = 0, b = 0;
                    for (int64_t i = 0; i < n_embd; ++i) {
                        a += double(gv[size_t((e * n_ff + f) * n_embd + i)]) * xv[size_t(t * n_embd + i)];
                        b += double(uv[size_t((e * n_ff + f) * n_embd + i)]) * xv[size_t(t * n_embd + i)];
                    }
                    act[size_t(f)] = siluf(float(a)) * b;
                }
                for (int64_t o = 0; o < n_embd; ++o) {
                    double acc = 0;
                    for (int64_t f = 0; f < n_ff; ++f) acc += double(dv[size_t((e * n_embd + o) * n_ff + f)]) * act[size_t(f)];
                    want[size_t(t * n_embd + o)] += float(weight * acc);
                }
            }
        }
        // F32 sums of <= 24 products and a sigmoid: 1e-5 relative plus 1e-6 absolute is ~100 ulps of slack,
        // far below what a wrong expert or weight (order 0.1) would give.
        CHECK(closeness(to_floats(*out), want, 1e-6, 1e-5) <= 1.0);
    }
}

TEST_CASE("DeepSeek YaRN scales follow DeepSeek's formula") {
    // yarn_get_mscale(scale, m) = 0.1 m ln(scale) + 1 (1 when scale <= 1); softmax scale =
    // q_head_dim^-0.5 * mscale(factor, mscale_all_dim)^2; rotary magnitude mscale(f, m) / mscale(f, m_all) = 1.
    auto yarn_get_mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
    struct Case {
        double factor, mscale_all_dim;
        int64_t d_k;
    } cases[] = {{40, 1.0, 192}, {40, 0.707, 192}, {4, 1.0, 48}, {1, 1.0, 192}};
    for (const auto& c : cases) {
        const DeepSeekYarnScales s = deepseek_yarn_scales(float(c.factor), float(0.1 * c.mscale_all_dim), c.d_k);
        const double m = yarn_get_mscale(c.factor, c.mscale_all_dim);
        CHECK(s.kq_scale == doctest::Approx(m * m / std::sqrt(double(c.d_k))).epsilon(1e-6));
        // The rope op multiplies cos/sin by attn_factor * (1 + 0.1 ln(1/freq_scale)) under YaRN: net 1.
        const double net = c.factor > 1 ? s.rope_attn_factor * (1.0 + 0.1 * std::log(c.factor)) : s.rope_attn_factor;
        CHECK(net == doctest::Approx(1.0).epsilon(1e-6));
    }
}

TEST_CASE("tiny presets: batch == one token at a time == reference backend") {
    const std::vector<int32_t> ids{1, 45, 300, 7, 999, 12, 13, 600, 2, 77, 78, 79, 80, 81, 500, 3, 4, 5, 6, 10};
    for (const char* preset : {"gemma-tiny", "gemma2-tiny", "gemma3-tiny", "deepseek2-tiny", "deepseek2-lite-tiny"}) {
        INFO(preset);
        const GemmaDeepSeekShape s = gemma_deepseek_preset("", preset);
        auto model = make(s);
        const auto batch = logits_of(*model, ids, false);
        const auto inc = logits_of(*model, ids, true);
        const auto ref = logits_of(*model, ids, false, "reference");
        const auto chunked = logits_of(*model, ids, false, "cpu", 3);  // rings of window + 2, cut chunks
        // Same function computed four ways in F32 (cpu vs double-accumulating reference, different
        // summation orders): 1e-4 relative rms is ~1000 float ulps of slack over 2-6 layers, far below the
        // 0.1+ a wrong cache slot, window or routing decision produces.
        MESSAGE(std::string(preset) << ": incremental " << rel_rms(inc, batch) << ", reference " << rel_rms(ref, batch)
                       << ", chunks of 3 " << rel_rms(chunked, batch));
        CHECK(rel_rms(inc, batch) < 1e-4);
        CHECK(rel_rms(ref, batch) < 1e-4);
        CHECK(rel_rms(chunked, batch) < 1e-4);
        // The bound can fail: changing the first token (seen by the rest only through attention) moves the
        // last position's logits by far more than it.
        std::vector<int32_t> other = ids;
        other[1] = 46;
        const auto alt = logits_of(*model, other, false);
        const int64_t nv = model->hparams().n_vocab, last = int64_t(ids.size()) - 1;
        const std::vector<float> a(batch.begin() + last * nv, batch.end()), b(alt.begin() + last * nv, alt.end());
        MESSAGE("  changing token 1 moves the last logits by " << rel_rms(b, a));
        CHECK(rel_rms(b, a) > 1e-2);
    }
}

TEST_CASE("deepseek2 files: bad shapes and keys are errors naming them") {
    GemmaDeepSeekShape s = gemma_deepseek_preset("deepseek2", "tiny");
    s.n_group = 3;  // 16 experts are not 3 groups
    MakeModelOptions o;
    o.arch = "deepseek2";
    o.type = "f32";
    const std::string path = tmp_path("bad_groups");
    make_gemma_deepseek_model(s, o, path);
    try {
        Model::open(path);
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("expert_group_count") != std::string::npos);
        CHECK(e.status() == Status::File);  // a value the architecture's load() rejects is the file's
    }
    std::remove(path.c_str());
}

TEST_CASE("errors carry their status from where they are raised") {
    auto status_of = [](const std::function<void()>& f) {
        try {
            f();
        } catch (const Error& e) {
            return e.status();
        }
        FAIL("expected an error");
        return Status::InvalidArgument;
    };
    // The reader's and the binder's complaints are the file's.
    CHECK(status_of([] { GGUFFile::open("/nonexistent/x.gguf"); }) == Status::File);
    // An address range no allocator grants: memory, not a bad argument (the message said "out of host memory",
    // which the C API's old text matching read as an invalid argument).
    auto cpu = create_backend("cpu");
    CHECK(status_of([&] { cpu->alloc_buffer(size_t(1) << 62); }) == Status::OutOfMemory);
    CHECK(status_of([] { create_backend("tpu"); }) == Status::Unsupported);
    // A KV cache that cannot be allocated keeps the allocator's status under its own message.
    LayerCache l;
    l.k_width = l.v_width = l.head_dim_k = l.head_dim_v = 64;
    const std::vector<LayerCache> layout(4, l);
    CHECK(status_of([&] { KVCache(layout, DType::F16, int64_t(1) << 40, *cpu); }) == Status::OutOfMemory);
    CHECK(status_of([&] { KVCache(layout, DType::Q4_0, 16, *cpu); }) == Status::Unsupported);
    KVCache cache(layout, DType::F16, 16, *cpu);
    CHECK(status_of([&] { cache.append(17); }) == Status::ContextFull);
    CHECK(status_of([&] { cache.truncate(3); }) == Status::InvalidArgument);
}

TEST_CASE("attention as gemma2 feeds it: window 8, GQA 2:1, softcap, cache longer than the tokens; cpu == reference") {
    // The golden gemma2/gemma3 cases run through exactly this: a window layer over a full-size cache
    // whose slots past the tokens are empty (k_pos -1). Keys 8 or more positions back must be invisible.
    for (int n_q : {1, 48}) {
        std::vector<std::vector<float>> outs;
        for (const char* backend_name : {"reference", "cpu"}) {
            Context ctx;
            HostArena a;
            Tensor* q = a.make(ctx, DType::F32, {32, 8, n_q});
            Tensor* k = a.make(ctx, DType::F32, {32, 4, 256});
            Tensor* v = a.make(ctx, DType::F32, {32, 4, 256});
            Tensor* qp = a.make(ctx, DType::I32, {n_q});
            Tensor* kp = a.make(ctx, DType::I32, {256});
            a.fill_random(q, 1);
            a.fill_random(k, 2);
            a.fill_random(v, 3);
            std::vector<int32_t> qpv(static_cast<size_t>(n_q)), kpv(256);
            for (int i = 0; i < n_q; ++i) qpv[size_t(i)] = 48 - n_q + i;
            for (int j = 0; j < 256; ++j) kpv[size_t(j)] = j < 48 ? j : -1;
            a.fill_i32(qp, qpv);
            a.fill_i32(kp, kpv);
            AttentionSpec spec;
            spec.scale = 0.2f;
            spec.window = 8;
            spec.softcap = 50.0f;
            Tensor* o = attention(ctx, q, k, v, qp, kp, spec);
            o->flags |= kFlagOutput;
            Graph g;
            g.expand(o);
            auto backend = create_backend(backend_name);
            auto buf = allocate_graph(g, *backend);
            backend->compute(g);
            outs.push_back(to_floats(*o));
        }
        // F32 inputs, double (reference) vs float online softmax (cpu): 1e-5 relative is ~100 ulps; an
        // off-by-one window (one extra key of 8) moves the output by ~0.1-0.5.
        INFO("n_q " << n_q << ": rel_rms " << rel_rms(outs[1], outs[0]));
        CHECK(rel_rms(outs[1], outs[0]) < 1e-5);
    }
}
