// One mul_mat on weights a cpu level repacked at load (amx tiles, rows8 strips), against the reference on the
// same weights unrepacked: shared by test_amx_matmul, test_amx_matmul_k and test_rows8_matmul.
//
// Both sides use the same weight values, so the only difference allowed is the activations' rounding to the
// kernel's int8 activation type, |x - x_q| <= err_per_d * d per element with d = the block's max |x| / 127,
// times |w|, plus fp32 summation, 1e-5 of sum |w x| (the reference sums in double).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/graph.h"
#include "core/ops.h"
#include "tests/testing.h"

namespace tessera::testing {

struct RepackedMatmulCase {
    DType type;
    int64_t k, n, m;
    bool strided_b;  // b a transposed view: the activation packing path
};

// How the kernel rounds activations: Q8_0 (32 values a block, an f16 scale: 0.57 d) or Q8_K (256, a float
// scale: 0.51 d).
struct ActivationRounding {
    int64_t block;
    double err_per_d;
};

struct RepackedMatmulSetup {
    uint64_t weight_seed, act_seed;
    uint32_t required_flags;  // what the repack must have set on the weight (kFlagRepacked, ...)
    std::string label;        // named in the failure message
    // Optional: changes the random weights, and the activations where they are contiguous (b is then not
    // null), before either is copied or read.
    std::function<void(HostArena&, Tensor* weights, Tensor* contiguous_b)> adjust;
};

// Returns the output, for the callers' bit-identity checks across thread counts.
inline std::vector<float> check_repacked_matmul(const RepackedMatmulCase& c, int threads, const std::string& level,
                                                const ActivationRounding& rounding, const RepackedMatmulSetup& s) {
    Context ctx;
    HostArena arena;
    Tensor* a = arena.make(ctx, c.type, {c.k, c.n}, "w");
    arena.fill_random(a, s.weight_seed);
    Tensor* b;
    std::vector<float> bf(size_t(c.k * c.m));  // b's rows (k values each), whatever its layout
    if (c.strided_b) {
        if (s.adjust) s.adjust(arena, a, nullptr);
        Tensor* bt = arena.make(ctx, DType::F32, {c.m, c.k}, "bt");
        arena.fill_random(bt, s.act_seed);
        const std::vector<float> t = to_floats(*bt);
        for (int64_t j = 0; j < c.m; ++j)
            for (int64_t p = 0; p < c.k; ++p) bf[size_t(j * c.k + p)] = t[size_t(p * c.m + j)];
        b = transpose(ctx, bt);
    } else {
        b = arena.make(ctx, DType::F32, {c.k, c.m}, "b");
        arena.fill_random(b, s.act_seed);
        if (s.adjust) s.adjust(arena, a, b);
        bf = to_floats(*b);
    }
    Tensor* orig = arena.make(ctx, c.type, {c.k, c.n}, "w unpacked");
    std::memcpy(orig->data, a->data, a->nbytes());
    const std::vector<float> af = to_floats(*orig);

    BackendOptions opt;
    opt.threads = threads;
    opt.cpu_level = level;
    auto cpu = create_backend("cpu", opt);
    std::unique_ptr<Buffer> packed = cpu->repack_weights({a});
    REQUIRE(packed != nullptr);
    REQUIRE((a->flags & s.required_flags) == s.required_flags);
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
    const int64_t blk = rounding.block;
    for (int64_t j = 0; j < c.m; ++j)
        for (int64_t i = 0; i < c.n; ++i) {
            const float* w = af.data() + i * c.k;
            const float* x = bf.data() + j * c.k;
            double mag = 0, act = 0;
            for (int64_t b0 = 0; b0 < c.k; b0 += blk) {
                float amax = 0;
                for (int64_t p = b0; p < b0 + blk; ++p) amax = std::max(amax, std::fabs(x[p]));
                for (int64_t p = b0; p < b0 + blk; ++p) {
                    mag += std::fabs(double(w[p]) * x[p]);
                    act += std::fabs(double(w[p])) * rounding.err_per_d * amax / 127;
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
    // (std::string: doctest's INFO prints a bare const char* as its address)
    INFO(std::string(s.label) << ": " << std::string(type_name(c.type)) << " k " << c.k << " n " << c.n << " m " << c.m
                 << std::string(c.strided_b ? " strided b" : "") << " threads " << threads << " level " << level << "; worst at ("
                 << wi << ", " << wj << ") got " << got[size_t(wj * c.n + wi)] << " want " << want[size_t(wj * c.n + wi)]);
    CHECK(worst <= 1.0);
    return got;
}

// Runs check(threads) at 1, 2 and 3 threads: every output must equal the first to the bit (the split of rows
// between threads must not change what a row sums).
template <class Check>
void check_same_bits_at_1_to_3_threads(Check check, const std::string& what) {
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
        const std::vector<float> got = check(threads);
        if (first.empty()) first = got;
        CHECK_MESSAGE(std::memcmp(first.data(), got.data(), got.size() * 4) == 0, what << " threads " << threads);
    }
}

// `node`, which reads a weight repacked for one cpu level, computed on `on` (the reference, another level,
// another op) must be an error naming the weight and saying it is repacked.
inline void expect_repacked_weight_refused(Tensor* node, Backend& on, const std::string& weight_name) {
    Graph g;
    g.expand(node);
    auto buf = allocate_graph(g, on);
    try {
        on.compute(g);
        FAIL("no error for a repacked weight read by " << op_name(node->op) << " on " << on.name());
    } catch (const Error& e) {
        CHECK_MESSAGE(std::string(e.what()).find(weight_name) != std::string::npos, e.what());
        CHECK_MESSAGE(std::string(e.what()).find("repacked") != std::string::npos, e.what());
    }
}

}  // namespace tessera::testing
