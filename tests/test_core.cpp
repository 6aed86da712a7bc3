// Core: type conversions, tensor strides and views, graph order, memory planner, op shape errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>

#include "core/error.h"
#include "core/ops.h"
#include "core/rope_yarn.h"
#include "tests/testing.h"

using namespace tessera;

namespace {
float bits_to_float(uint32_t x) {
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}
uint32_t float_bits(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    return x;
}
}  // namespace

TEST_CASE("fp16: every half value round-trips through f32 exactly") {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = fp16_to_fp32(uint16_t(h));
        const bool is_nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
        if (is_nan) {
            CHECK(std::isnan(f));
            CHECK(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
        } else {
            REQUIRE(fp32_to_fp16(f) == h);
        }
    }
}

TEST_CASE("fp16: rounding is to nearest, ties to even, and overflow goes to Inf") {
    // Between 1.0 (0x3c00) and the next half 1 + 2^-10 (0x3c01), the midpoint ties to even (0x3c00).
    CHECK(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
    // Midpoint between 0x3c01 and 0x3c02 ties up to the even 0x3c02.
    CHECK(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
    // Just above a midpoint rounds up.
    CHECK(fp32_to_fp16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)) == 0x3c01);
    CHECK(fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(fp32_to_fp16(65519.99f) == 0x7bff);
    CHECK(fp32_to_fp16(65520.0f) == 0x7c00);  // the tie above max rounds to Inf
    CHECK(fp32_to_fp16(1e10f) == 0x7c00);
    CHECK(fp32_to_fp16(-std::numeric_limits<float>::infinity()) == 0xfc00);
    // Subnormals: smallest half subnormal is 2^-24; half of it ties to even (zero), above rounds up.
    CHECK(fp32_to_fp16(std::ldexp(1.0f, -24)) == 0x0001);
    CHECK(fp32_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);
    CHECK(fp32_to_fp16(std::ldexp(1.5f, -25)) == 0x0001);
    CHECK(fp32_to_fp16(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 units ties to even 2
    CHECK(fp32_to_fp16(-0.0f) == 0x8000);
}

TEST_CASE("fp16: rounding matches exact arithmetic over a sweep of floats") {
    // For each float, the chosen half must be the nearest (ties even) of its two neighbours.
    std::mt19937 rng(7);
    for (int i = 0; i < 200000; ++i) {
        const float f = bits_to_float(rng() & 0x7fffffffu);
        if (!(std::fabs(f) < 65504.0f)) continue;
        const uint16_t h = fp32_to_fp16(f);
        const double got = fp16_to_fp32(h);
        const double err = std::fabs(got - double(f));
        const double up = fp16_to_fp32(uint16_t(h + 1)), down = h ? fp16_to_fp32(uint16_t(h - 1)) : -up;
        REQUIRE(err <= std::fabs(up - double(f)));
        REQUIRE(err <= std::fabs(down - double(f)));
    }
}

TEST_CASE("bf16: round to nearest even, NaN kept, Inf kept") {
    CHECK(fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(fp32_to_bf16(bits_to_float(0x3f808000u)) == 0x3f80);  // tie -> even
    CHECK(fp32_to_bf16(bits_to_float(0x3f818000u)) == 0x3f82);  // tie -> even (up)
    CHECK(fp32_to_bf16(bits_to_float(0x3f808001u)) == 0x3f81);
    CHECK(std::isnan(bf16_to_fp32(fp32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    CHECK(std::isnan(bf16_to_fp32(fp32_to_bf16(bits_to_float(0x7f800001u)))));  // NaN with low payload only
    CHECK(fp32_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
    CHECK(float_bits(bf16_to_fp32(0xc000)) == 0xc0000000u);
}

TEST_CASE("type traits: sizes and names") {
    CHECK(row_bytes(DType::F32, 10) == 40);
    CHECK(row_bytes(DType::Q4_0, 64) == 36);
    CHECK(row_bytes(DType::Q4_K, 512) == 288);
    CHECK_THROWS_AS(row_bytes(DType::Q4_0, 33), Error);
    CHECK(type_from_name("Q4_K") == DType::Q4_K);
    CHECK_THROWS_AS(type_from_name("q9_9"), Error);
    CHECK_FALSE(is_known_type_id(4));  // removed Q4_2
    CHECK(is_known_type_id(30));
}

TEST_CASE("views share storage and compute strides") {
    Context ctx;
    Tensor* a = ctx.new_tensor(DType::F32, {6, 4, 2}, "a");
    CHECK(a->nb[1] == 24);
    CHECK(a->nb[2] == 96);
    Tensor* t = transpose(ctx, a);
    CHECK(t->ne[0] == 4);
    CHECK(t->ne[1] == 6);
    CHECK(t->nb[0] == 24);
    CHECK_FALSE(t->is_contiguous());
    Tensor* p = permute(ctx, a, 2, 0, 1, 3);  // dim0 -> 2, dim1 -> 0, dim2 -> 1
    CHECK(p->ne[0] == 4);
    CHECK(p->ne[1] == 2);
    CHECK(p->ne[2] == 6);
    Tensor* r = reshape_2d(ctx, a, 12, 4);
    CHECK(r->is_contiguous());
    CHECK_THROWS_AS(reshape_2d(ctx, t, 12, 4), Error);  // not contiguous
    CHECK_THROWS_AS(reshape_2d(ctx, a, 5, 5), Error);   // count changes
    CHECK_THROWS_AS(view_2d(ctx, a, 6, 9, 24, 0), Error);  // past the end
}

TEST_CASE("op shape errors name the op and the shapes") {
    Context ctx;
    Tensor* w = ctx.new_tensor(DType::F32, {64, 32}, "w");
    Tensor* x = ctx.new_tensor(DType::F32, {63, 5}, "x");
    try {
        mul_mat(ctx, w, x);
        FAIL("mul_mat accepted mismatched inner dims");
    } catch (const Error& e) {
        const std::string msg = e.what();
        CHECK(msg.find("mul_mat") != std::string::npos);
        CHECK(msg.find("[64, 32, 1, 1]") != std::string::npos);
        CHECK(msg.find("[63, 5, 1, 1]") != std::string::npos);
    }
    CHECK_THROWS_AS(add(ctx, x, w), Error);
    CHECK_THROWS_AS(top_k(ctx, x, 64), Error);
    Tensor* ids = ctx.new_tensor(DType::F32, {3}, "ids");
    CHECK_THROWS_AS(get_rows(ctx, w, ids), Error);  // ids must be i32
}

TEST_CASE("op parameters read back through each op's accessor, which refuses another op's node") {
    Context ctx;
    Tensor* x = ctx.new_tensor(DType::F32, {8, 4, 3}, "x");
    Tensor* pos = ctx.new_tensor(DType::I32, {3}, "pos");
    RopeParams rp;
    rp.n_dims = 6;
    rp.mode = kRopeNeox;
    rp.n_ctx_orig = 4096;
    rp.freq_base = 500000.0f;
    rp.freq_scale = 0.25f;
    rp.ext_factor = 1.0f;
    rp.attn_factor = 0.75f;
    rp.beta_fast = 31.0f;
    rp.beta_slow = 2.0f;
    Tensor* r = rope(ctx, x, pos, rp);
    const RopeParams back = rope_params(*r);
    CHECK(back.n_dims == 6);
    CHECK(back.mode == kRopeNeox);
    CHECK(back.n_ctx_orig == 4096);
    CHECK(back.freq_base == 500000.0f);
    CHECK(back.freq_scale == 0.25f);
    CHECK(back.ext_factor == 1.0f);
    CHECK(back.attn_factor == 0.75f);
    CHECK(back.beta_fast == 31.0f);
    CHECK(back.beta_slow == 2.0f);

    Tensor* k = ctx.new_tensor(DType::F16, {8, 2, 5}, "k");
    Tensor* kpos = ctx.new_tensor(DType::I32, {5}, "kpos");
    AttentionSpec spec;
    spec.scale = 0.125f;
    spec.softcap = 50.0f;
    spec.window = 4;
    spec.causal = false;
    Tensor* a = attention(ctx, x, k, k, pos, kpos, spec);
    const AttentionSpec got = attention_spec(*a);
    CHECK(got.scale == 0.125f);
    CHECK(got.softcap == 50.0f);
    CHECK(got.window == 4);
    CHECK(got.causal == false);
    CHECK(got.sinks == nullptr);
    // Sinks are a source of the node: the accessor hands back that tensor.
    Tensor* sinks = ctx.new_tensor(DType::F32, {4}, "sinks");
    spec.sinks = sinks;
    Tensor* with_sinks = attention(ctx, x, k, k, pos, kpos, spec);
    CHECK(with_sinks->src[5] == sinks);
    CHECK(attention_spec(*with_sinks).sinks == sinks);
    CHECK(attention_spec(*with_sinks).window == 4);

    CHECK(norm_eps(*rms_norm(ctx, x, 1e-6f)) == 1e-6f);
    CHECK(norm_eps(*norm(ctx, x, 1e-5f)) == 1e-5f);
    CHECK(softmax_scale(*softmax(ctx, x, nullptr, 0.5f)) == 0.5f);
    CHECK(elementwise_param(*scale(ctx, x, 3.0f)) == 3.0f);
    CHECK(elementwise_param(*softcap(ctx, x, 30.0f)) == 30.0f);
    CHECK(elementwise_param(*silu(ctx, x)) == 0.0f);
    CHECK(concat_dim(*concat(ctx, x, x, 2)) == 2);
    CHECK(top_k_count(*top_k(ctx, x, 5)) == 5);
    const SwigluClamp clamp = swiglu_clamped_params(*swiglu_clamped(ctx, x, x, 1.702f, 7.0f));
    CHECK(clamp.alpha == 1.702f);
    CHECK(clamp.limit == 7.0f);
    CHECK_THROWS_AS(swiglu_clamped_params(*swiglu(ctx, x, x)), Error);
    // Reading one op's parameters from another op's node is a bug caught where it happens.
    CHECK_THROWS_AS(rope_params(*a), Error);
    CHECK_THROWS_AS(attention_spec(*r), Error);
    CHECK_THROWS_AS(norm_eps(*r), Error);
}

TEST_CASE("YaRN's ramp (core/rope_yarn.h): the bounds and mscale of llama.cpp's rope_yarn, and the mix") {
    RopeParams p;
    p.n_dims = 128;
    p.n_ctx_orig = 4096;
    p.freq_base = 10000.0f;
    p.freq_scale = 0.25f;
    p.beta_fast = 32.0f;
    p.beta_slow = 1.0f;
    p.attn_factor = 1.0f;
    const RopeYarn off = rope_yarn(p);  // ext_factor 0: plain linear scaling
    CHECK(off.mscale == 1.0);
    CHECK(rope_theta(off, 10, 2.0) == 0.5);
    p.ext_factor = 1.0f;
    const RopeYarn y = rope_yarn(p);
    // corr_dim(beta) = 128 ln(4096 / (2 pi beta)) / (2 ln 10000): 20.94 for beta 32, 45.03 for beta 1.
    CHECK(y.low == 20.0);
    CHECK(y.high == 46.0);
    CHECK(y.mscale == doctest::Approx(1.0 + 0.1 * std::log(4.0)));
    CHECK(rope_theta(y, 0, 2.0) == 2.0);    // below low: extrapolated
    CHECK(rope_theta(y, 100, 2.0) == 0.5);  // above high: interpolated
    CHECK(rope_theta(y, 33, 2.0) == doctest::Approx(0.5 * 0.5 + 2.0 * 0.5));  // halfway up the ramp
}

TEST_CASE("graph: sources come before their users; each node once") {
    Context ctx;
    Tensor* a = ctx.new_tensor(DType::F32, {8}, "a");
    Tensor* b = ctx.new_tensor(DType::F32, {8}, "b");
    Tensor* s = add(ctx, a, b);
    Tensor* m = mul(ctx, s, s);
    Tensor* out = add(ctx, m, s);
    Graph g;
    g.expand(out);
    g.expand(out);
    REQUIRE(g.nodes().size() == 3);
    CHECK(g.nodes()[0] == s);
    CHECK(g.nodes()[1] == m);
    CHECK(g.nodes()[2] == out);
    CHECK(g.leafs().size() == 2);
}

TEST_CASE("memory planner reuses dead intermediates and never overlaps live ones") {
    Context ctx;
    Tensor* x = ctx.new_tensor(DType::F32, {1024}, "x");
    x->data = reinterpret_cast<void*>(0x1000);  // a leaf with storage elsewhere
    Tensor* cur = x;
    for (int i = 0; i < 10; ++i) cur = scale(ctx, silu(ctx, cur), 0.5f);
    Graph g;
    g.expand(cur);
    MemoryPlan plan = plan_memory(g, 64);
    CHECK(plan.placements.size() == 20);
    CHECK(plan.unplanned_bytes == 20 * 4096);
    CHECK(plan.peak_bytes <= 2 * 4096);  // a chain needs only two live buffers at a time

    // Check the invariant directly: tensors alive at the same time do not overlap.
    std::map<const Tensor*, size_t> off;
    for (auto& p : plan.placements) off[p.tensor] = p.offset;
    const auto& nodes = g.nodes();
    for (size_t i = 1; i < nodes.size(); ++i) {
        const Tensor* out_t = nodes[i];
        const Tensor* in_t = nodes[i]->src[0];
        if (!off.count(in_t)) continue;
        const bool disjoint = off[out_t] + 4096 <= off[in_t] || off[in_t] + 4096 <= off[out_t];
        CHECK(disjoint);
    }
}

TEST_CASE("memory planner keeps outputs alive to the end") {
    Context ctx;
    Tensor* x = ctx.new_tensor(DType::F32, {256}, "x");
    x->data = reinterpret_cast<void*>(0x1000);
    Tensor* kept = silu(ctx, x);
    kept->flags |= kFlagOutput;
    Tensor* cur = kept;
    for (int i = 0; i < 4; ++i) cur = silu(ctx, cur);
    Graph g;
    g.expand(cur);
    MemoryPlan plan = plan_memory(g, 64);
    size_t kept_off = 0;
    for (auto& p : plan.placements)
        if (p.tensor == kept) kept_off = p.offset;
    for (auto& p : plan.placements)
        if (p.tensor != kept) CHECK((p.offset + 1024 <= kept_off || kept_off + 1024 <= p.offset));
}
