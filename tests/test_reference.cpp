// The reference backend checked against values derived by hand (or by a closed-form formula written out
// here, independently of backends/reference). Small shapes on purpose: every expected number below can be
// checked with a pocket calculator.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/ops.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// One graph on the reference backend: leaves live in a HostArena, intermediates in a planned buffer.
struct RefRun {
    Context ctx;
    HostArena arena;
    Graph graph;
    std::unique_ptr<Backend> backend = create_backend("reference");
    std::unique_ptr<Buffer> buffer;

    Tensor* f32(std::initializer_list<int64_t> ne, const std::vector<float>& v, const std::string& name = "") {
        Tensor* t = arena.make(ctx, DType::F32, ne, name);
        arena.fill(t, v);
        return t;
    }
    Tensor* typed(DType type, std::initializer_list<int64_t> ne, const std::vector<float>& v) {
        Tensor* t = arena.make(ctx, type, ne);
        arena.fill(t, v);
        return t;
    }
    Tensor* i32(std::initializer_list<int64_t> ne, const std::vector<int32_t>& v, const std::string& name = "") {
        Tensor* t = arena.make(ctx, DType::I32, ne, name);
        arena.fill_i32(t, v);
        return t;
    }
    // Marks t as an output (so the planner never reuses its storage) and adds it to the graph.
    void keep(Tensor* t) {
        t->flags |= kFlagOutput;
        graph.expand(t);
    }
    // Expands out, plans memory, computes; returns out's values in logical order.
    std::vector<float> run(Tensor* out) {
        out->flags |= kFlagOutput;
        graph.expand(out);
        buffer = allocate_graph(graph, *backend);
        backend->compute(graph);
        return to_floats(*out);
    }
};

// Element-by-element comparison with a tolerance of a few float ulps: the reference rounds once from
// double, and expected values here are exact or computed in double, so 2e-7 relative (about 2 ulp) suffices.
void check_close(const std::vector<float>& got, const std::vector<double>& want, double rtol = 2e-7,
                 double atol = 1e-7) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
        if (std::isinf(want[i]) || std::isnan(want[i])) {
            CHECK((got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i]))));
        } else {
            CHECK(std::fabs(double(got[i]) - want[i]) <= atol + rtol * std::fabs(want[i]));
        }
    }
}

}  // namespace

// ---------------------------------------------------------------- data movement

TEST_CASE("reference cont: a transposed view becomes contiguous in logical order") {
    RefRun r;
    Tensor* a = r.f32({3, 2}, {1, 2, 3, 4, 5, 6});  // rows (1 2 3), (4 5 6)
    Tensor* t = cont(r.ctx, transpose(r.ctx, a));   // [2, 3]: rows (1 4), (2 5), (3 6)
    auto got = r.run(t);
    CHECK(t->is_contiguous());
    check_close(got, {1, 4, 2, 5, 3, 6});
}

TEST_CASE("reference cast: f32 -> f16 / bf16 round to nearest even, and back exactly") {
    RefRun r;
    // 1 + 2^-11 is the midpoint between two halves: ties to even (1.0). 1 + 3 * 2^-11 ties up to 1 + 2^-9.
    // 1 + 2^-8 is the bf16 midpoint between 1 and 1 + 2^-7: ties to even (1.0).
    const float m16 = 1.0f + std::ldexp(1.0f, -11), m16b = 1.0f + 3 * std::ldexp(1.0f, -11);
    const float m_bf = 1.0f + std::ldexp(1.0f, -8);
    Tensor* a = r.f32({4}, {m16, m16b, m_bf, -2.5f});
    Tensor* h = cast(r.ctx, a, DType::F16);
    Tensor* b = cast(r.ctx, a, DType::BF16);
    Tensor* back = cast(r.ctx, h, DType::F32);
    r.keep(h);
    r.keep(b);
    auto got_back = r.run(back);
    check_close(to_floats(*h), {1.0, 1.0 + std::ldexp(1.0, -9), 1.0 + std::ldexp(1.0, -8), -2.5}, 0, 0);
    check_close(to_floats(*b), {1.0, 1.0, 1.0, -2.5}, 0, 0);
    check_close(got_back, {1.0, 1.0 + std::ldexp(1.0, -9), 1.0 + std::ldexp(1.0, -8), -2.5}, 0, 0);
    uint16_t bits;
    std::memcpy(&bits, h->data, 2);
    CHECK(bits == 0x3c00);  // 1.0 in binary16
}

TEST_CASE("reference cont: same-type copy of an i32 tensor keeps the bits") {
    RefRun r;
    Tensor* a = r.i32({2, 2}, {7, -1, 1 << 30, 0});
    Tensor* t = cont(r.ctx, transpose(r.ctx, a));
    r.run(t);
    CHECK(to_i32(*t) == std::vector<int32_t>{7, 1 << 30, -1, 0});
}

TEST_CASE("reference cpy: f32 rows into strided rows of an f16 cache, other rows untouched") {
    RefRun r;
    Tensor* cache = r.typed(DType::F16, {3, 4}, std::vector<float>(12, 9.0f));
    Tensor* src = r.f32({3, 2}, {1, 2, 3, 0.5f, -4, 65504});
    // rows 1 and 3 of the cache: stride 2 rows apart
    Tensor* dst_view = view_2d(r.ctx, cache, 3, 2, 2 * cache->nb[1], cache->nb[1]);
    Tensor* c = cpy(r.ctx, src, dst_view);
    r.run(c);
    check_close(to_floats(*cache), {9, 9, 9, 1, 2, 3, 9, 9, 9, 0.5, -4, 65504}, 0, 0);
    CHECK(c->data == dst_view->data);  // the node aliases the destination
}

TEST_CASE("reference cpy: element order is logical order, into a transposed f32 view") {
    RefRun r;
    Tensor* dst = r.f32({2, 2}, {0, 0, 0, 0});
    Tensor* src = r.f32({4}, {1, 2, 3, 4});
    Tensor* c = cpy(r.ctx, src, transpose(r.ctx, dst));
    r.run(c);
    // transposed view element (i0, i1) is dst (i1, i0): logical order 1, 2, 3, 4 fills (0,0) (1,0) (0,1) (1,1)
    check_close(to_floats(*dst), {1, 3, 2, 4}, 0, 0);
}

TEST_CASE("reference get_rows: picks rows of f32 and f16 tables, repeats allowed") {
    RefRun r;
    Tensor* table = r.f32({2, 4}, {0, 1, 10, 11, 20, 21, 30, 31});
    Tensor* table16 = r.typed(DType::F16, {2, 4}, {0, 1, 10, 11, 20, 21, 30, 31});
    Tensor* ids = r.i32({3}, {3, 0, 3});
    Tensor* g16 = get_rows(r.ctx, table16, ids);
    r.keep(g16);
    auto got = r.run(get_rows(r.ctx, table, ids));
    check_close(got, {30, 31, 0, 1, 30, 31}, 0, 0);
    check_close(to_floats(*g16), {30, 31, 0, 1, 30, 31}, 0, 0);
}

TEST_CASE("reference get_rows: an id out of range is an Error naming the node and the id") {
    for (int32_t bad : {4, -1}) {
        RefRun r;
        Tensor* table = r.f32({2, 4}, std::vector<float>(8, 1.0f));
        Tensor* ids = r.i32({2}, {1, bad});
        Tensor* g = get_rows(r.ctx, table, ids);
        g->name = "tok_embd_rows";
        const std::string msg = error_of([&] { r.run(g); });
        INFO(msg);
        CHECK(msg.find("tok_embd_rows") != std::string::npos);
        CHECK(msg.find(std::to_string(bad)) != std::string::npos);
    }
}

TEST_CASE("set_rows: rows land at their ids, the rest of the cache is kept (reference and cpu)") {
    for (const char* be : {"reference", "cpu"}) {
        INFO(be);
        RefRun r;
        r.backend = create_backend(be);
        Tensor* cache = r.f32({2, 4}, {0, 1, 10, 11, 20, 21, 30, 31});
        Tensor* rows = r.f32({2, 2}, {-1, -2, -3, -4});
        Tensor* ids = r.i32({2}, {3, 1});
        auto got = r.run(set_rows(r.ctx, rows, cache, ids));
        check_close(got, {0, 1, -3, -4, 20, 21, -1, -2}, 0, 0);
        check_close(to_floats(*cache), {0, 1, -3, -4, 20, 21, -1, -2}, 0, 0);  // the node is the cache itself
    }
}

TEST_CASE("set_rows: an id out of range or written twice is an Error naming the node; the cache is kept") {
    for (const char* be : {"reference", "cpu"}) {
        const std::pair<std::vector<int32_t>, const char*> cases[] = {
            {{1, 4}, "row id 4"}, {{-1, 0}, "row id -1"}, {{2, 2}, "written twice"}};
        for (const auto& [bad, says] : cases) {
            RefRun r;
            r.backend = create_backend(be);
            Tensor* cache = r.f32({2, 4}, std::vector<float>(8, 7.0f));
            Tensor* rows = r.f32({2, 2}, {1, 2, 3, 4});
            Tensor* t = set_rows(r.ctx, rows, cache, r.i32({2}, bad));
            t->name = "cache_k_write";
            const std::string msg = error_of([&] { r.run(t); });
            INFO(be << ": " << msg);
            CHECK(msg.find("cache_k_write") != std::string::npos);
            CHECK(msg.find(says) != std::string::npos);
            check_close(to_floats(*cache), std::vector<double>(8, 7.0), 0, 0);
        }
    }
    // Shapes are checked when the node is built.
    RefRun r;
    Tensor* cache = r.f32({2, 4}, std::vector<float>(8, 0.0f));
    CHECK_THROWS_AS(set_rows(r.ctx, r.f32({3, 1}, {1, 2, 3}), cache, r.i32({1}, {0})), Error);  // row length
    CHECK_THROWS_AS(set_rows(r.ctx, r.f32({2, 2}, {1, 2, 3, 4}), cache, r.i32({1}, {0})), Error);  // id count
}

TEST_CASE("reference concat along dims 0 and 1") {
    RefRun r;
    Tensor* a = r.f32({2, 2}, {1, 2, 3, 4});
    Tensor* b = r.f32({1, 2}, {5, 6});
    Tensor* c = r.f32({2, 1}, {7, 8});
    Tensor* d1 = concat(r.ctx, a, c, 1);
    r.keep(d1);
    auto got0 = r.run(concat(r.ctx, a, b, 0));
    check_close(got0, {1, 2, 5, 3, 4, 6}, 0, 0);
    check_close(to_floats(*d1), {1, 2, 3, 4, 7, 8}, 0, 0);
}

// ---------------------------------------------------------------- matrix products

TEST_CASE("reference mul_mat: out[i, j] = dot(row i of a, row j of b)") {
    RefRun r;
    Tensor* a = r.f32({2, 3}, {1, 2, 3, 4, 5, 6});  // rows (1 2), (3 4), (5 6)
    Tensor* b = r.f32({2, 2}, {1, 0, 1, -1});       // rows (1 0), (1 -1)
    auto got = r.run(mul_mat(r.ctx, a, b));          // [3, 2]
    check_close(got, {1, 3, 5, -1, -1, -1}, 0, 0);
}

TEST_CASE("reference mul_mat: f16 weights and a transposed (non-contiguous) b") {
    RefRun r;
    Tensor* a = r.typed(DType::F16, {2, 2}, {1, 2, 3, 4});
    Tensor* bt = r.f32({2, 2}, {1, 1, 0, -1});  // transposed: rows of b are columns here: (1 0), (1 -1)
    auto got = r.run(mul_mat(r.ctx, a, transpose(r.ctx, bt)));
    check_close(got, {1, 3, -1, -1}, 0, 0);
}

TEST_CASE("reference mul_mat: a broadcasts over dims 2 and 3 in runs (matrix i2 uses a's i2 / ratio)") {
    RefRun r;
    // a: two 1x1 "matrices" [k=1, n=1, 2]: values 10 and 100. b: four matrices [1, 1, 4]: 1, 2, 3, 4.
    Tensor* a = r.f32({1, 1, 2}, {10, 100});
    Tensor* b = r.f32({1, 1, 4}, {1, 2, 3, 4});
    auto got = r.run(mul_mat(r.ctx, a, b));
    check_close(got, {10, 20, 300, 400}, 0, 0);
}

TEST_CASE("reference mul_mat: dot accumulates in double (no float cancellation)") {
    RefRun r;
    // 1e8 + 1 - 1e8 in float is 0; in double it is 1.
    Tensor* a = r.f32({3, 1}, {1e8f, 1, -1e8f});
    Tensor* b = r.f32({3, 1}, {1, 1, 1});
    check_close(r.run(mul_mat(r.ctx, a, b)), {1}, 0, 0);
}

TEST_CASE("reference mul_mat_id: expert rows chosen by ids, b broadcast or per slot") {
    RefRun r;
    // experts [k=2, n=1, 3]: expert e's single row is (e+1, 1).
    Tensor* ex = r.f32({2, 1, 3}, {1, 1, 2, 1, 3, 1});
    Tensor* ids = r.i32({2, 2}, {2, 0, 1, 1});     // token 0 uses experts 2, 0; token 1 uses 1, 1
    Tensor* b1 = r.f32({2, 1, 2}, {1, 10, 2, 20}); // one row per token (broadcast over slots)
    Tensor* b2 = r.f32({2, 2, 2}, {1, 0, 0, 1, 1, 1, 2, 0});  // one row per slot per token
    Tensor* per_slot = mul_mat_id(r.ctx, ex, b2, ids);
    r.keep(per_slot);
    auto got = r.run(mul_mat_id(r.ctx, ex, b1, ids));  // [1, 2, 2]
    // token 0: e2 . (1,10) = 3 + 10 = 13; e0 . (1,10) = 11. token 1: e1 . (2,20) = 24 twice.
    check_close(got, {13, 11, 24, 24}, 0, 0);
    // token 0: e2 . (1,0) = 3; e0 . (0,1) = 1. token 1: e1 . (1,1) = 3; e1 . (2,0) = 4.
    check_close(to_floats(*per_slot), {3, 1, 3, 4}, 0, 0);
}

TEST_CASE("reference mul_mat_id: an expert id out of range is an Error") {
    RefRun r;
    Tensor* ex = r.f32({2, 1, 3}, std::vector<float>(6, 1.0f));
    Tensor* ids = r.i32({1, 1}, {5});
    Tensor* b = r.f32({2, 1, 1}, {1, 1});
    Tensor* m = mul_mat_id(r.ctx, ex, b, ids);
    m->name = "ffn_moe";
    const std::string msg = error_of([&] { r.run(m); });
    INFO(msg);
    CHECK(msg.find("ffn_moe") != std::string::npos);
    CHECK(msg.find("5") != std::string::npos);
}

// ---------------------------------------------------------------- elementwise

TEST_CASE("reference add / mul / div broadcast b over a by repetition") {
    RefRun r;
    Tensor* a = r.f32({3, 2}, {1, 2, 3, 4, 5, 6});
    Tensor* row = r.f32({3, 1}, {10, 20, 30});  // repeats over dim 1
    Tensor* col = r.f32({1, 2}, {2, 4});        // repeats over dim 0
    Tensor* one = r.f32({1}, {-1});
    Tensor* m = mul(r.ctx, a, col);
    Tensor* d = div(r.ctx, a, col);
    Tensor* s = add(r.ctx, a, one);
    for (Tensor* t : {m, d, s}) r.keep(t);
    auto got = r.run(add(r.ctx, a, row));
    check_close(got, {11, 22, 33, 14, 25, 36}, 0, 0);
    check_close(to_floats(*m), {2, 4, 6, 16, 20, 24}, 0, 0);
    check_close(to_floats(*d), {0.5, 1, 1.5, 1, 1.25, 1.5}, 0, 0);
    check_close(to_floats(*s), {0, 1, 2, 3, 4, 5}, 0, 0);
}

TEST_CASE("reference add: b broadcast over dims 2 and 3 with a permuted (non-contiguous) a") {
    RefRun r;
    Tensor* base = r.f32({2, 1, 2}, {1, 2, 3, 4});      // [2, 1, 2]
    Tensor* a = permute(r.ctx, base, 2, 1, 0, 3);         // [2, 1, 2]: a(i0, 0, i2) = base(i2, 0, i0)
    Tensor* b = r.f32({2}, {100, 200});
    auto got = r.run(add(r.ctx, a, b));
    // a in logical order: (i0=0,i2=0)=1, (1,0)=3, (0,1)=2, (1,1)=4
    check_close(got, {101, 203, 102, 204}, 0, 0);
}

TEST_CASE("reference unary activations at hand-checked points") {
    RefRun r;
    Tensor* x = r.f32({4}, {0, 1, -2, 3});
    Tensor* sc = scale(r.ctx, x, -0.5f);
    Tensor* si = silu(r.ctx, x);
    Tensor* ge = gelu(r.ctx, x);
    Tensor* gerf = gelu_erf(r.ctx, x);
    Tensor* sg = sigmoid(r.ctx, x);
    Tensor* cap = softcap(r.ctx, x, 2.0f);
    for (Tensor* t : {sc, si, ge, gerf, sg}) r.keep(t);
    r.run(cap);
    check_close(to_floats(*sc), {0, -0.5, 1, -1.5}, 0, 0);
    // sigmoid(1) = 0.7310585786300049, sigmoid(-2) = 0.11920292202211755, sigmoid(3) = 0.9525741268224334
    check_close(to_floats(*sg), {0.5, 0.7310585786300049, 0.11920292202211755, 0.9525741268224334});
    check_close(to_floats(*si), {0, 0.7310585786300049, -2 * 0.11920292202211755, 3 * 0.9525741268224334});
    // Gaussian CDF: Phi(1) = 0.8413447460685429, Phi(-2) = 0.022750131948179195, Phi(3) = 0.9986501019683699
    check_close(to_floats(*gerf), {0, 0.8413447460685429, -2 * 0.022750131948179195, 3 * 0.9986501019683699});
    // tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written out: for x = 1 the tanh argument
    // is 0.7978845608 * 1.044715 = 0.8335615..., so gelu(1) = 0.8411919906082768.
    auto gelu_tanh = [](double v) {
        return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    };
    CHECK(std::fabs(gelu_tanh(1.0) - 0.8411919906082768) < 1e-15);
    check_close(to_floats(*ge), {0, gelu_tanh(1), gelu_tanh(-2), gelu_tanh(3)});
    // softcap 2: 2 tanh(x / 2); tanh(0.5) = 0.46211715726000974, tanh(1) = 0.7615941559557649,
    // tanh(1.5) = 0.9051482536448664
    check_close(to_floats(*cap), {0, 2 * 0.46211715726000974, -2 * 0.7615941559557649, 2 * 0.9051482536448664});
}

TEST_CASE("reference swiglu and geglu: act(gate) * up") {
    RefRun r;
    Tensor* gate = r.f32({3}, {0, 1, -2});
    Tensor* up = r.f32({3}, {5, 2, -1});
    Tensor* g = geglu(r.ctx, gate, up);
    r.keep(g);
    auto got = r.run(swiglu(r.ctx, gate, up));
    check_close(got, {0, 2 * 0.7310585786300049, 2 * 0.11920292202211755});
    auto gelu_tanh = [](double v) {
        return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    };
    check_close(to_floats(*g), {0, 2 * gelu_tanh(1), -gelu_tanh(-2)});
}

TEST_CASE("reference swiglu_clamped: min(gate, limit) sigmoid(alpha min(gate, limit)) (clamp(up) + 1)") {
    RefRun r;
    Tensor* gate = r.f32({4}, {0, 1, 9, -3});
    Tensor* up = r.f32({4}, {5, -2, 8, -9});
    auto got = r.run(swiglu_clamped(r.ctx, gate, up, 1.702f, 7.0f));
    auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
    // gate 9 is clamped to 7, up 8 to 7 and up -9 to -7
    check_close(got, {0, 1 * sig(1.702) * (-2 + 1), 7 * sig(1.702 * 7) * (7 + 1), -3 * sig(-1.702 * 3) * (-7 + 1)});
    CHECK_THROWS_WITH(swiglu_clamped(r.ctx, gate, up, 1.702f, 0.0f), doctest::Contains("limit"));
}

// ---------------------------------------------------------------- normalization

TEST_CASE("reference rms_norm and norm over dim 0") {
    RefRun r;
    Tensor* a = r.f32({2, 2}, {3, 4, 1, -1});
    Tensor* b = r.f32({3, 1}, {1, 2, 3});
    Tensor* n = norm(r.ctx, b, 0.0f);
    r.keep(n);
    auto got = r.run(rms_norm(r.ctx, a, 0.5f));
    // row (3, 4): mean square 12.5, + eps 0.5 = 13 -> divide by sqrt(13). Row (1, -1): 1 + 0.5 -> sqrt(1.5).
    check_close(got, {3 / std::sqrt(13.0), 4 / std::sqrt(13.0), 1 / std::sqrt(1.5), -1 / std::sqrt(1.5)});
    // (1, 2, 3): mean 2, population variance 2/3 -> (-1, 0, 1) / sqrt(2/3)
    check_close(to_floats(*n), {-std::sqrt(1.5), 0, std::sqrt(1.5)});
}

// ---------------------------------------------------------------- rope

TEST_CASE("reference rope: normal pairs (2i, 2i+1) vs NeoX pairs (i, i + n_dims/2)") {
    // head_dim 4, n_dims 4, base 10000: theta for pair 0 is p, for pair 1 is p * 10000^(-1/2) = p / 100.
    const int p = 3;
    const double c0 = std::cos(3.0), s0 = std::sin(3.0), c1 = std::cos(0.03), s1 = std::sin(0.03);
    for (int mode : {kRopeNormal, kRopeNeox}) {
        RefRun r;
        // two heads: e0 and e2 (unit vectors), one token at position 3
        Tensor* x = r.f32({4, 2, 1}, {1, 0, 0, 0, 0, 0, 1, 0});
        Tensor* pos = r.i32({1}, {p});
        RopeParams rp;
        rp.n_dims = 4;
        rp.mode = mode;
        auto got = r.run(rope(r.ctx, x, pos, rp));
        if (mode == kRopeNormal) {
            // e0 is in pair (0,1) with theta p: (cos, sin). e2 is x0 of pair (2,3) with theta p/100.
            check_close(got, {c0, s0, 0, 0, 0, 0, c1, s1});
        } else {
            // NeoX: pair 0 is (0, 2) with theta p, pair 1 is (1, 3). e0 -> (cos p at 0, sin p at 2);
            // e2 is x1 of pair 0: (x0, x1) = (0, 1) -> (-sin p, cos p) at (0, 2).
            check_close(got, {c0, 0, s0, 0, -s0, 0, c0, 0});
        }
    }
}

TEST_CASE("reference rope: dims past n_dims pass through; freq_factors and freq_scale divide/scale theta") {
    RefRun r;
    // head_dim 6, n_dims 4: dims 4, 5 untouched. Pair 1's theta p / 100 is divided by freq factor 0.5
    // (-> p / 50) and every theta is scaled by freq_scale 0.5.
    Tensor* x = r.f32({6, 1, 2}, {1, 0, 1, 0, 7, 8, 0, 1, 0, 1, -7, -8});
    Tensor* pos = r.i32({2}, {2, 5});
    Tensor* ff = r.f32({2}, {1.0f, 0.5f});
    RopeParams rp;
    rp.n_dims = 4;
    rp.freq_scale = 0.5f;
    auto got = r.run(rope(r.ctx, x, pos, rp, ff));
    const double t00 = 0.5 * 2, t01 = 0.5 * 2 / 50.0;  // token 0 at p=2
    const double t10 = 0.5 * 5, t11 = 0.5 * 5 / 50.0;  // token 1 at p=5
    check_close(got,
                {std::cos(t00), std::sin(t00), std::cos(t01), std::sin(t01), 7, 8,  // (1,0) rotates to (cos, sin)
                 -std::sin(t10), std::cos(t10), -std::sin(t11), std::cos(t11), -7, -8});  // (0,1) -> (-sin, cos)
}

TEST_CASE("reference rope: YaRN ramp between the correction dims, and mscale") {
    // n_dims 8, base 10000, n_ctx_orig 4096, beta_fast 32, beta_slow 1. By hand:
    //   corr_dim(b) = 8 ln(4096 / (2 pi b)) / (2 ln 10000)
    //   corr_dim(32) = 8 ln(20.37) / 18.42 = 1.309 -> floor 1 = low
    //   corr_dim(1)  = 8 ln(651.9) / 18.42 = 2.814 -> ceil 3 = high
    // ramp(i) = 1 - clamp((i - 1) / 2, 0, 1) = 1, 1, 0.5, 0 for pairs 0..3.
    // ext_factor 1, freq_scale 0.25: theta_i = te_i (0.25 (1 - ramp) + ramp), te_i = p 10000^(-i/4).
    // mscale = attn_factor (0.9) * (1 + 0.1 ln 4).
    const double ramp[4] = {1, 1, 0.5, 0};
    const int p = 7;
    const double ms = 0.9 * (1 + 0.1 * std::log(4.0));
    for (bool yarn : {true, false}) {
        RefRun r;
        std::vector<float> xs(8, 0.0f);
        for (int i = 0; i < 4; ++i) xs[2 * i] = 1.0f;  // (1, 0) in every pair
        Tensor* x = r.f32({8, 1, 1}, xs);
        Tensor* pos = r.i32({1}, {p});
        RopeParams rp;
        rp.n_dims = 8;
        rp.n_ctx_orig = 4096;
        rp.freq_scale = 0.25f;
        rp.ext_factor = yarn ? 1.0f : 0.0f;
        rp.attn_factor = 0.9f;
        auto got = r.run(rope(r.ctx, x, pos, rp));
        std::vector<double> want(8);
        for (int i = 0; i < 4; ++i) {
            const double te = p * std::pow(10000.0, -i / 4.0);
            // YaRN off: plain linear interpolation, and attn_factor alone scales (no ln term).
            const double theta = yarn ? te * (0.25 * (1 - ramp[i]) + ramp[i]) : 0.25 * te;
            const double m = yarn ? ms : 0.9;
            want[2 * i] = std::cos(theta) * m;
            want[2 * i + 1] = std::sin(theta) * m;
        }
        INFO("yarn " << yarn);
        check_close(got, want);
    }
}

// ---------------------------------------------------------------- softmax

TEST_CASE("reference softmax: scale, mask with -inf, fully masked row gives zeros") {
    RefRun r;
    // [3, 2, 2]: rows (1 2 3), (1 2 3), and again for i2 = 1. The mask [3, 2] broadcasts over dim 2.
    Tensor* a = r.f32({3, 2, 2}, {1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3});
    Tensor* mask = r.f32({3, 2}, {0, 0, 0, -kInf, -kInf, -kInf});
    Tensor* plain = softmax(r.ctx, a, nullptr, 1.0f);
    Tensor* half_masked = softmax(r.ctx, a, r.f32({3, 2}, {0, -kInf, 0, 0, 0, -kInf}), 2.0f);
    r.keep(plain);
    r.keep(half_masked);
    auto got = r.run(softmax(r.ctx, a, mask, 1.0f));
    // softmax(1, 2, 3) = (0.09003057317038046, 0.24472847105479764, 0.6652409557748219)
    const std::vector<double> s = {0.09003057317038046, 0.24472847105479764, 0.6652409557748219};
    check_close(got, {s[0], s[1], s[2], 0, 0, 0, s[0], s[1], s[2], 0, 0, 0});
    for (float v : got) CHECK(!std::isnan(v));
    check_close(to_floats(*plain), {s[0], s[1], s[2], s[0], s[1], s[2], s[0], s[1], s[2], s[0], s[1], s[2]});
    // scale 2: row 0 keeps (2, 6) -> (1/(1+e^4), e^4/(1+e^4)); row 1 keeps (2, 4) -> (1/(1+e^2), e^2/(1+e^2))
    const double e4 = std::exp(4.0), e2 = std::exp(2.0);
    const double r0a = 1 / (1 + e4), r0b = e4 / (1 + e4), r1a = 1 / (1 + e2), r1b = e2 / (1 + e2);
    check_close(to_floats(*half_masked), {r0a, 0, r0b, r1a, r1b, 0, r0a, 0, r0b, r1a, r1b, 0});
}

// ---------------------------------------------------------------- reductions

TEST_CASE("reference sum, mean over dim 0, including a transposed input") {
    RefRun r;
    Tensor* a = r.f32({3, 2}, {1, 2, 3, 4, 5, 6});
    Tensor* m = mean(r.ctx, a);
    Tensor* st = sum(r.ctx, transpose(r.ctx, a));  // rows (1 4), (2 5), (3 6)
    r.keep(m);
    r.keep(st);
    auto got = r.run(sum(r.ctx, a));
    check_close(got, {6, 15}, 0, 0);
    check_close(to_floats(*m), {2, 5}, 0, 0);
    check_close(to_floats(*st), {5, 7, 9}, 0, 0);
    CHECK(st->ne[0] == 1);
    CHECK(st->ne[1] == 3);
}

TEST_CASE("reference argmax and top_k: ties go to the lower index") {
    RefRun r;
    Tensor* a = r.f32({5, 2}, {1, 5, 2, 5, 0, -3, -1, -1, -2, -1});
    Tensor* tk = top_k(r.ctx, a, 3);
    r.keep(tk);
    Tensor* am = argmax(r.ctx, a);
    r.run(am);
    CHECK(am->ne[0] == 2);
    CHECK(to_i32(*am) == std::vector<int32_t>{1, 1});
    // row 0: 5 (1), 5 (3), 2 (2). row 1: -1 (1), -1 (2), -1 (4)
    CHECK(to_i32(*tk) == std::vector<int32_t>{1, 3, 2, 1, 2, 4});
}

// ---------------------------------------------------------------- what the reference refuses

TEST_CASE("reference refuses what it cannot compute, with a clear Error") {
    RefRun r;
    Tensor* table = r.i32({2, 3}, {1, 2, 3, 4, 5, 6});
    Tensor* ids = r.i32({1}, {0});
    Tensor* g = get_rows(r.ctx, table, ids);  // an i32 table has no float conversion
    g->name = "int_rows";
    CHECK_FALSE(r.backend->supports(*g));
    const std::string msg = error_of([&] { r.run(g); });
    INFO(msg);
    CHECK(msg.find("int_rows") != std::string::npos);
    CHECK(msg.find("not supported") != std::string::npos);

    Context ctx;
    Tensor* f = ctx.new_tensor(DType::F32, {4});
    CHECK_FALSE(r.backend->supports(*cast(ctx, f, DType::I32)));  // no float -> i32 conversion
    CHECK(r.backend->supports(*cast(ctx, f, DType::F16)));
}

// ---------------------------------------------------------------- quantized weights
// Separate case: depends on core/quant.cpp's dequantizers (another helper's work in progress).

TEST_CASE("reference quantized weights: get_rows and mul_mat use the type's dequantized rows") {
    // The expected values come from dequantizing the table with the type's to_float here in the test and
    // a double dot written out below; the reference must agree to float rounding of the final sum.
    for (DType type : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
        INFO(std::string(type_name(type)));
        RefRun r;
        const int64_t k = 256;
        Tensor* w = r.arena.make(r.ctx, type, {k, 3});
        r.arena.fill_random(w, 11);
        Tensor* b = r.f32({k, 2}, random_floats(size_t(2 * k), 12));
        Tensor* ids = r.i32({2}, {2, 0});
        Tensor* rows = get_rows(r.ctx, w, ids);
        r.keep(rows);
        auto got = r.run(mul_mat(r.ctx, w, b));
        std::vector<float> deq(size_t(3 * k));
        for (int i = 0; i < 3; ++i) type_traits(type).to_float(w->at(0, i), deq.data() + i * k, k);
        auto bv = to_floats(*b);
        std::vector<double> want;
        for (int j = 0; j < 2; ++j)
            for (int i = 0; i < 3; ++i) {
                double acc = 0;
                for (int64_t t = 0; t < k; ++t) acc += double(deq[i * k + t]) * bv[j * k + t];
                want.push_back(acc);
            }
        check_close(got, want, 2e-7, 1e-7);
        std::vector<double> want_rows;
        for (int row : {2, 0})
            for (int64_t t = 0; t < k; ++t) want_rows.push_back(deq[row * k + t]);
        check_close(to_floats(*rows), want_rows, 0, 0);
    }
}
