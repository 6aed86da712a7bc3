// Kernel-level tests of the cpu backend's own helpers (tests/test_ops.cpp covers every op against the
// reference through the Backend interface): the exact f16/bf16 vector conversions, the 16-way horizontal
// reduction, and the matmul's blocking edges that the op harness's shapes do not reach (k longer than one
// k-block, weight-panel and register-block tails, the decode/prefill switch), at 1 and 2 threads, at every
// kernel level this CPU runs (tests/cpu_levels.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "tests/cpu_levels.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

constexpr double kU = 1.0 / (1 << 24);  // float unit roundoff

uint32_t bits(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    return x;
}
float from_bits(uint32_t x) {
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

// Floats that exercise conversions: random bit patterns (every exponent, NaNs, subnormals) and edges.
std::vector<float> tricky_floats(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<float> v;
    for (size_t i = 0; i < n; ++i) v.push_back(from_bits(uint32_t(rng())));
    const float edges[] = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.99f, 65520.0f, 1e10f, -1e10f,
                           std::ldexp(1.0f, -24), std::ldexp(1.0f, -25), std::ldexp(1.5f, -25), std::ldexp(3.0f, -25),
                           1.0f + std::ldexp(1.0f, -11), 1.0f + 3 * std::ldexp(1.0f, -11),
                           std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min(),
                           from_bits(0x3f808000u), from_bits(0x3f818000u), from_bits(0x7f7fffffu)};
    for (float e : edges) v.push_back(e);
    return v;
}

}  // namespace

TEST_CASE("cpu convert: f32 -> f16 and bf16 rows equal the scalar reference conversions") {
    // n = 1037: whole vectors plus a tail, so both the SIMD and the scalar paths run.
    const std::vector<float> x = tricky_floats(1016, 11);
    const int64_t n = int64_t(x.size());
    for (const cpu::CpuKernels* k : cpu_level_tables()) {
    INFO("cpu level " << k->name());
    std::vector<uint16_t> h(x.size()), b(x.size());
    k->convert_f32_to_f16(x.data(), h.data(), n);
    k->convert_f32_to_bf16(x.data(), b.data(), n);
    for (size_t i = 0; i < x.size(); ++i) {
        if (std::isnan(x[i])) {  // NaN payload bits may differ; NaN must stay NaN
            CHECK(std::isnan(fp16_to_fp32(h[i])));
            CHECK(std::isnan(bf16_to_fp32(b[i])));
            continue;
        }
        INFO("element " << i << " bits 0x" << std::hex << bits(x[i]));
        CHECK(h[i] == fp32_to_fp16(x[i]));
        CHECK(b[i] == fp32_to_bf16(x[i]));
    }
    }
}

TEST_CASE("cpu convert: every f16 and bf16 value widens exactly") {
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = uint16_t(i);
    for (const cpu::CpuKernels* k : cpu_level_tables()) {
    INFO("cpu level " << k->name());
    std::vector<float> f(65536), g(65536);
    k->convert_to_f32(DType::F16, all.data(), f.data(), 65536);
    k->convert_to_f32(DType::BF16, all.data(), g.data(), 65536);
    for (uint32_t i = 0; i < 65536; ++i) {
        const float want_h = fp16_to_fp32(uint16_t(i)), want_b = bf16_to_fp32(uint16_t(i));
        if (std::isnan(want_h))
            CHECK(std::isnan(f[i]));
        else
            REQUIRE(bits(f[i]) == bits(want_h));
        if (std::isnan(want_b))
            CHECK(std::isnan(g[i]));
        else
            REQUIRE(bits(g[i]) == bits(want_b));
    }
    }
}

TEST_CASE("cpu activation quantization: Q8_0 and Q8_K blocks equal core's reference bytes") {
    // The kernels' SIMD conversion must give core's bytes exactly (llama.cpp's quantizers, which the golden
    // files were made with). Rows hold the cases where a rounding rule shows: products landing on halves
    // (std::round takes them away from zero, Q8_K's nearest_int to even), a block whose largest magnitude
    // comes twice with both signs (the first decides Q8_K's scale sign), all-zero blocks, and tiny and huge
    // values.
    const int64_t k = 1024;  // 32 Q8_0 blocks, 4 Q8_K super-blocks
    std::vector<std::vector<float>> rows;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float scale : {1.0f, 1e-30f, 3e4f}) {
        std::vector<float> r(static_cast<size_t>(k));
        for (float& v : r) v = u(rng) * scale;
        rows.push_back(r);
    }
    std::vector<float> halves(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) halves[size_t(i)] = float(i % 253 - 126) + (i % 2 ? 0.5f : -0.5f);
    for (int64_t b = 0; b < k; b += 32) halves[size_t(b)] = 127.0f;  // |x| <= 127: d = 1, x * id = x
    rows.push_back(halves);
    std::vector<float> ties = rows[0];
    for (int64_t b = 0; b < k; b += 256) {
        ties[size_t(b + 3)] = -1.5f;  // the largest magnitude, first negative...
        ties[size_t(b + 9)] = 1.5f;   // ...then positive
    }
    std::fill(ties.begin() + 256, ties.begin() + 512, 0.0f);  // a zero super-block (and 8 zero Q8_0 blocks)
    rows.push_back(ties);

    for (const cpu::CpuKernels* kl : cpu_level_tables())
        for (DType w : {DType::Q4_0, DType::Q4_K}) {
            const DType at = kl->activation_type(w);
            const size_t bytes = kl->activation_row_bytes(w, k);
            for (size_t r = 0; r < rows.size(); ++r) {
                INFO("cpu level " << std::string(cpu::cpu_level_name(kl->level)) << ", " << std::string(type_name(at))
                                  << ", row " << r);
                std::vector<uint8_t> got(bytes, 0xAB), want(bytes, 0xCD);
                kl->quantize_activations(w, rows[r].data(), got.data(), k);
                type_traits(at).from_float(rows[r].data(), want.data(), k);
                size_t first_diff = 0;
                while (first_diff < bytes && got[first_diff] == want[first_diff]) ++first_diff;
                INFO("first differing byte " << first_diff << " of " << bytes);
                CHECK(first_diff == bytes);
            }
        }
}

TEST_CASE("cpu reduce16: sixteen horizontal sums land in order") {
    // Lane values are small integers, so every sum is exact and order mistakes show as wrong values.
    for (const cpu::CpuKernels* k : cpu_level_tables()) {
        INFO("cpu level " << k->name() << ", " << k->float_lanes << " lanes");
        std::vector<float> lanes(size_t(16 * k->float_lanes));
        float want[16];
        for (int i = 0; i < 16; ++i) {
            want[i] = 0;
            for (int l = 0; l < k->float_lanes; ++l) {
                lanes[size_t(i * k->float_lanes + l)] = float((i + 1) * 100 + l * (i % 3 + 1));
                want[i] += lanes[size_t(i * k->float_lanes + l)];
            }
        }
        float got[16];
        k->reduce16(lanes.data(), got);
        for (int i = 0; i < 16; ++i) CHECK(got[i] == want[i]);
    }
}

namespace {

// The graph ending in `out` computed by the cpu backend at kernel level `level` with `threads` and then by
// the reference, in one planned buffer: {cpu's output, the reference's}.
std::pair<std::vector<float>, std::vector<float>> cpu_and_reference(const Graph& g, const Tensor& out, int threads,
                                                                    const std::string& level) {
    BackendOptions opt;
    opt.threads = threads;
    opt.cpu_level = level;
    auto cpu = create_backend("cpu", opt);
    auto ref = create_backend("reference");
    auto buf = allocate_graph(g, *cpu);
    cpu->compute(g);
    std::vector<float> got = to_floats(out);
    ref->compute(g);
    return {std::move(got), to_floats(out)};
}

struct MatmulCase {
    DType type;
    int64_t k, n, m;
    bool strided_b;  // b as a transposed view (non-contiguous rows): the packing path
};

// cpu (threads) vs reference on one mul_mat. The bound per element is the first-order rounding bound of
// the cpu kernel's float summation: each lane chains k/L FMAs (L = the level's float lanes: 4, 8 or 16), the
// lanes meet in a tree of at most 4 levels, and k-blocks of 1024 add up, so
// |error| <= (k/L + k/1024 + 6) u sum|a_i b_i| (the reference sums in double,
// and f16/bf16/quant weights widen exactly, so the weights' own rounding is the same on both sides).
void check_matmul(const MatmulCase& c, int threads, const cpu::CpuKernels& kl) {
    Context ctx;
    HostArena arena;
    Tensor* a = arena.make(ctx, c.type, {c.k, c.n}, "a");
    arena.fill_random(a, 1000 + uint64_t(c.k));
    Tensor* b;
    if (c.strided_b) {
        Tensor* bt = arena.make(ctx, DType::F32, {c.m, c.k}, "bt");
        arena.fill_random(bt, 2000 + uint64_t(c.m));
        b = transpose(ctx, bt);
    } else {
        b = arena.make(ctx, DType::F32, {c.k, c.m}, "b");
        arena.fill_random(b, 2000 + uint64_t(c.m));
    }
    Tensor* out = mul_mat(ctx, a, b);
    out->flags |= kFlagOutput;
    Graph g;
    g.expand(out);
    const auto [got, want] = cpu_and_reference(g, *out, threads, kl.name());

    const std::vector<float> af = to_floats(*a), bf = to_floats(*b);
    const double factor = (double(c.k) / kl.float_lanes + double(c.k) / 1024 + 6) * kU;
    double worst = 0;
    int64_t wi = 0, wj = 0;
    for (int64_t j = 0; j < c.m; ++j)
        for (int64_t i = 0; i < c.n; ++i) {
            double mag = 0;
            for (int64_t p = 0; p < c.k; ++p) mag += std::fabs(double(af[size_t(i * c.k + p)]) * bf[size_t(j * c.k + p)]);
            const double err = std::fabs(double(got[size_t(j * c.n + i)]) - want[size_t(j * c.n + i)]);
            const double ratio = err / (factor * mag + 1e-30);
            if (ratio > worst) {
                worst = ratio;
                wi = i;
                wj = j;
            }
        }
    INFO(std::string(type_name(c.type)) << " k " << c.k << " n " << c.n << " m " << c.m << std::string(c.strided_b ? " strided b" : "")
                           << " threads " << threads << " cpu level " << kl.name()
                           << "; worst at (" << wi << ", " << wj << ") got "
                           << got[size_t(wj * c.n + wi)] << " want " << want[size_t(wj * c.n + wi)]);
    CHECK(worst <= 1.0);
}

}  // namespace

TEST_CASE("cpu mul_mat: k-blocks, panel and register-block tails, decode and prefill paths") {
    // k 1100 and 2071: more than one 1024 k-block, with a non-multiple-of-16 tail; n 131: two weight-row
    // panels (72 + 59 rows, so a 5-row register block); m 1, 3, 7 stream, 8 and 9 pack (with a 1-column tail).
    const MatmulCase cases[] = {
        {DType::F32, 1100, 131, 1, false}, {DType::F32, 1100, 131, 9, false}, {DType::F32, 2071, 67, 8, true},
        {DType::F16, 1100, 131, 3, false}, {DType::F16, 2071, 131, 9, false}, {DType::F16, 1100, 67, 7, true},
        {DType::BF16, 1100, 131, 1, false}, {DType::BF16, 2071, 67, 9, true}, {DType::BF16, 1024, 70, 33, false},
        {DType::F32, 17, 5, 13, false},     {DType::F16, 1, 3, 2, false},
    };
    for (const cpu::CpuKernels* kl : cpu_level_tables())
        for (const auto& c : cases)
            for (int threads : {1, 2}) check_matmul(c, threads, *kl);
}

TEST_CASE("cpu mul_mat: results do not depend on the thread count") {
    // Work is split by weight-row panels whose arithmetic does not change with the split: bit-identical.
    Context ctx;
    HostArena arena;
    Tensor* a = arena.make(ctx, DType::F16, {300, 200}, "a");
    Tensor* b = arena.make(ctx, DType::F32, {300, 37}, "b");
    arena.fill_random(a, 5);
    arena.fill_random(b, 6);
    Tensor* out = mul_mat(ctx, a, b);
    Graph g;
    g.expand(out);
    std::vector<std::vector<float>> results;
    auto cpu = create_backend("cpu");
    auto buf = allocate_graph(g, *cpu);  // once: the planner leaves tensors that already have storage alone
    for (int threads : {1, 2, 3}) {
        cpu->set_threads(threads);
        cpu->compute(g);
        results.push_back(to_floats(*out));
    }
    CHECK(std::memcmp(results[0].data(), results[1].data(), results[0].size() * 4) == 0);
    CHECK(std::memcmp(results[0].data(), results[2].data(), results[0].size() * 4) == 0);
}

TEST_CASE("cpu backend: bad ids are errors naming the node, not crashes") {
    Context ctx;
    HostArena arena;
    auto cpu = create_backend("cpu");
    SUBCASE("get_rows") {
        Tensor* table = arena.make(ctx, DType::F16, {8, 4}, "table");
        Tensor* ids = arena.make(ctx, DType::I32, {3}, "ids");
        arena.fill_i32(ids, {0, 4, 1});
        Tensor* rows = get_rows(ctx, table, ids);
        rows->name = "embd rows";
        Graph g;
        g.expand(rows);
        auto buf = allocate_graph(g, *cpu);
        try {
            cpu->compute(g);
            FAIL("no error for row id 4 of 4 rows");
        } catch (const Error& e) {
            CHECK(std::string(e.what()).find("embd rows") != std::string::npos);
            CHECK(std::string(e.what()).find("4") != std::string::npos);
        }
    }
    SUBCASE("mul_mat_id") {
        Tensor* ex = arena.make(ctx, DType::F32, {16, 8, 3}, "experts");
        Tensor* b = arena.make(ctx, DType::F32, {16, 1, 2}, "b");
        Tensor* ids = arena.make(ctx, DType::I32, {2, 2}, "ids");
        arena.fill_i32(ids, {0, 2, 1, -1});
        Tensor* out = mul_mat_id(ctx, ex, b, ids);
        out->name = "moe up";
        Graph g;
        g.expand(out);
        auto buf = allocate_graph(g, *cpu);
        try {
            cpu->compute(g);
            FAIL("no error for expert id -1");
        } catch (const Error& e) {
            CHECK(std::string(e.what()).find("moe up") != std::string::npos);
        }
    }
}

TEST_CASE("cpu mul_mat_id: experts grouped by token, 1 KiB-multiple rows, packing path, 1 and 2 threads") {
    // k 256 (rows of exactly 1 KiB: the padded activation copy), 5 experts of which expert 3 is never
    // picked, 24 tokens x 2 slots: most experts get 8 or more rows (the packed prefill path), one gets fewer.
    const int64_t k = 256, n = 70, n_exp = 5, n_used = 2, n_tok = 24;
    for (const cpu::CpuKernels* kl : cpu_level_tables())
    for (bool shared_b : {true, false})
        for (int threads : {1, 2}) {
            Context ctx;
            HostArena arena;
            Tensor* ex = arena.make(ctx, DType::F16, {k, n, n_exp}, "experts");
            arena.fill_random(ex, 31);
            Tensor* b = arena.make(ctx, DType::F32, {k, shared_b ? 1 : n_used, n_tok}, "b");
            arena.fill_random(b, 32);
            Tensor* ids = arena.make(ctx, DType::I32, {n_used, n_tok}, "ids");
            std::vector<int32_t> idv;
            for (int64_t t = 0; t < n_tok; ++t) {
                idv.push_back(int32_t(t % 3));                  // experts 0, 1, 2: 8 rows each
                idv.push_back(t < 3 ? 4 : int32_t(t % 3 + 1) % 3);  // expert 4: 3 rows; 0..2 again
            }
            arena.fill_i32(ids, idv);
            Tensor* out = mul_mat_id(ctx, ex, b, ids);
            Graph g;
            g.expand(out);
            const auto [got, want] = cpu_and_reference(g, *out, threads, kl->name());
            const std::vector<float> ef = to_floats(*ex), bf = to_floats(*b);
            // Same first-order bound as the mul_mat cases above.
            const double factor = (double(k) / kl->float_lanes + double(k) / 1024 + 6) * kU;
            double worst = 0;
            for (int64_t t = 0; t < n_tok; ++t)
                for (int64_t e = 0; e < n_used; ++e) {
                    const int64_t x = idv[size_t(t * n_used + e)];
                    const float* brow = bf.data() + size_t((t * (shared_b ? 1 : n_used) + (shared_b ? 0 : e)) * k);
                    for (int64_t i = 0; i < n; ++i) {
                        const float* arow = ef.data() + size_t((x * n + i) * k);
                        double mag = 0;
                        for (int64_t p = 0; p < k; ++p) mag += std::fabs(double(arow[p]) * brow[p]);
                        const size_t o = size_t((t * n_used + e) * n + i);
                        worst = std::max(worst, std::fabs(double(got[o]) - want[o]) / (factor * mag + 1e-30));
                    }
                }
            INFO(std::string(shared_b ? "shared b" : "b per slot") << ", threads " << threads << ", cpu level "
                                                       << kl->name());
            CHECK(worst <= 1.0);
        }
}

namespace {

struct QuantMatmulCase {
    DType type;
    int64_t k, n, m;
    bool strided_b;
};

// Against the reference (dequantized weights, f32 activations, double sums) the only difference is the
// activations' rounding to Q8_0 / Q8_K blocks: |x - x_q| <= 0.57 d per element (half a step of d = the
// block's max |x| / 127, plus Q8_0's f16 scale), so |error| <= sum |w_i| 0.57 d(i) + float summation
// (1e-5 of sum |w x|, as in test_quant's dot_tile bound). The split over threads is by weight rows, whose
// arithmetic does not change: results are bit-identical for 1, 2 and 3 threads.
void check_quant_matmul(const cpu::CpuKernels& kl, const QuantMatmulCase& c) {
    const int64_t k = c.k;
    const int64_t ablock = kl.activation_type(c.type) == DType::Q8_K ? 256 : 32;
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
        // A fresh graph per run: a planned view keeps its storage, which dies with cpu_and_reference's buffer.
        Context ctx;
        HostArena arena;
        Tensor* a = arena.make(ctx, c.type, {k, c.n}, "a");
        arena.fill_random(a, 77);
        Tensor* b;
        std::vector<float> bf(size_t(k * c.m));
        if (c.strided_b) {
            Tensor* bt = arena.make(ctx, DType::F32, {c.m, k}, "bt");
            arena.fill_random(bt, 78);
            const std::vector<float> t = to_floats(*bt);
            for (int64_t j = 0; j < c.m; ++j)
                for (int64_t p = 0; p < k; ++p) bf[size_t(j * k + p)] = t[size_t(p * c.m + j)];
            b = transpose(ctx, bt);
        } else {
            b = arena.make(ctx, DType::F32, {k, c.m}, "b");
            arena.fill_random(b, 78);
            bf = to_floats(*b);
        }
        const std::vector<float> af = to_floats(*a);
        Tensor* out = mul_mat(ctx, a, b);
        out->flags |= kFlagOutput;
        Graph g;
        g.expand(out);
        const auto [got, want] = cpu_and_reference(g, *out, threads, kl.name());
        double worst = 0;
        for (int64_t j = 0; j < c.m; ++j)
            for (int64_t i = 0; i < c.n; ++i) {
                const float* w = af.data() + i * k;
                const float* x = bf.data() + j * k;
                double mag = 0, act = 0;
                for (int64_t b0 = 0; b0 < k; b0 += ablock) {
                    float amax = 0;
                    for (int64_t p = b0; p < b0 + ablock; ++p) amax = std::max(amax, std::fabs(x[p]));
                    for (int64_t p = b0; p < b0 + ablock; ++p) {
                        mag += std::fabs(double(w[p]) * x[p]);
                        act += std::fabs(double(w[p])) * 0.57 * amax / 127;
                    }
                }
                const size_t o = size_t(j * c.n + i);
                worst = std::max(worst, std::fabs(double(got[o]) - want[o]) / (act + 1e-5 * mag + 1e-30));
            }
        INFO(std::string(type_name(c.type)) << " k " << k << " n " << c.n << " m " << c.m
                                            << (c.strided_b ? " strided b" : "") << " threads " << threads
                                            << ", cpu level " << kl.name());
        CHECK(worst <= 1.0);
        if (first.empty()) first = got;
        CHECK(std::memcmp(first.data(), got.data(), got.size() * 4) == 0);
    }
}

}  // namespace

TEST_CASE("cpu mul_mat: 4-bit grid weights (IQ4_NL, IQ4_XS, MXFP4), decode and prefill, 1 to 3 threads") {
    // k 768: three IQ4_XS super-blocks, 24 blocks of 32.
    const QuantMatmulCase cases[] = {
        {DType::IQ4_NL, 768, 131, 1, false}, {DType::IQ4_NL, 768, 67, 13, true}, {DType::IQ4_XS, 768, 131, 1, false},
        {DType::IQ4_XS, 768, 67, 9, false},  {DType::IQ4_XS, 768, 33, 13, true}, {DType::MXFP4, 768, 131, 1, false},
        {DType::MXFP4, 768, 67, 13, true}};
    for (const cpu::CpuKernels* kl : cpu_level_tables())
        for (const auto& c : cases) check_quant_matmul(*kl, c);
}

TEST_CASE("cpu mul_mat: Q4_0, Q8_0, Q4_K, Q5_K, Q6_K weights, decode and prefill, odd shapes, 1 to 3 threads") {
    // The types models ship in. k: an odd number of blocks (the 512-bit kernels hold two blocks or two
    // rows per register; 3 super-blocks for the K types); n not a multiple of the 4-row tile nor of the
    // row pairs; m 1 (decode), 5 (a 4-column group and a 1-column tail), 13 (8 + 5), strided b (packing).
    // n 300 and 16411 at m 3 and 5: decode-sized work items span many weight rows (the first ones most of
    // the rows), more than the tile holds at once (72 rows x 16 columns of floats).
    const QuantMatmulCase cases[] = {
        {DType::Q4_0, 224, 131, 1, false}, {DType::Q4_0, 96, 67, 13, true},   {DType::Q4_0, 32, 7, 5, false},
        {DType::Q8_0, 224, 131, 1, false}, {DType::Q8_0, 96, 67, 13, false},  {DType::Q8_0, 32, 5, 6, true},
        {DType::Q4_K, 768, 131, 1, false}, {DType::Q4_K, 256, 67, 13, true},  {DType::Q4_K, 512, 9, 5, false},
        {DType::Q5_K, 768, 131, 1, false}, {DType::Q5_K, 256, 33, 13, false}, {DType::Q5_K, 256, 6, 7, true},
        {DType::Q6_K, 768, 131, 1, false}, {DType::Q6_K, 256, 67, 13, true},  {DType::Q6_K, 512, 3, 2, false},
        {DType::Q4_0, 32, 16411, 5, false}, {DType::Q5_K, 256, 300, 3, true},
    };
    for (const cpu::CpuKernels* kl : cpu_level_tables())
        for (const auto& c : cases) check_quant_matmul(*kl, c);
}

namespace {

// One product computed alone by the cpu backend: what a member of a grouped run must equal bit for bit.
std::vector<float> cpu_product_alone(const Tensor& w, const Tensor& x, int threads, const std::string& level) {
    Context ctx;
    HostArena arena;
    Tensor* a = arena.make(ctx, w.type, {w.ne[0], w.ne[1]}, "w alone");
    std::memcpy(a->data, w.data, w.nbytes());
    Tensor* b = arena.make(ctx, DType::F32, {x.ne[0], x.ne[1]}, "x alone");
    std::memcpy(b->data, x.data, x.nbytes());
    Tensor* out = mul_mat(ctx, a, b);
    Graph g;
    g.expand(out);
    BackendOptions opt;
    opt.threads = threads;
    opt.cpu_level = level;
    auto cpu = create_backend("cpu", opt);
    auto buf = allocate_graph(g, *cpu);
    cpu->compute(g);
    return to_floats(*out);
}

}  // namespace

TEST_CASE("cpu mul_mat: products sharing one input run as a group, each as if alone") {
    // q, k, v (and gate, up) read one activation: the backend runs such neighbours on one fork/join and
    // converts the shared activation once per format (Q4_0 and Q8_0 share Q8_0 blocks; Q4_K and Q6_K share
    // Q8_K; F16 none). Each result must be bit-identical to the product computed alone. `dep` reads the
    // first product's result with the same activation: it must not join that product's group.
    const int64_t k = 768;  // three Q8_K super-blocks
    for (const cpu::CpuKernels* kl : cpu_level_tables())
        for (int64_t m : {1, 3})
            for (int threads : {1, 2, 3}) {
                INFO("m " << m << " threads " << threads << " cpu level " << kl->name());
                Context ctx;
                HostArena arena;
                Tensor* x = arena.make(ctx, DType::F32, {k, m}, "x");
                arena.fill_random(x, 90);
                const std::pair<DType, int64_t> weights[] = {
                    {DType::Q4_0, k}, {DType::Q8_0, 131}, {DType::Q4_K, 67}, {DType::Q6_K, 5}, {DType::F16, 33}, {DType::Q4_0, 9}};
                std::vector<Tensor*> ws, outs;
                for (size_t i = 0; i < std::size(weights); ++i) {
                    ws.push_back(arena.make(ctx, weights[i].first, {k, weights[i].second}, "w" + std::to_string(i)));
                    arena.fill_random(ws.back(), 91 + i);
                    outs.push_back(mul_mat(ctx, ws.back(), x));
                    outs.back()->flags |= kFlagOutput;
                }
                Tensor* dep = mul_mat(ctx, outs[0], x);  // outs[0] is k x m: a product of the group's first result
                dep->flags |= kFlagOutput;
                Graph g;
                g.expand(outs[0]);
                g.expand(dep);
                for (size_t i = 1; i < outs.size(); ++i) g.expand(outs[i]);
                BackendOptions opt;
                opt.threads = threads;
                opt.cpu_level = kl->name();
                auto cpu = create_backend("cpu", opt);
                auto buf = allocate_graph(g, *cpu);
                cpu->compute(g);
                for (size_t i = 0; i < outs.size(); ++i) {
                    INFO("product " << i << " (" << type_name(ws[i]->type) << ")");
                    const std::vector<float> got = to_floats(*outs[i]), alone = cpu_product_alone(*ws[i], *x, threads, kl->name());
                    REQUIRE(got.size() == alone.size());
                    CHECK(std::memcmp(got.data(), alone.data(), got.size() * 4) == 0);
                }
                const std::vector<float> got = to_floats(*dep), alone = cpu_product_alone(*outs[0], *x, threads, kl->name());
                REQUIRE(got.size() == alone.size());
                CHECK(std::memcmp(got.data(), alone.data(), got.size() * 4) == 0);
            }
}

TEST_CASE("cpu float tuning: TESSERA_CPU_TUNING names the CPU family whose choices the float kernels make") {
    // CMakeLists.txt runs the float matmul cases under each family; this says the choice took effect there.
    const char* forced = std::getenv("TESSERA_CPU_TUNING");
    const std::string family = forced ? forced : "";
    const cpu::FloatKernelTuning& t = cpu::float_kernel_tuning();
    MESSAGE("float kernel tuning: " << (family.empty() ? "this CPU's family" : family) << ", decode asks ahead "
            << t.decode_asks_ahead << ", half-precision prefill widens a panel " << t.half_prefill_widens);
    CHECK(t.decode_asks_ahead == t.half_prefill_widens);  // both follow the family
    if (family == "amd") CHECK_FALSE(t.half_prefill_widens);
    if (family == "intel") CHECK(t.half_prefill_widens);
}

TEST_CASE("cpu levels: this architecture's names, TESSERA_CPU forces each usable one, others are errors") {
    const std::vector<cpu::CpuLevel> levels = cpu::all_cpu_levels();
    REQUIRE(!levels.empty());
    CHECK(levels.front() == cpu::CpuLevel::Portable);
#if defined(__aarch64__)
    CHECK(levels == std::vector<cpu::CpuLevel>{cpu::CpuLevel::Portable, cpu::CpuLevel::Neon, cpu::CpuLevel::Dotprod,
                                               cpu::CpuLevel::I8mm});
    // NEON is architectural on aarch64: a build for it always has and runs the neon level.
    CHECK(cpu::cpu_level_usable(cpu::CpuLevel::Neon));
#elif defined(__x86_64__)
    CHECK(std::find(levels.begin(), levels.end(), cpu::CpuLevel::Avx2) != levels.end());
    CHECK(std::find(levels.begin(), levels.end(), cpu::CpuLevel::Neon) == levels.end());
#endif
    const char* saved = std::getenv("TESSERA_CPU");
    const std::string saved_value = saved ? saved : "";
    for (cpu::CpuLevel l : levels) {
        const std::string name = cpu::cpu_level_name(l);
        INFO("level " << name);
        ::setenv("TESSERA_CPU", name.c_str(), 1);
        if (cpu::cpu_level_usable(l)) {
            CHECK(cpu::resolve_cpu_level() == l);
            CHECK(cpu::kernels_in_use().level == l);
        } else {
            // The error names the variable, the level and what this CPU (or build) lacks.
            try {
                cpu::resolve_cpu_level();
                FAIL("TESSERA_CPU=" << name << " was accepted on a CPU without it");
            } catch (const Error& e) {
                const std::string what = e.what();
                CHECK(what.find("TESSERA_CPU=" + name) != std::string::npos);
                CHECK(what.find(cpu::cpu_level_missing(l)) != std::string::npos);
            }
        }
    }
    // A name of the other architecture (or none) lists this one's levels.
#if defined(__aarch64__)
    const std::string foreign = "avx2";
#else
    const std::string foreign = "dotprod";
#endif
    ::setenv("TESSERA_CPU", foreign.c_str(), 1);
    try {
        cpu::resolve_cpu_level();
        FAIL("TESSERA_CPU=" << foreign << " was accepted");
    } catch (const Error& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK(what.find("unknown cpu level") != std::string::npos);
        for (cpu::CpuLevel l : levels) CHECK(what.find(cpu::cpu_level_name(l)) != std::string::npos);
    }
    if (saved) ::setenv("TESSERA_CPU", saved_value.c_str(), 1);
    else ::unsetenv("TESSERA_CPU");
}
