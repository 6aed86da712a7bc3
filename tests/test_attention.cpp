// The fused attention op: the reference (the oracle) against hand-computed
// cases, and the cpu backend's flash kernel against the reference over every
// head mapping, mask, softcap, cache type, sequence length around the kernel's
// tiles, thread count, strided layouts, ring caches and empty / fully masked rows.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "core/backend.h"
#include "core/ops.h"
#include "tests/testing.h"

using namespace tessera;
using tessera::testing::HostArena;

namespace {

// Tolerance of the cpu kernel vs the reference, the same for every cache type: both backends read the same
// cache bytes and turn them into the same floats (f32 as is, f16 exactly, q8_0 as the same d * q product),
// so the cache type's own rounding is identical on both sides and cancels. What differs is arithmetic: the
// reference accumulates in double, the kernel in float. Scores are dots of <= 576 terms of size <= ~0.4
// (scale * |q| * |k|): float error <= 576 * 6e-8 * 0.4 ~ 1.4e-5 worst case, which moves each softmax weight
// by that relative amount; the weighted sum of <= 1000 values in [-1, 1] adds <= 1000 * 6e-8 = 6e-5 worst
// case (sqrt(n) * eps ~ 2e-6 typical). Outputs are in [-1, 1], so 1e-4 absolute covers the worst case
// with room, while a wrong mask, head mapping or softmax is off by ~1e-2 or more.
constexpr double kAtol = 1e-4;
constexpr double kRtol = 0.0;

struct Case {
    std::string name;
    int64_t n_head = 4, n_kv_head = 4, d_k = 64, d_v = 64;
    bool mla = false;         // v is a view of the first d_v values of each k row
    bool head_major = false;  // k/v stored [d, n_kv, n_kv_head], seen through a strided view
    bool strided_q = false;   // q is a permuted view (element stride != 4 bytes)
    DType cache = DType::F32;
    std::vector<int32_t> q_pos, k_pos;
    AttentionSpec spec;
    std::vector<float> sinks;  // one logit per query head, or empty for none
    std::vector<int32_t> q_seq, k_seq;  // several sequences in one batch: each query's and cell's; empty = one
    uint64_t seed = 1;
};

std::string describe(const Case& c) {
    return c.name + " heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_kv_head) + " d " +
           std::to_string(c.d_k) + "/" + std::to_string(c.d_v) + " " + type_name(c.cache) + " n_q " +
           std::to_string(c.q_pos.size()) + " n_kv " + std::to_string(c.k_pos.size()) + " causal " +
           std::to_string(c.spec.causal) + " window " + std::to_string(c.spec.window) + " softcap " +
           std::to_string(c.spec.softcap) + (c.head_major ? " head-major" : "") + (c.strided_q ? " strided-q" : "") +
           (c.sinks.empty() ? "" : " sinks") + (c.q_seq.empty() ? "" : " sequences");
}

// One attention node with its own host storage. Leaves are filled with random values from the seed.
struct Built {
    Context ctx;
    HostArena arena;
    Graph graph;
    Tensor* out = nullptr;
    std::unique_ptr<Buffer> buffer;
};

Tensor* make_cache(Built& b, const Case& c, int64_t d, uint64_t seed) {
    const int64_t n_kv = int64_t(c.k_pos.size());
    if (!c.head_major) {
        Tensor* t = b.arena.make(b.ctx, c.cache, {d, c.n_kv_head, n_kv});
        b.arena.fill_random(t, seed);
        return t;
    }
    Tensor* store = b.arena.make(b.ctx, c.cache, {d, n_kv, c.n_kv_head});
    b.arena.fill_random(store, seed);
    return view(b.ctx, store, {d, c.n_kv_head, n_kv, 1}, {store->nb[0], store->nb[2], store->nb[1], store->nb[3]}, 0);
}

void build(Built& b, const Case& c) {
    const int64_t n_q = int64_t(c.q_pos.size()), n_kv = int64_t(c.k_pos.size());
    Tensor* q;
    if (c.strided_q) {
        Tensor* store = b.arena.make(b.ctx, DType::F32, {c.n_head, c.d_k, n_q});
        b.arena.fill_random(store, c.seed);
        q = permute(b.ctx, store, 1, 0, 2, 3);  // [d_k, n_head, n_q], element stride n_head * 4 bytes
    } else {
        q = b.arena.make(b.ctx, DType::F32, {c.d_k, c.n_head, n_q});
        b.arena.fill_random(q, c.seed);
    }
    Tensor *k, *v;
    if (c.mla) {
        k = make_cache(b, c, c.d_k, c.seed + 1);
        v = view(b.ctx, k, {c.d_v, c.n_kv_head, n_kv, 1}, {k->nb[0], k->nb[1], k->nb[2], k->nb[3]}, 0);
    } else {
        k = make_cache(b, c, c.d_k, c.seed + 1);
        v = make_cache(b, c, c.d_v, c.seed + 2);
    }
    Tensor* qp = b.arena.make(b.ctx, DType::I32, {n_q});
    Tensor* kp = b.arena.make(b.ctx, DType::I32, {n_kv});
    b.arena.fill_i32(qp, c.q_pos);
    b.arena.fill_i32(kp, c.k_pos);
    AttentionSpec spec = c.spec;
    if (!c.sinks.empty()) {
        spec.sinks = b.arena.make(b.ctx, DType::F32, {int64_t(c.sinks.size())});
        b.arena.fill(spec.sinks, c.sinks);
    }
    if (!c.q_seq.empty()) {
        spec.q_seq = b.arena.make(b.ctx, DType::I32, {n_q});
        spec.k_seq = b.arena.make(b.ctx, DType::I32, {n_kv});
        b.arena.fill_i32(spec.q_seq, c.q_seq);
        b.arena.fill_i32(spec.k_seq, c.k_seq);
    }
    b.out = attention(b.ctx, q, k, v, qp, kp, spec);
    b.out->flags |= kFlagOutput;
    b.graph.expand(b.out);
}

void poison(Tensor* t) {  // NaN everywhere, so a backend that leaves an element unwritten is caught
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::fill(t->data_as<float>(), t->data_as<float>() + t->nelements(), nan);
}

std::vector<float> compute_on(Built& b, const std::string& backend, int threads) {
    auto be = create_backend(backend, BackendOptions{threads, 0, ""});
    if (!b.buffer) b.buffer = allocate_graph(b.graph, *be);
    poison(b.out);
    be->compute(b.graph);
    return tessera::testing::to_floats(*b.out);
}

bool have_cuda() {
    const auto names = available_backends();
    return std::find(names.begin(), names.end(), "cuda") != names.end();
}

// The same graph on a device backend: the leaves' bytes are uploaded to device buffers and the output read
// back, then every pointer is put back so the host runs still see their own storage.
std::vector<float> compute_on_device(Built& b, const std::string& backend) {
    auto be = create_backend(backend);
    struct Saved {
        Tensor* t;
        void* data;
        Buffer* buffer;
    };
    std::vector<Saved> saved;
    std::vector<std::unique_ptr<Buffer>> leaf_buffers;
    for (Tensor* t : b.graph.leafs()) {
        saved.push_back({t, t->data, t->buffer});
        leaf_buffers.push_back(be->alloc_buffer(t->nbytes()));
        const void* host = t->data;
        t->buffer = leaf_buffers.back().get();
        t->data = leaf_buffers.back()->base();
        be->set_tensor(*t, host, 0, t->nbytes());
    }
    for (Tensor* n : b.graph.nodes()) {
        saved.push_back({n, n->data, n->buffer});
        n->data = nullptr;  // planned again on the device; views are re-resolved from their sources
        n->buffer = nullptr;
    }
    auto graph_buffer = allocate_graph(b.graph, *be);
    be->compute(b.graph);
    std::vector<uint8_t> raw(b.out->nbytes());
    be->get_tensor(*b.out, raw.data(), 0, raw.size());
    for (const Saved& s : saved) {
        s.t->data = s.data;
        s.t->buffer = s.buffer;
    }
    Tensor host = *b.out;
    host.data = raw.data();
    return tessera::testing::to_floats(host);
}

// Runs the case on the reference and on the cpu backend with 1 and 2 threads (and on cuda when a GPU is
// present); checks closeness.
void check_case(const Case& c) {
    INFO(describe(c));
    Built b;
    build(b, c);
    const std::vector<float> want = compute_on(b, "reference", 1);
    REQUIRE(std::all_of(want.begin(), want.end(), [](float x) { return std::isfinite(x); }));
    for (int threads : {1, 2}) {
        INFO("threads " << threads);
        const std::vector<float> got = compute_on(b, "cpu", threads);
        const double worst = tessera::testing::closeness(got, want, kAtol, kRtol);
        CHECK(worst <= 1.0);
    }
    if (have_cuda()) {
        INFO("cuda");
        const std::vector<float> got = compute_on_device(b, "cuda");
        CHECK(tessera::testing::closeness(got, want, kAtol, kRtol) <= 1.0);
    }
}

std::vector<int32_t> iota_pos(int64_t n, int32_t first = 0) {
    std::vector<int32_t> p(static_cast<size_t>(n));
    std::iota(p.begin(), p.end(), first);
    return p;
}

struct Mapping {
    const char* name;
    int64_t n_head, n_kv_head, d_k, d_v;
    bool mla;
};

const Mapping kMappings[] = {
    {"mha", 4, 4, 64, 64, false},   {"gqa2", 4, 2, 64, 64, false}, {"gqa3", 6, 2, 64, 64, false},
    {"gqa4", 8, 2, 64, 64, false},  {"gqa7", 14, 2, 64, 64, false}, {"mqa", 4, 1, 64, 64, false},
    {"mla", 4, 1, 576, 512, true},
};

// ---- reference semantics, against hand-computed answers ----
// With q = 0 every score is 0, so the output is the plain mean of the visible keys' v rows: the visibility
// rule can be checked exactly without trusting any softmax code.
std::vector<float> uniform_attention_ref(const std::vector<int32_t>& q_pos, const std::vector<int32_t>& k_pos,
                                         AttentionSpec spec, const std::vector<int32_t>& q_seq = {},
                                         const std::vector<int32_t>& k_seq = {}) {
    Built b;
    const int64_t n_q = int64_t(q_pos.size()), n_kv = int64_t(k_pos.size());
    Tensor* q = b.arena.make(b.ctx, DType::F32, {4, 1, n_q});  // zeros
    Tensor* k = b.arena.make(b.ctx, DType::F32, {4, 1, n_kv});
    b.arena.fill_random(k, 3);
    Tensor* v = b.arena.make(b.ctx, DType::F32, {1, 1, n_kv});
    std::vector<float> vals(static_cast<size_t>(n_kv));
    for (int64_t j = 0; j < n_kv; ++j) vals[size_t(j)] = float(1 << j);  // a bit per key: the mean names the set
    b.arena.fill(v, vals);
    Tensor* qp = b.arena.make(b.ctx, DType::I32, {n_q});
    Tensor* kp = b.arena.make(b.ctx, DType::I32, {n_kv});
    b.arena.fill_i32(qp, q_pos);
    b.arena.fill_i32(kp, k_pos);
    if (!q_seq.empty()) {
        spec.q_seq = b.arena.make(b.ctx, DType::I32, {n_q});
        spec.k_seq = b.arena.make(b.ctx, DType::I32, {n_kv});
        b.arena.fill_i32(spec.q_seq, q_seq);
        b.arena.fill_i32(spec.k_seq, k_seq);
    }
    b.out = attention(b.ctx, q, k, v, qp, kp, spec);
    b.graph.expand(b.out);
    return compute_on(b, "reference", 1);
}

float mean_of_bits(std::initializer_list<int> keys) {
    if (keys.size() == 0) return 0.0f;
    float s = 0;
    for (int j : keys) s += float(1 << j);
    return s / float(keys.size());
}

}  // namespace

TEST_CASE("reference attention: visibility rule, hand-computed") {
    // keys at positions 0..5
    const std::vector<int32_t> kp = {0, 1, 2, 3, 4, 5};
    AttentionSpec causal;  // causal, no window
    {
        auto out = uniform_attention_ref({0, 2, 5}, kp, causal);
        CHECK(out[0] == doctest::Approx(mean_of_bits({0})));
        CHECK(out[1] == doctest::Approx(mean_of_bits({0, 1, 2})));
        CHECK(out[2] == doctest::Approx(mean_of_bits({0, 1, 2, 3, 4, 5})));
    }
    AttentionSpec win = causal;
    win.window = 3;  // query at i sees i-2, i-1, i
    {
        auto out = uniform_attention_ref({0, 2, 5}, kp, win);
        CHECK(out[0] == doctest::Approx(mean_of_bits({0})));
        CHECK(out[1] == doctest::Approx(mean_of_bits({0, 1, 2})));
        CHECK(out[2] == doctest::Approx(mean_of_bits({3, 4, 5})));
    }
    // window exactly at the edge: position 5 with window 5 drops key 0, window 6 keeps it
    win.window = 5;
    CHECK(uniform_attention_ref({5}, kp, win)[0] == doctest::Approx(mean_of_bits({1, 2, 3, 4, 5})));
    win.window = 6;
    CHECK(uniform_attention_ref({5}, kp, win)[0] == doctest::Approx(mean_of_bits({0, 1, 2, 3, 4, 5})));
    // non-causal: the future is visible; with a window, keys ahead stay visible (i - j < w holds for j > i)
    AttentionSpec open;
    open.causal = false;
    CHECK(uniform_attention_ref({1}, kp, open)[0] == doctest::Approx(mean_of_bits({0, 1, 2, 3, 4, 5})));
    open.window = 2;
    CHECK(uniform_attention_ref({3}, kp, open)[0] == doctest::Approx(mean_of_bits({2, 3, 4, 5})));
    // empty slots (-1) are never attended, unsorted ring order changes nothing
    CHECK(uniform_attention_ref({4}, {3, -1, 0, 4, -1, 1}, causal)[0] ==
          doctest::Approx((float(1 << 0) + float(1 << 2) + float(1 << 3) + float(1 << 5)) / 4));
    // a row with no visible key is exactly zero (no NaN): before every key, and over an empty cache
    CHECK(uniform_attention_ref({-1}, kp, causal)[0] == 0.0f);
    CHECK(uniform_attention_ref({3}, {-1, -1, -1}, causal)[0] == 0.0f);
}

TEST_CASE("reference attention: softmax, scale and softcap, hand-computed") {
    // one query, two keys, d = 1: scores s_j = scale * q * k_j, weights softmax(softcap(s))
    for (float cap : {0.0f, 1.5f}) {
        Built b;
        Tensor* q = b.arena.make(b.ctx, DType::F32, {1, 1, 1});
        Tensor* k = b.arena.make(b.ctx, DType::F32, {1, 1, 2});
        Tensor* v = b.arena.make(b.ctx, DType::F32, {2, 1, 2});
        b.arena.fill(q, {2.0f});
        b.arena.fill(k, {1.0f, -0.5f});
        b.arena.fill(v, {1.0f, 0.0f, 0.0f, 1.0f});
        Tensor* qp = b.arena.make(b.ctx, DType::I32, {1});
        Tensor* kp = b.arena.make(b.ctx, DType::I32, {2});
        b.arena.fill_i32(qp, {7});
        b.arena.fill_i32(kp, {3, 5});
        AttentionSpec spec;
        spec.scale = 0.75f;
        spec.softcap = cap;
        b.out = attention(b.ctx, q, k, v, qp, kp, spec);
        b.graph.expand(b.out);
        const auto out = compute_on(b, "reference", 1);
        double s0 = 0.75 * 2.0 * 1.0, s1 = 0.75 * 2.0 * -0.5;
        if (cap > 0) s0 = cap * std::tanh(s0 / cap), s1 = cap * std::tanh(s1 / cap);
        const double w0 = 1.0 / (1.0 + std::exp(s1 - s0));
        CHECK(out[0] == doctest::Approx(w0).epsilon(1e-6));
        CHECK(out[1] == doctest::Approx(1.0 - w0).epsilon(1e-6));
    }
}

TEST_CASE("cpu backend computes attention with the flash kernel") {
    // The op tests below go through create_backend("cpu"); this pins that the backend really runs the
    // cpu kernel (bit-identical to calling it directly) and not, say, a fallback to the reference.
    Case c;
    c.name = "wiring";
    c.n_head = 8;
    c.n_kv_head = 2;
    c.cache = DType::F16;
    c.k_pos = iota_pos(300);
    c.q_pos = iota_pos(4, 296);
    c.spec.scale = 0.3f;
    Built b;
    build(b, c);
    for (int threads : {1, 2}) {
        const auto via_backend = compute_on(b, "cpu", threads);
        poison(b.out);
        ThreadPool pool(threads);
        cpu::kernels_in_use().attention(b.out, pool);
        const auto direct = tessera::testing::to_floats(*b.out);
        CHECK(std::memcmp(via_backend.data(), direct.data(), direct.size() * sizeof(float)) == 0);
    }
}

TEST_CASE("cpu attention matches the reference: mappings x masks x softcap x cache types x lengths") {
    int cases = 0;
    for (const Mapping& m : kMappings) {
        // lengths around the kernel's kv tile for these heads, for both query counts used below (2 queries may
        // take the streaming kernel and 5 the tiled one, with different tiles)
        std::vector<int64_t> lengths = {1, 3, 17, 1000};
        for (int64_t nq : {2, 5}) {
            const int64_t tile = cpu::kernels_in_use().plan_attention_shape(m.n_head, m.n_kv_head, m.d_k, m.d_v, nq, 1000, 1).kv_tile;
            for (int64_t n : {tile - 1, tile, tile + 1})
                if (std::find(lengths.begin(), lengths.end(), n) == lengths.end()) lengths.push_back(n);
        }
        for (int64_t n_kv : lengths) {
            for (int mask = 0; mask < 4; ++mask) {
                for (float cap : {0.0f, 2.5f}) {
                    for (DType cache : {DType::F32, DType::F16, DType::Q8_0}) {
                        Case c;
                        c.name = m.name;
                        c.n_head = m.n_head;
                        c.n_kv_head = m.n_kv_head;
                        c.d_k = m.d_k;
                        c.d_v = m.d_v;
                        c.mla = m.mla;
                        c.cache = cache;
                        // a chunk of queries at the end of the cache, as in prefill; decode-sized when long
                        const int64_t n_q = n_kv >= 1000 ? 2 : std::min<int64_t>(n_kv, 5);
                        c.k_pos = iota_pos(n_kv);
                        c.q_pos = iota_pos(n_q, int32_t(n_kv - n_q));
                        c.spec.causal = mask != 1 && mask != 3;
                        c.spec.window = mask >= 2 ? 7 : 0;
                        // ~3x the usual 1/sqrt(d): peaked softmax, so a wrong mask or weight shows
                        c.spec.scale = 3.0f / std::sqrt(float(m.d_k));
                        c.spec.softcap = cap;
                        c.seed = uint64_t(100 + cases);
                        check_case(c);
                        ++cases;
                    }
                }
            }
        }
    }
    MESSAGE(cases << " cases");
}

TEST_CASE("cpu attention: queries at non-zero positions, windows at the edges") {
    for (const Mapping& m : kMappings) {
        for (DType cache : {DType::F16, DType::Q8_0}) {
            // decode: one token at position 999 against 1000 entries; window = position and position + 1
            for (int32_t window : {0, 999, 1000, 1001, 1}) {
                Case c;
                c.name = std::string(m.name) + " decode@999";
                c.n_head = m.n_head, c.n_kv_head = m.n_kv_head, c.d_k = m.d_k, c.d_v = m.d_v, c.mla = m.mla;
                c.cache = cache;
                c.k_pos = iota_pos(1000);
                c.q_pos = {999};
                c.spec.window = window;
                c.spec.scale = 3.0f / std::sqrt(float(m.d_k));
                c.seed = 7 + uint64_t(window);
                check_case(c);
            }
            // prefill chunk at positions 500..515 against entries 0..515, causal, with and without window
            for (int32_t window : {0, 16, 501}) {
                Case c;
                c.name = std::string(m.name) + " chunk@500";
                c.n_head = m.n_head, c.n_kv_head = m.n_kv_head, c.d_k = m.d_k, c.d_v = m.d_v, c.mla = m.mla;
                c.cache = cache;
                c.k_pos = iota_pos(516);
                c.q_pos = iota_pos(16, 500);
                c.spec.window = window;
                c.spec.softcap = window == 16 ? 4.0f : 0.0f;
                c.spec.scale = 3.0f / std::sqrt(float(m.d_k));
                c.seed = 17 + uint64_t(window);
                check_case(c);
            }
        }
    }
}

TEST_CASE("cpu attention: query tiles and prefill from position 0") {
    // query counts around the kernel's query tile, so units hold full and partial tiles of queries
    for (const Mapping& m : kMappings) {
        if (m.mla) continue;  // 1 query per tile at group 4 is covered by the chunk cases
        const int64_t g = m.n_head / m.n_kv_head;
        const int64_t qt = cpu::kernels_in_use().attention_q_tile(g);
        for (int64_t n : {qt - 1, qt, qt + 1, 2 * qt + 3}) {
            if (n < 1) continue;
            for (int32_t window : {0, 5}) {
                Case c;
                c.name = std::string(m.name) + " prefill";
                c.n_head = m.n_head, c.n_kv_head = m.n_kv_head, c.d_k = m.d_k, c.d_v = m.d_v;
                c.cache = DType::F16;
                c.k_pos = iota_pos(n);
                c.q_pos = iota_pos(n);
                c.spec.window = window;
                c.spec.scale = 3.0f / std::sqrt(float(m.d_k));
                c.seed = 31 + uint64_t(n);
                check_case(c);
            }
        }
    }
}

TEST_CASE("cpu attention: ring caches with empty slots and unsorted positions") {
    std::mt19937 rng(5);
    for (const Mapping& m : kMappings) {
        for (DType cache : {DType::F32, DType::F16, DType::Q8_0}) {
            // a window layer's ring: slot = position % ring; the newest 90 tokens up to position 299 are in
            // it, the rest of its slots are still empty; decode and a 3-token chunk at the end
            const int64_t ring = 150;
            std::vector<int32_t> kp(ring, -1);
            for (int32_t pos = 210; pos < 300; ++pos) kp[size_t(pos % ring)] = pos;
            for (int64_t n_q : {1, 3}) {
                Case c;
                c.name = std::string(m.name) + " ring";
                c.n_head = m.n_head, c.n_kv_head = m.n_kv_head, c.d_k = m.d_k, c.d_v = m.d_v, c.mla = m.mla;
                c.cache = cache;
                c.k_pos = kp;
                c.q_pos = iota_pos(n_q, int32_t(300 - n_q));
                c.spec.window = 64;
                c.spec.scale = 3.0f / std::sqrt(float(m.d_k));
                c.seed = 41 + uint64_t(n_q);
                check_case(c);
            }
            // fully shuffled positions with a third of the slots empty, no window
            std::vector<int32_t> shuffled = iota_pos(400);
            std::shuffle(shuffled.begin(), shuffled.end(), rng);
            for (size_t j = 0; j < shuffled.size(); j += 3) shuffled[j] = -1;
            Case c;
            c.name = std::string(m.name) + " shuffled";
            c.n_head = m.n_head, c.n_kv_head = m.n_kv_head, c.d_k = m.d_k, c.d_v = m.d_v, c.mla = m.mla;
            c.cache = cache;
            c.k_pos = shuffled;
            c.q_pos = {150, 399, 42};
            c.spec.scale = 3.0f / std::sqrt(float(m.d_k));
            c.seed = 51;
            check_case(c);
        }
    }
}

TEST_CASE("cpu attention: fully masked rows give zeros, not NaN") {
    for (const Mapping& m : kMappings) {
        Case c;
        c.name = std::string(m.name) + " masked";
        c.n_head = m.n_head, c.n_kv_head = m.n_kv_head, c.d_k = m.d_k, c.d_v = m.d_v, c.mla = m.mla;
        c.cache = DType::F16;
        c.k_pos = iota_pos(600, 100);  // keys at 100..699
        for (size_t j = 0; j < 600; j += 7) c.k_pos[j] = -1;
        // query 0 precedes every key (causal: nothing visible), query 1 sees some, query 2 sees all
        c.q_pos = {50, 300, 800};
        c.spec.scale = 3.0f / std::sqrt(float(m.d_k));
        Built b;
        build(b, c);
        const auto want = compute_on(b, "reference", 1);
        for (int threads : {1, 2}) {
            INFO(describe(c) << " threads " << threads);
            const auto got = compute_on(b, "cpu", threads);
            // query 0's rows (all heads) come first in the [d_v, n_head, n_q] output
            CHECK(std::all_of(got.begin(), got.begin() + c.n_head * c.d_v, [](float x) { return x == 0.0f; }));
            CHECK(tessera::testing::closeness(got, want, kAtol, kRtol) <= 1.0);
        }
        // every slot empty: all rows zero
        Case e = c;
        e.k_pos.assign(e.k_pos.size(), -1);
        Built be;
        build(be, e);
        for (int threads : {1, 2}) {
            const auto got = compute_on(be, "cpu", threads);
            CHECK(std::all_of(got.begin(), got.end(), [](float x) { return x == 0.0f; }));
        }
    }
}

TEST_CASE("cpu attention: strided layouts and head dims off the SIMD width") {
    struct Dims {
        int64_t n_head, n_kv_head, d_k, d_v;
        std::vector<DType> caches;
    };
    const Dims dims[] = {
        {6, 3, 40, 40, {DType::F32, DType::F16}},           // 40: not a multiple of 16 (pads inside the kernel)
        {4, 2, 96, 64, {DType::F32, DType::F16, DType::Q8_0}},  // d_k != d_v without MLA's aliasing
        {3, 3, 1, 1, {DType::F32, DType::F16}},             // one-element heads
    };
    for (const Dims& d : dims) {
        for (DType cache : d.caches) {
            for (int layout = 0; layout < 3; ++layout) {
                Case c;
                c.name = "layout" + std::to_string(layout);
                c.n_head = d.n_head, c.n_kv_head = d.n_kv_head, c.d_k = d.d_k, c.d_v = d.d_v;
                c.cache = cache;
                c.head_major = layout >= 1;
                c.strided_q = layout == 2;
                c.k_pos = iota_pos(133);
                c.q_pos = iota_pos(5, 128);
                c.spec.window = layout == 1 ? 50 : 0;
                c.spec.softcap = layout == 2 ? 3.0f : 0.0f;
                c.spec.scale = 3.0f / std::sqrt(float(d.d_k));
                c.seed = 61 + uint64_t(layout);
                check_case(c);
            }
        }
    }
}

TEST_CASE("cpu attention: MLA decode with 128 heads at 1000 entries") {
    // the real DeepSeek shape: 128 query heads on one latent KV head of 576 (v = its first 512);
    // with 2 threads one unit is split over the key sequence and merged by log-sum-exp
    for (DType cache : {DType::F16, DType::Q8_0}) {
        for (int32_t window : {0, 300}) {
            Case c;
            c.name = "mla128";
            c.n_head = 128, c.n_kv_head = 1, c.d_k = 576, c.d_v = 512, c.mla = true;
            c.cache = cache;
            c.k_pos = iota_pos(1000);
            c.q_pos = {999};
            c.spec.window = window;
            c.spec.scale = 1.0f / std::sqrt(192.0f) * 2.0f;
            c.seed = 71;
            check_case(c);
        }
    }
}

TEST_CASE("cpu attention: decode streaming kernels at every group size 1..8, head dims 128 and 80") {
    // One query token with 1..8 query heads per KV head takes the streaming kernels, which are specialised per
    // row count: score blocks of kL / group keys reduced in registers, pv blocks of 8 keys with the output
    // columns in registers, in groups of C registers plus single registers for the rest (80 = 5 x 16).
    // 135 keys = a full 128-key tile + 7: key tails for every block size; the window of 50 masks part of the
    // first tile, so pv blocks whose weights are all zero are skipped.
    int cases = 0;
    for (int64_t g = 1; g <= 8; ++g) {
        for (int64_t d : {128, 80}) {
            for (DType cache : {DType::F32, DType::F16, DType::Q8_0}) {
                if (cache == DType::Q8_0 && d % 32 != 0) continue;  // q8_0 rows are whole 32-value blocks
                for (int64_t n_kv : {9, 135}) {
                    for (int32_t window : {0, 50}) {
                        Case c;
                        c.name = "stream-g" + std::to_string(g);
                        c.n_head = 2 * g, c.n_kv_head = 2, c.d_k = d, c.d_v = d;
                        c.cache = cache;
                        c.k_pos = iota_pos(n_kv);
                        c.q_pos = {int32_t(n_kv - 1)};
                        c.spec.window = window;
                        c.spec.scale = 3.0f / std::sqrt(float(d));
                        c.seed = 300 + uint64_t(cases);
                        // the case must reach the kernels it is meant for
                        CHECK(cpu::kernels_in_use().plan_attention_shape(c.n_head, c.n_kv_head, d, d, 1, n_kv, 1).streaming);
                        check_case(c);
                        ++cases;
                    }
                }
            }
        }
    }
    MESSAGE(cases << " cases");
}

TEST_CASE("reference attention: sinks join the denominator without a value, hand-computed") {
    // one query, two keys, d = 1, head 0 with sink logit z: weights exp(s_j) / (exp(s_0) + exp(s_1) + exp(z))
    for (float z : {-1.0f, 0.5f, 40.0f}) {
        Built b;
        Tensor* q = b.arena.make(b.ctx, DType::F32, {1, 1, 1});
        Tensor* k = b.arena.make(b.ctx, DType::F32, {1, 1, 2});
        Tensor* v = b.arena.make(b.ctx, DType::F32, {2, 1, 2});
        Tensor* sinks = b.arena.make(b.ctx, DType::F32, {1});
        b.arena.fill(q, {2.0f});
        b.arena.fill(k, {1.0f, -0.5f});
        b.arena.fill(v, {1.0f, 0.0f, 0.0f, 1.0f});
        b.arena.fill(sinks, {z});
        Tensor* qp = b.arena.make(b.ctx, DType::I32, {1});
        Tensor* kp = b.arena.make(b.ctx, DType::I32, {2});
        b.arena.fill_i32(qp, {7});
        b.arena.fill_i32(kp, {3, 5});
        AttentionSpec spec;
        spec.scale = 0.75f;  // scales the scores, not the sink
        spec.sinks = sinks;
        b.out = attention(b.ctx, q, k, v, qp, kp, spec);
        b.graph.expand(b.out);
        const auto out = compute_on(b, "reference", 1);
        const double s0 = 0.75 * 2.0, s1 = 0.75 * 2.0 * -0.5;
        const double denom = std::exp(s0) + std::exp(s1) + std::exp(double(z));
        INFO("sink " << z);
        CHECK(out[0] == doctest::Approx(std::exp(s0) / denom).epsilon(1e-6));
        CHECK(out[1] == doctest::Approx(std::exp(s1) / denom).epsilon(1e-6));
        CHECK(out[0] + out[1] < 1.0f);  // the sink took its share of the mass
    }
    // a row that sees no key stays zeros (the sink has no value to give)
    Built b;
    Tensor* q = b.arena.make(b.ctx, DType::F32, {4, 2, 1});
    Tensor* k = b.arena.make(b.ctx, DType::F32, {4, 1, 3});
    Tensor* v = b.arena.make(b.ctx, DType::F32, {4, 1, 3});
    Tensor* sinks = b.arena.make(b.ctx, DType::F32, {2});
    b.arena.fill_random(q, 1);
    b.arena.fill_random(k, 2);
    b.arena.fill_random(v, 3);
    b.arena.fill(sinks, {1.0f, -2.0f});
    Tensor* qp = b.arena.make(b.ctx, DType::I32, {1});
    Tensor* kp = b.arena.make(b.ctx, DType::I32, {3});
    b.arena.fill_i32(qp, {0});
    b.arena.fill_i32(kp, {-1, 4, 5});
    AttentionSpec spec;
    spec.sinks = sinks;
    b.out = attention(b.ctx, q, k, v, qp, kp, spec);
    b.graph.expand(b.out);
    for (float x : compute_on(b, "reference", 1)) CHECK(x == 0.0f);
}

TEST_CASE("attention sinks: a wrongly shaped sinks tensor is refused at build time") {
    Built b;
    Tensor* q = b.arena.make(b.ctx, DType::F32, {8, 4, 2});
    Tensor* k = b.arena.make(b.ctx, DType::F32, {8, 2, 5});
    Tensor* v = b.arena.make(b.ctx, DType::F32, {8, 2, 5});
    Tensor* qp = b.arena.make(b.ctx, DType::I32, {2});
    Tensor* kp = b.arena.make(b.ctx, DType::I32, {5});
    AttentionSpec spec;
    spec.sinks = b.arena.make(b.ctx, DType::F32, {2});  // one per KV head, not per query head
    CHECK_THROWS_WITH(attention(b.ctx, q, k, v, qp, kp, spec), doctest::Contains("sinks"));
    spec.sinks = b.arena.make(b.ctx, DType::F16, {4});
    CHECK_THROWS_WITH(attention(b.ctx, q, k, v, qp, kp, spec), doctest::Contains("sinks"));
}

TEST_CASE("cpu attention with sinks matches the reference: mappings x masks x cache types x decode/prefill") {
    // Sinks change only each row's final division (and the split-KV merge), so the cases cover both
    // final paths: one split (prefill, 1 thread) and several (decode with 2 threads), the streaming and the
    // tiled kernels (2 vs 5 queries), and rows where the sink dominates (logit 8 against scores of ~1).
    int cases = 0;
    for (const Mapping& m : kMappings) {
        for (int64_t n_kv : {1, 17, 300}) {
            for (int mask = 0; mask < 2; ++mask) {
                for (DType cache : {DType::F32, DType::F16, DType::Q8_0}) {
                    for (int64_t n_q : {1, 2, 5}) {
                        Case c;
                        c.name = std::string(m.name) + " sinks";
                        c.n_head = m.n_head;
                        c.n_kv_head = m.n_kv_head;
                        c.d_k = m.d_k;
                        c.d_v = m.d_v;
                        c.mla = m.mla;
                        c.cache = cache;
                        const int64_t nq = std::min(n_q, n_kv);
                        c.k_pos = iota_pos(n_kv);
                        c.q_pos = iota_pos(nq, int32_t(n_kv - nq));
                        c.spec.window = mask ? 8 : 0;
                        c.spec.scale = 3.0f / std::sqrt(float(m.d_k));
                        c.sinks.resize(size_t(m.n_head));
                        for (int64_t h = 0; h < m.n_head; ++h) c.sinks[size_t(h)] = h % 3 == 2 ? 8.0f : -2.0f + h * 0.7f;
                        c.seed = uint64_t(5000 + cases);
                        check_case(c);
                        ++cases;
                    }
                }
            }
        }
    }
    MESSAGE(cases << " cases");
}

// ---- several sequences in one batch ----

TEST_CASE("reference attention: a query sees only its own sequence's cells, hand-computed") {
    // Six cells: sequence 0 holds positions 0, 1, 2 (cells 0, 1, 4), sequence 1 positions 0, 1, 2 (cells 2, 3,
    // 5); cell 5 also shows that a cell of another sequence at an earlier position stays hidden.
    const std::vector<int32_t> k_pos = {0, 1, 0, 1, 2, 2}, k_seq = {0, 0, 1, 1, 0, 1};
    AttentionSpec spec;
    const auto out = uniform_attention_ref({1, 2, 2, 0}, k_pos, spec, {1, 0, 1, 0}, k_seq);
    CHECK(out[0] == doctest::Approx(mean_of_bits({2, 3})));     // sequence 1 at position 1
    CHECK(out[1] == doctest::Approx(mean_of_bits({0, 1, 4})));  // sequence 0 at position 2
    CHECK(out[2] == doctest::Approx(mean_of_bits({2, 3, 5})));  // sequence 1 at position 2
    CHECK(out[3] == doctest::Approx(mean_of_bits({0})));        // sequence 0 at position 0
    // A sequence with no cells at all: zeros, like any row with nothing visible.
    CHECK(uniform_attention_ref({0}, k_pos, spec, {7}, k_seq)[0] == 0.0f);
    // With a window of 2, sequence 0 at position 2 sees positions 1 and 2 of its own only.
    spec.window = 2;
    CHECK(uniform_attention_ref({2}, k_pos, spec, {0}, k_seq)[0] == doctest::Approx(mean_of_bits({1, 4})));
}

TEST_CASE("attention sequences: q_seq without k_seq, or wrong types or lengths, are refused at build time") {
    Built b;
    Tensor* q = b.arena.make(b.ctx, DType::F32, {64, 4, 3});
    Tensor* k = b.arena.make(b.ctx, DType::F16, {64, 2, 10});
    Tensor* v = b.arena.make(b.ctx, DType::F16, {64, 2, 10});
    Tensor* qp = b.arena.make(b.ctx, DType::I32, {3});
    Tensor* kp = b.arena.make(b.ctx, DType::I32, {10});
    AttentionSpec spec;
    spec.q_seq = b.arena.make(b.ctx, DType::I32, {3});
    CHECK_THROWS_WITH(attention(b.ctx, q, k, v, qp, kp, spec), doctest::Contains("q_seq and k_seq"));
    spec.k_seq = b.arena.make(b.ctx, DType::I32, {9});
    CHECK_THROWS_WITH(attention(b.ctx, q, k, v, qp, kp, spec), doctest::Contains("k_seq"));
    spec.k_seq = b.arena.make(b.ctx, DType::F32, {10});
    CHECK_THROWS_WITH(attention(b.ctx, q, k, v, qp, kp, spec), doctest::Contains("k_seq"));
    spec.k_seq = b.arena.make(b.ctx, DType::I32, {10});
    spec.q_seq = b.arena.make(b.ctx, DType::I32, {2});
    CHECK_THROWS_WITH(attention(b.ctx, q, k, v, qp, kp, spec), doctest::Contains("q_seq"));
}

namespace {

// A cache of n_seq sequences laid out as the KV cache does: sequence s owns cells [s * per_seq, (s + 1) *
// per_seq) and holds positions 0 .. used[s] - 1 there (the rest empty, -1). interleave: cells dealt round
// robin over the sequences instead (every tile then holds every sequence: the per-pair mask path).
void seq_cache(Case& c, const std::vector<int64_t>& used, int64_t per_seq, bool interleave) {
    const int64_t n_seq = int64_t(used.size());
    c.k_pos.assign(size_t(n_seq * per_seq), -1);
    c.k_seq.assign(size_t(n_seq * per_seq), -1);
    for (int64_t s = 0; s < n_seq; ++s)
        for (int64_t p = 0; p < used[size_t(s)]; ++p) {
            const int64_t cell = interleave ? p * n_seq + s : s * per_seq + p;
            c.k_pos[size_t(cell)] = int32_t(p);
            c.k_seq[size_t(cell)] = int32_t(s);
        }
}

}  // namespace

TEST_CASE("cpu attention with several sequences matches the reference: decode mixes, prefill beside decode") {
    // Batches a server makes: one new token of each sequence at its own position (decode), and a prompt
    // chunk of one sequence beside single tokens of the others, in token order that mixes sequences.
    // Sequence lengths put cells of one sequence alone in whole tiles (skipped for the others' queries)
    // and sequences sharing a tile (the per-pair mask); an interleaved layout puts every sequence in every
    // tile. Cases where some sequence holds nothing but its own queries' cells and where a query's sequence
    // has no cells at all (zeros) are included.
    int cases = 0;
    std::vector<Mapping> mappings(std::begin(kMappings), std::end(kMappings));
    mappings.push_back({"odd dims", 6, 3, 40, 24, false});  // head dims off the SIMD width (q8_0 needs 32s)
    for (const Mapping& m : mappings) {
        for (DType cache : {DType::F32, DType::F16, DType::Q8_0}) {
            if (cache == DType::Q8_0 && m.d_k % 32 != 0) continue;
            for (int kind = 0; kind < 6; ++kind) {
                Case c;
                c.name = std::string(m.name) + " sequences kind " + std::to_string(kind);
                c.n_head = m.n_head;
                c.n_kv_head = m.n_kv_head;
                c.d_k = m.d_k;
                c.d_v = m.d_v;
                c.mla = m.mla;
                c.cache = cache;
                c.spec.scale = 1.0f / std::sqrt(float(m.d_k));
                if (kind == 0) {  // decode: 3 sequences of 200, 1 and 77 tokens, one query each at its last
                    seq_cache(c, {200, 1, 77}, 256, false);
                    c.q_pos = {199, 0, 76};
                    c.q_seq = {0, 1, 2};
                } else if (kind == 1) {  // 5 queries: a chunk of 3 of sequence 1 between tokens of 0 and 2
                    seq_cache(c, {40, 19, 130}, 150, false);
                    c.q_pos = {39, 16, 17, 18, 129};
                    c.q_seq = {0, 1, 1, 1, 2};
                } else if (kind == 2) {  // interleaved cells, window 8, a sequence (3) with no cells
                    seq_cache(c, {50, 33, 9}, 60, true);
                    c.q_pos = {49, 30, 31, 32, 8, 0};
                    c.q_seq = {0, 1, 1, 1, 2, 3};
                    c.spec.window = 8;
                } else if (kind == 3) {  // eight decoders over 70 cells each, two of them longer than a tile
                    seq_cache(c, {70, 3, 140, 5, 9, 66, 1, 130}, 140, false);
                    c.q_pos = {69, 2, 139, 4, 8, 65, 0, 129};
                    c.q_seq = {0, 1, 2, 3, 4, 5, 6, 7};
                } else if (kind == 4) {  // queries of two sequences alternating, each in its order
                    seq_cache(c, {37, 21}, 64, false);
                    c.q_pos = {33, 18, 34, 19, 35, 20, 36};
                    c.q_seq = {0, 1, 0, 1, 0, 1, 0};
                } else {  // lengths one past and one short of the tiles (16 .. 128): tiles read up to their last cell
                    seq_cache(c, {129, 127, 17, 65, 33}, 300, false);
                    c.q_pos = {128, 126, 16, 64, 32};
                    c.q_seq = {0, 1, 2, 3, 4};
                }
                c.seed = uint64_t(7000 + cases);
                check_case(c);
                ++cases;
            }
        }
    }
    MESSAGE(cases << " cases");
}

TEST_CASE("cpu attention: query tiles never mix sequences and keep every query once, in order") {
    // A tile of one sequence sees only that sequence's cells; a tile mixing two would read both.
    const std::vector<int32_t> seqs = {0, 1, 1, 1, 2, 2, 2, 2, 2, 0, 0, 3};
    for (int64_t q_tile : {1, 2, 3, 8}) {
        INFO("q_tile " << q_tile);
        const auto tiles = cpu::attention_query_tiles(int64_t(seqs.size()), q_tile, seqs.data());
        int64_t next = 0;
        for (const cpu::QueryTile& t : tiles) {
            CHECK(t.q0 == next);
            CHECK((t.n >= 1 && t.n <= q_tile));
            for (int64_t i = t.q0; i < t.q0 + t.n; ++i) CHECK(seqs[size_t(i)] == seqs[size_t(t.q0)]);
            next = t.q0 + t.n;
        }
        CHECK(next == int64_t(seqs.size()));
    }
    // q_tile 8: runs 0 | 1 1 1 | 2 2 2 2 2 | 0 0 | 3
    CHECK(cpu::attention_query_tiles(int64_t(seqs.size()), 8, seqs.data()).size() == 5);
    // one sequence: uniform tiles, the last one short
    const auto one = cpu::attention_query_tiles(20, 8, nullptr);
    REQUIRE(one.size() == 3);
    CHECK((one[2].q0 == 16 && one[2].n == 4));
}

TEST_CASE("cpu attention: a batch of several sequences gives each query what its sequence alone gives") {
    // The property the server relies on: the same cells and queries split into one attention per sequence
    // (no sequence mask) give the same rows as the mixed batch. Cell contents are shared, so the two runs
    // read identical bytes and do the same float arithmetic per tile; what differs is how the visible tiles
    // are cut into split-KV slices, which reorders a few float additions of the merge: a few ulps of values
    // in [-1, 1], far below 1e-5, while a query that saw the other sequence's keys is off by ~1e-2.
    for (DType cache : {DType::F16, DType::Q8_0}) {
        Case mixed;
        mixed.name = "mixed";
        mixed.n_head = 8;
        mixed.n_kv_head = 2;
        mixed.cache = cache;
        mixed.spec.scale = 0.125f;
        seq_cache(mixed, {90, 140}, 150, false);
        mixed.q_pos = {88, 89, 139};
        mixed.q_seq = {0, 0, 1};
        Built b;
        build(b, mixed);
        const std::vector<float> together = compute_on(b, "cpu", 2);
        // Alone: the same tensors, each sequence's queries with the other sequence's cells marked empty.
        const Tensor* q = b.out->src[0];
        for (int32_t s : {0, 1}) {
            Built one;
            Tensor* qs = one.arena.make(one.ctx, DType::F32, {q->ne[0], q->ne[1], q->ne[2]});
            std::memcpy(qs->data, q->data, q->nbytes());
            Tensor* k = one.arena.make(one.ctx, cache, {b.out->src[1]->ne[0], b.out->src[1]->ne[1], b.out->src[1]->ne[2]});
            Tensor* v = one.arena.make(one.ctx, cache, {b.out->src[2]->ne[0], b.out->src[2]->ne[1], b.out->src[2]->ne[2]});
            std::memcpy(k->data, b.out->src[1]->data, k->nbytes());
            std::memcpy(v->data, b.out->src[2]->data, v->nbytes());
            std::vector<int32_t> kp = mixed.k_pos;
            for (size_t j = 0; j < kp.size(); ++j)
                if (mixed.k_seq[j] != s) kp[j] = -1;
            Tensor* qp = one.arena.make(one.ctx, DType::I32, {3});
            Tensor* kpt = one.arena.make(one.ctx, DType::I32, {int64_t(kp.size())});
            one.arena.fill_i32(qp, mixed.q_pos);
            one.arena.fill_i32(kpt, kp);
            one.out = attention(one.ctx, qs, k, v, qp, kpt, mixed.spec);
            one.out->flags |= kFlagOutput;
            one.graph.expand(one.out);
            const std::vector<float> alone = compute_on(one, "cpu", 2);
            const int64_t row = 64 * 8;  // d_v x n_head floats per query
            for (size_t i = 0; i < mixed.q_seq.size(); ++i) {
                if (mixed.q_seq[i] != s) continue;
                INFO("cache " << type_name(cache) << " query " << i);
                const std::vector<float> a(together.begin() + int64_t(i) * row, together.begin() + int64_t(i + 1) * row);
                const std::vector<float> w(alone.begin() + int64_t(i) * row, alone.begin() + int64_t(i + 1) * row);
                CHECK(tessera::testing::closeness(a, w, 1e-5, 0) <= 1.0);
            }
        }
    }
}
