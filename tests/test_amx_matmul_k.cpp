// The amx cpu level's K-quant matmul (backends/cpu/amx_matmul_k.cpp) on Q4_K / Q5_K / Q6_K weights the cpu
// backend repacked, against the reference, at the amx level this machine runs (real tiles, or their emulated
// twin, amx_emu.h: on a machine without AMX that is what runs). Also the Q4_K_M golden cases with weights
// repacked at load, and that one activation row (decode) gives the bits of the same row in a batch.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/gguf.h"
#include "core/graph.h"
#include "core/ops.h"
#include "models/model.h"
#include "tests/amx_level.h"
#include "tests/golden_util.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

struct KCase {
    DType type;
    int64_t k, n, m;
    bool strided_b;
};

// One mul_mat on repacked K-quant weights at the amx level against the reference on the same weights
// unrepacked. Both use the same weight values (the dequantized blocks), so the difference is the activations'
// rounding to Q8_K, |x - x_q| <= d / 2 per element with d = the 256-block's max |x| / 127 (a float scale: we
// allow 0.51 d for its rounding), times |w|, plus fp32 summation, 1e-5 of sum |w x| (the kernel rounds once per
// super-block; the reference sums in double). Returns the output for the thread-count bit check.
std::vector<float> check_k_matmul(const KCase& c, int threads, const std::string& level) {
    Context ctx;
    HostArena arena;
    Tensor* a = arena.make(ctx, c.type, {c.k, c.n}, "w");
    arena.fill_random(a, 700 + uint64_t(c.k + c.n));
    Tensor* orig = arena.make(ctx, c.type, {c.k, c.n}, "w unpacked");
    std::memcpy(orig->data, a->data, a->nbytes());
    Tensor* b;
    std::vector<float> bf(size_t(c.k * c.m));  // b's rows, whatever its layout
    if (c.strided_b) {  // a transposed view: the activation packing path
        Tensor* bt = arena.make(ctx, DType::F32, {c.m, c.k}, "bt");
        arena.fill_random(bt, 800 + uint64_t(c.m));
        const std::vector<float> t = to_floats(*bt);
        for (int64_t j = 0; j < c.m; ++j)
            for (int64_t p = 0; p < c.k; ++p) bf[size_t(j * c.k + p)] = t[size_t(p * c.m + j)];
        b = transpose(ctx, bt);
    } else {
        b = arena.make(ctx, DType::F32, {c.k, c.m}, "b");
        arena.fill_random(b, 800 + uint64_t(c.m));
        bf = to_floats(*b);
    }
    const std::vector<float> af = to_floats(*orig);

    BackendOptions opt;
    opt.threads = threads;
    opt.cpu_level = level;
    auto cpu = create_backend("cpu", opt);
    std::unique_ptr<Buffer> packed = cpu->repack_weights({a});
    REQUIRE(packed != nullptr);
    REQUIRE((a->flags & kFlagRepacked) != 0);
    Tensor* out = mul_mat(ctx, a, b);
    Tensor* ref_out = mul_mat(ctx, orig, b);
    out->flags |= kFlagOutput;
    ref_out->flags |= kFlagOutput;
    Graph g, gr;
    g.expand(out);
    gr.expand(ref_out);
    auto buf = allocate_graph(g, *cpu);
    auto ref = create_backend("reference");
    auto rbuf = allocate_graph(gr, *ref);
    cpu->compute(g);
    ref->compute(gr);
    const std::vector<float> got = to_floats(*out), want = to_floats(*ref_out);

    double worst = 0;
    int64_t wi = 0, wj = 0;
    for (int64_t j = 0; j < c.m; ++j)
        for (int64_t i = 0; i < c.n; ++i) {
            const float* w = af.data() + i * c.k;
            const float* x = bf.data() + j * c.k;
            double mag = 0, act = 0;
            for (int64_t b0 = 0; b0 < c.k; b0 += 256) {
                float amax = 0;
                for (int64_t p = b0; p < b0 + 256; ++p) amax = std::max(amax, std::fabs(x[p]));
                for (int64_t p = b0; p < b0 + 256; ++p) {
                    mag += std::fabs(double(w[p]) * x[p]);
                    act += std::fabs(double(w[p])) * 0.51 * amax / 127;
                }
            }
            const size_t o = size_t(j * c.n + i);
            const double r = std::fabs(double(got[o]) - want[o]) / (act + 1e-5 * mag + 1e-30);
            if (!(r <= worst)) {
                worst = r;
                wi = i;
                wj = j;
            }
        }
    INFO(type_name(c.type) << " k " << c.k << " n " << c.n << " m " << c.m << (c.strided_b ? " strided b" : "")
                           << " threads " << threads << " level " << level << "; worst at (" << wi << ", " << wj
                           << ") got " << got[size_t(wj * c.n + wi)] << " want " << want[size_t(wj * c.n + wi)]);
    CHECK(worst <= 1.0);
    return got;
}

}  // namespace

TEST_CASE("amx mul_mat K: repacked Q4_K / Q6_K / Q5_K weights against the reference, odd shapes, 1 to 3 threads") {
    const std::string level = amx_level_name();
    if (level.empty()) return;
    // n 17, 33, 1, 15: partial 16-row panels; m 1 (decode), 2, 5, 17, 33: partial 16-row activation groups;
    // k 256, 512, 768: one to three super-blocks.
    const KCase cases[] = {
        {DType::Q4_K, 256, 17, 2, false}, {DType::Q4_K, 512, 33, 5, true},  {DType::Q4_K, 768, 1, 17, false},
        {DType::Q4_K, 256, 40, 1, false}, {DType::Q4_K, 512, 15, 33, true}, {DType::Q6_K, 256, 17, 2, false},
        {DType::Q6_K, 512, 33, 5, true},  {DType::Q6_K, 768, 1, 17, false}, {DType::Q6_K, 256, 40, 1, false},
        {DType::Q6_K, 512, 15, 33, true}, {DType::Q5_K, 256, 17, 3, false}, {DType::Q5_K, 768, 20, 17, true},
        {DType::Q5_K, 512, 33, 1, false},
    };
    for (const auto& c : cases) {
        std::vector<float> first;
        for (int threads : {1, 2, 3}) {
            const std::vector<float> got = check_k_matmul(c, threads, level);
            if (first.empty()) first = got;
            CHECK_MESSAGE(std::memcmp(first.data(), got.data(), got.size() * 4) == 0,
                          type_name(c.type) << " n " << c.n << " m " << c.m << " threads " << threads);
        }
    }
}

TEST_CASE("amx mul_mat K: one activation row (the decode path) gives the bits of the same row in a batch") {
    const std::string level = amx_level_name();
    if (level.empty()) return;
    for (DType t : {DType::Q4_K, DType::Q6_K, DType::Q5_K}) {
        Context ctx;
        HostArena arena;
        const int64_t k = 512, n = 37, m = 6;
        Tensor* a = arena.make(ctx, t, {k, n}, "w");
        arena.fill_random(a, 51);
        Tensor* b = arena.make(ctx, DType::F32, {k, m}, "b");
        arena.fill_random(b, 52);
        BackendOptions opt;
        opt.cpu_level = level;
        auto cpu = create_backend("cpu", opt);
        auto packed = cpu->repack_weights({a});
        REQUIRE(packed != nullptr);
        Tensor* batch = mul_mat(ctx, a, b);
        batch->flags |= kFlagOutput;
        Graph g;
        g.expand(batch);
        std::vector<Tensor*> single_out;
        for (int64_t j = 0; j < m; ++j) {
            Tensor* row = view_2d(ctx, b, k, 1, b->nb[1], size_t(j) * b->nb[1]);
            Tensor* o = mul_mat(ctx, a, row);
            o->flags |= kFlagOutput;
            g.expand(o);
            single_out.push_back(o);
        }
        auto buf = allocate_graph(g, *cpu);
        cpu->compute(g);
        const std::vector<float> all = to_floats(*batch);
        for (int64_t j = 0; j < m; ++j) {
            const std::vector<float> one = to_floats(*single_out[size_t(j)]);
            CHECK_MESSAGE(std::memcmp(one.data(), all.data() + j * n, size_t(n) * 4) == 0, type_name(t) << " row " << j);
        }
    }
}

TEST_CASE("amx: the Q4_K_M golden cases (llama-gqa, gemma2: Q4_K and Q6_K) with weights repacked at load") {
    // As test_amx_matmul's Q4_0 / Q8_0 golden case: TESSERA_CPU names the amx level, Model::open repacks the
    // projection weights (Q4_K and Q6_K alike), and the session computes with them in one batch (tile products
    // of up to 16 activation rows) and one token at a time.
    const std::string level = amx_level_name();
    if (level.empty() || !golden::have_shared()) return;
    const CpuLevelGuard guard(level);
    int checked = 0;
    for (const auto& c : golden::cases_for({"llama", "gemma2"})) {
        if (c.weight_type != "Q4_K_M") continue;
        auto model = Model::open(c.gguf);
        // Every Q4_K and Q6_K matrix but token_embd (read by get_rows) is repacked; these files' rows are
        // multiples of 16 and 256, so the repacked form takes exactly the file's bytes (each rounded up to 64).
        size_t q4k = 0, q6k = 0;
        const auto file = GGUFFile::open(c.gguf);
        for (const auto& ti : file->tensors()) {
            if (ti.name == "token_embd.weight" || ti.ne[1] == 1) continue;
            if (ti.type == DType::Q4_K) q4k += (ti.nbytes + 63) / 64 * 64;
            if (ti.type == DType::Q6_K) q6k += (ti.nbytes + 63) / 64 * 64;
        }
        CHECK_MESSAGE(q6k > 0, c.name << " has no Q6_K matrix");
        CHECK_MESSAGE(model->repacked_weight_bytes() == q4k + q6k, c.name << ": Q4_K " << q4k << " + Q6_K " << q6k << " bytes");
        const auto ids = golden::read_tokens(c.tokens);
        const auto want = golden::read_f32(c.logits);
        golden::RunOptions o;
        golden::check_case(c, golden::run_logits(*model, ids, o), want, c.tol_rel_rms, "batch, " + level);
        o.incremental = true;
        golden::check_case(c, golden::run_logits(*model, ids, o), want, c.tol_rel_rms, "incremental, " + level);
        ++checked;
    }
    CHECK(checked >= 2);
}
