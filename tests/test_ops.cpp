// Backend-vs-reference op tests (the idea of ggml's test-backend-ops): every op the builders offer (attention
// is tested elsewhere) is built twice from the same description, fed the same random inputs, computed on the
// reference (the oracle) and on each other backend with 1 and 2 threads, and compared with a tolerance that
// is chosen per op and per type below, each with the reason for its size.
//
// The harness only touches leaf data through Backend::alloc_buffer / set_tensor / get_tensor, so device
// backends (cuda, when a GPU is present) run the same cases; their thread count is ignored.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "tests/cpu_levels.h"
#include "tests/op_harness.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

// ------------------------------------------------------------------ tolerances

// Conversions and copies are exactly specified (round to nearest even, no arithmetic): bit-exact.
Tol exact() { return {}; }

// One arithmetic op per element: the reference rounds once from double; a fast kernel might compute
// x / y as x * (1 / y), two roundings: 2 ulp = 2^-22 relative.
Tol one_op() { return {0, 4 * kU}; }

// exp / tanh / erf based activations. A vectorised exp or tanh is good to a few ulp; composing it (x *
// sigmoid(x), 0.5 x (1 + tanh(.))) adds a few more: 2e-5 relative is ~300 ulp of slack for that chain.
// atol 2e-6 covers results near zero, where the relative error of the (1 + tanh) or (1 + erf) factor
// cancels (that sum has absolute error ~1e-7, times |x| <= 8 in these inputs, times a margin).
// A table-based approximation (e.g. an f16 lookup, error ~1e-3) would fail, as it should.
Tol transcendental() { return {2e-6, 2e-5}; }

// A float sum of n terms with |x| <= 1. Sequential summation's error grows like u * n / 2 on random
// data (the partial sums are O(sqrt(n)) and each addition rounds); 4 u n leaves ~8x margin for any
// order (lanes, pairwise, threads) while staying far below one dropped term (~0.5 on average).
Tol row_sum(int64_t n) { return {4 * kU * double(n) + 1e-7, 4 * kU}; }
Tol row_mean(int64_t n) { return {4 * kU + 1e-7 / double(n), 4 * kU}; }

// Normalisations divide by a float sum of n squares (all positive: relative error <= n u worst case,
// typically sqrt(n) u); a quarter of the worst case plus 16 ulp for rsqrt and the final multiply.
// Outputs are O(1), so the same bound serves as absolute error near zero (norm's x - mean).
Tol normalised(int64_t n) {
    const double e = 16 * kU + kU * double(n) / 4;
    return {e, e};
}

// Softmax: a few-ulp exp, a float sum of n terms in [0, 1] (relative error <= n u worst case), a division.
// Outputs are probabilities; atol 1e-7 covers tiny ones whose exp underflows differently.
Tol softmax_tol(int64_t n) {
    const double e = 64 * kU + kU * double(n) / 4;
    return {1e-7, e};
}

// Rope: the output error is |x| * sqrt(2) (|x| <= 1 per component here) times the angle error, plus a few
// ulp for sin / cos and the rotation. The angle theta = p * base^(-2i/n_dims) formed in float (powf per
// pair, or llama.cpp's repeated multiplication by base^(-2/n_dims)) carries a relative error of a few ulp
// where theta is large (small i; for large i theta itself is small): we allow 8 ulp of p_max, i.e.
// 12 p_max u absolute. A simulation of the repeated-multiplication scheme stays under a fifth of it.
Tol rope_tol(int64_t p_max) { return {2e-6 + 12 * double(p_max) * kU, 2e-6}; }

// Rounding error a fast kernel may add per activation by converting activations to the type that pairs
// with the weight type (ggml's scheme: f16 activations for f16 weights, q8 blocks for quant weights).
double activation_rounding(DType w) {
    switch (w) {
        case DType::F32: return 0.0;
        case DType::F16: return std::ldexp(1.0, -11);  // half an f16 ulp, relative (|b| <= 1)
        case DType::BF16: return std::ldexp(1.0, -8);  // half a bf16 ulp
        // q8 blocks: half a step of amax / 127 (amax <= 1 here), plus the block scale stored as f16 moving
        // the largest values by up to 127 * 2^-11 of a step: 0.56 / 127 < 1 / 200.
        default: return 1.0 / 200;
    }
}

// mul_mat / mul_mat_id, inputs in [-1, 1], inner length k. Float accumulation: naive sequential summation
// measured up to ~0.75 k u on these inputs (SIMD lanes far less); we allow 2 k u. Activation rounding e per
// element: independent errors with standard deviation ~e sqrt(k) / 3 over the k products; 2 e sqrt(k) is
// 6 sigma (a simulation of 3 * 10^4 dots peaked at 0.7 of it). Weights are read from identical bytes, so
// their dequantisation adds nothing beyond the final float rounding (8 u relative).
Tol matmul_tol(int64_t k, DType w) {
    return {2 * double(k) * kU + 2 * activation_rounding(w) * std::sqrt(double(k)) + 1e-6, 8 * kU};
}

// Writing floats into a quantized type: a fast quantizer may round a block's scale (f16) or a value on a
// tie differently, moving an element by at most one quantisation step of its block; values are in [-1, 1].
Tol quant_store(DType t) {
    switch (t) {
        case DType::Q8_0: return {1.0 / 127 + 1e-6, 0};
        case DType::Q4_0: return {1.0 / 8 + 1e-6, 0};
        default: return {1.0 / 8 + 1e-6, 0};
    }
}

// Quant -> float: dequantising does up to two products and an add per value (d * q - dmin * m); a fused
// multiply-add or another association may change the last bit or two relative to the operands, which are
// <= 1 in magnitude here.
Tol dequantized() { return {4 * kU, 4 * kU}; }

// ------------------------------------------------------------------ running a case

struct OpCase {
    std::string name;
    std::function<Tensor*(Inputs&)> build;
    Tol tol;
    bool whole_destination = false;  // compare the storage owner (e.g. the cache a cpy writes into)
};

// Every available backend but the reference, with the cpu backend once per kernel level this CPU runs.
std::vector<std::pair<std::string, BackendOptions>> backends_under_test() {
    std::vector<std::pair<std::string, BackendOptions>> out;
    for (const std::string& name : available_backends()) {
        if (name == "reference") continue;
        if (name != "cpu") {
            out.push_back({name, BackendOptions{}});
            continue;
        }
        for (const cpu::CpuKernels* k : cpu_level_tables()) {
            BackendOptions o;
            o.cpu_level = k->name();
            out.push_back({name, o});
        }
    }
    return out;
}

// Builds the case in a fresh context on backend `be`, uploads the leaves, computes with `threads`, and
// reads the output back through get_tensor.
Outcome run_case(Backend& be, const OpCase& c, uint64_t seed, int threads) {
    RunOptions o;
    o.threads = threads;
    o.whole_destination = c.whole_destination;
    return run_op_case(be, c.build, seed, o);
}

// Runs every case on the reference and on each other available backend with 1 and 2 threads; the cpu
// backend once per kernel level this CPU runs (tests/cpu_levels.h).
void check_cases(const std::vector<OpCase>& cases, uint64_t seed_base) {
    auto reference = create_backend("reference");
    for (const auto& [name, options] : backends_under_test()) {
        auto be = create_backend(name, options);
        for (size_t ci = 0; ci < cases.size(); ++ci) {
            const OpCase& c = cases[ci];
            const uint64_t seed = seed_base + ci;
            INFO("case: " << c.name);
            Outcome want;
            try {
                want = run_case(*reference, c, seed, 1);
            } catch (const Error& e) {
                FAIL_CHECK("reference failed: " << e.what());
                continue;
            }
            REQUIRE_MESSAGE(want.supported, "reference does not support " << want.unsupported_node);
            for (int threads : {1, 2}) {
                INFO("backend " << name << std::string(options.cpu_level.empty() ? "" : " level ") << options.cpu_level
                                << ", threads " << threads);
                Outcome got;
                try {
                    got = run_case(*be, c, seed, threads);
                } catch (const Error& e) {
                    FAIL_CHECK("backend threw: " << e.what());
                    continue;
                }
                if (!got.supported) {
                    // Every backend must cover every op the reference covers (cuda through its host fallback).
                    FAIL_CHECK("backend does not support " << got.unsupported_node);
                    continue;
                }
                compare(got.values, want.values, want.shape, c.tol);
            }
        }
    }
}

// The shapes most ops are tried on: sizes 1, 7, 33 and 4097 in dim 0, odd counts elsewhere.
const std::vector<Shape> kShapes = {{1, 1, 1, 1}, {7, 3, 1, 1}, {33, 7, 2, 1}, {4097, 2, 1, 1}, {7, 5, 3, 2}};

}  // namespace

// ====================================================================== data movement

TEST_CASE("ops: cont, cast, cpy, get_rows, concat (float types)") {
    std::vector<OpCase> cases;
    for (const Shape& s : kShapes) {
        const std::string sn = shape_name(s);
        for (DType t : {DType::F32, DType::F16, DType::BF16}) {
            cases.push_back({std::string("cont transposed ") + type_name(t) + " " + sn,
                             [=](Inputs& in) { return cont(in.ctx, in.transposed(t, s)); }, exact()});
        }
        cases.push_back({"cont permuted (0 2 1 3) f32 " + sn,
                         [=](Inputs& in) { return cont(in.ctx, in.permuted(DType::F32, s, {0, 2, 1, 3})); },
                         exact()});
        const std::pair<DType, DType> casts[] = {{DType::F32, DType::F16},  {DType::F32, DType::BF16},
                                                 {DType::F16, DType::F32},  {DType::BF16, DType::F32},
                                                 {DType::F16, DType::BF16}, {DType::F32, DType::F32}};
        for (auto [from, to] : casts)
            cases.push_back({std::string("cast ") + type_name(from) + "->" + type_name(to) + " permuted " + sn,
                             [=](Inputs& in) { return cast(in.ctx, in.permuted(from, s, {2, 0, 1, 3}), to); },
                             exact()});
        // cpy into every other row of a cache (rows 2 apart), the cache compared whole: nothing else may change.
        for (DType t : {DType::F32, DType::F16, DType::BF16})
            cases.push_back({std::string("cpy f32 -> ") + type_name(t) + " strided rows " + sn,
                             [=](Inputs& in) {
                                 Tensor* src = in.uniform(DType::F32, s);
                                 Tensor* cache = in.uniform(t, {s[0], 2 * s[1] * s[2] * s[3], 1, 1}, 5, 6);
                                 Tensor* dst = view_2d(in.ctx, cache, s[0], s[1] * s[2] * s[3], 2 * cache->nb[1],
                                                       cache->nb[1]);
                                 return cpy(in.ctx, src, dst);
                             },
                             exact(), true});
        cases.push_back({"cpy f16 (permuted) -> f32 " + sn,
                         [=](Inputs& in) {
                             Tensor* dst = in.uniform(DType::F32, {s[0] * s[1], s[2], s[3], 1}, 5, 6);
                             return cpy(in.ctx, in.permuted(DType::F16, s, {0, 2, 1, 3}), dst);
                         },
                         exact(), true});
        cases.push_back({"cpy transposed f32 -> transposed f16 view " + sn,
                         [=](Inputs& in) {
                             Tensor* cache = in.uniform(DType::F16, {s[1], s[0], s[2], s[3]}, 5, 6);
                             return cpy(in.ctx, in.transposed(DType::F32, s), transpose(in.ctx, cache));
                         },
                         exact(), true});
        for (int dim = 0; dim < 4; ++dim)
            cases.push_back({"concat dim " + std::to_string(dim) + " " + sn, [=](Inputs& in) {
                                 Shape sb = s;
                                 sb[dim] = 2;
                                 return concat(in.ctx, in.transposed(DType::F32, s), in.uniform(DType::F32, sb), dim);
                             },
                             exact()});
    }
    for (DType t : {DType::F32, DType::F16, DType::BF16})
        for (int64_t ne0 : {1, 7, 33, 4097})
            for (int64_t n : {1, 7, 33}) {
                cases.push_back({std::string("get_rows ") + type_name(t) + " ne0 " + std::to_string(ne0) + " n " +
                                     std::to_string(n),
                                 [=](Inputs& in) {
                                     Tensor* table = in.uniform(t, {ne0, 40, 1, 1});
                                     Tensor* ids = in.ints({n, 1, 1, 1}, random_ids(size_t(n), 40, uint64_t(ne0 * n)));
                                     return get_rows(in.ctx, table, ids);
                                 },
                                 exact()});
            }
    // set_rows: the KV cache write of a batch over several sequences. Rows land at distinct, unordered ids
    // among 40 cache rows; the whole cache is the result, so rows not named must stay as they were.
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0})
        for (int64_t ne0 : {32, 96, 4096})
            for (int64_t n : {1, 7, 33}) {
                std::vector<int32_t> ids = iota_ids(40);
                std::mt19937 rng(uint32_t(ne0 * 100 + n));
                std::shuffle(ids.begin(), ids.end(), rng);
                ids.resize(size_t(n));
                cases.push_back({std::string("set_rows f32 -> ") + type_name(t) + " ne0 " + std::to_string(ne0) + " n " +
                                     std::to_string(n),
                                 [=](Inputs& in) {
                                     Tensor* cache = in.uniform(t, {ne0, 40, 1, 1}, 5, 6);
                                     return set_rows(in.ctx, in.uniform(DType::F32, {ne0, n, 1, 1}), cache,
                                                     in.ints({n, 1, 1, 1}, ids));
                                 },
                                 t == DType::Q8_0 ? quant_store(t) : exact()});
            }
    // The view builders (reshape, view_1d/2d/3d at an offset) feeding ops that read them.
    cases.push_back({"reshape [33,14] -> [7,3,22] then add", [](Inputs& in) {
                         Tensor* a = reshape_3d(in.ctx, in.uniform(DType::F32, {33, 14, 1, 1}), 7, 3, 22);
                         return add(in.ctx, a, in.uniform(DType::F32, {7, 3, 1, 1}));
                     },
                     one_op()});
    cases.push_back({"view_3d at an offset, then cont", [](Inputs& in) {
                         Tensor* a = in.uniform(DType::F32, {40, 9, 1, 1});
                         return cont(in.ctx, view_3d(in.ctx, a, 7, 3, 2, a->nb[1], 4 * a->nb[1], 5 * a->nb[0]));
                     },
                     exact()});
    cases.push_back({"view_1d f16 at an offset, then cast", [](Inputs& in) {
                         Tensor* a = in.uniform(DType::F16, {33, 3, 1, 1});
                         return cast(in.ctx, view_1d(in.ctx, a, 40, 17 * a->nb[0]), DType::F32);
                     },
                     exact()});
    cases.push_back({"view_2d with padded rows, then sigmoid", [](Inputs& in) {
                         Tensor* a = in.uniform(DType::F32, {33, 7, 1, 1}, -8, 8);
                         return sigmoid(in.ctx, view_2d(in.ctx, a, 30, 6, a->nb[1], 3 * a->nb[0]));
                     },
                     transcendental()});
    cases.push_back({"cont i32 transposed (same-type copy)", [](Inputs& in) {
                         Tensor* ids = in.ints({3, 4, 1, 1}, random_ids(12, 1000, 5));
                         return cont(in.ctx, transpose(in.ctx, ids));
                     },
                     exact()});
    check_cases(cases, 1000);
}

// ====================================================================== matrix products (float weights)

TEST_CASE("ops: mul_mat with f32, f16, bf16 weights over odd shapes, broadcast and strided b") {
    std::vector<OpCase> cases;
    for (DType w : {DType::F32, DType::F16, DType::BF16}) {
        const std::string wn = type_name(w);
        for (int64_t k : {1, 7, 33, 256})
            for (int64_t n : {1, 7, 33})
                for (int64_t m : {1, 7, 33}) {
                    if (w != DType::F32 && (k == 1 || k == 7) && n != m) continue;  // fewer tiny half cases
                    cases.push_back({"mul_mat " + wn + " k" + std::to_string(k) + " n" + std::to_string(n) + " m" +
                                         std::to_string(m),
                                     [=](Inputs& in) {
                                         return mul_mat(in.ctx, in.uniform(w, {k, n, 1, 1}),
                                                        in.uniform(DType::F32, {k, m, 1, 1}));
                                     },
                                     matmul_tol(k, w)});
                }
        // Large n (many weight rows), only a few cheap ones.
        for (auto [k, m] : {std::pair<int64_t, int64_t>{64, 7}, {33, 1}})
            cases.push_back({"mul_mat " + wn + " n4097 k" + std::to_string(k) + " m" + std::to_string(m),
                             [=](Inputs& in) {
                                 return mul_mat(in.ctx, in.uniform(w, {k, 4097, 1, 1}),
                                                in.uniform(DType::F32, {k, m, 1, 1}));
                             },
                             matmul_tol(k, w)});
        // a broadcast over dims 2 and 3: b has 6 = 2 x 3 matrices in dim 2 and 2 in dim 3; a has 2 and 1.
        cases.push_back({"mul_mat " + wn + " broadcast a [33,7,2,1] x b [33,5,6,2]",
                         [=](Inputs& in) {
                             return mul_mat(in.ctx, in.uniform(w, {33, 7, 2, 1}), in.uniform(DType::F32, {33, 5, 6, 2}));
                         },
                         matmul_tol(33, w)});
        // non-contiguous b: transposed, padded rows, permuted dims 1 and 2 (like attention's q)
        cases.push_back({"mul_mat " + wn + " transposed b k33 n7 m9",
                         [=](Inputs& in) {
                             return mul_mat(in.ctx, in.uniform(w, {33, 7, 1, 1}), in.transposed(DType::F32, {33, 9, 1, 1}));
                         },
                         matmul_tol(33, w)});
        cases.push_back({"mul_mat " + wn + " padded-row b k64 n33 m7",
                         [=](Inputs& in) {
                             return mul_mat(in.ctx, in.uniform(w, {64, 33, 1, 1}),
                                            in.padded_rows(DType::F32, {64, 7, 1, 1}, 5));
                         },
                         matmul_tol(64, w)});
        cases.push_back({"mul_mat " + wn + " permuted a and b (dims 1<->2) k32 n7 m5 x3",
                         [=](Inputs& in) {
                             return mul_mat(in.ctx, in.permuted(w, {32, 7, 3, 1}, {0, 2, 1, 3}),
                                            in.permuted(DType::F32, {32, 5, 3, 1}, {0, 2, 1, 3}));
                         },
                         matmul_tol(32, w)});
    }
    check_cases(cases, 2000);
}

TEST_CASE("ops: mul_mat_id (mixture of experts), f32 and f16 experts") {
    std::vector<OpCase> cases;
    for (DType w : {DType::F32, DType::F16})
        for (int64_t k : {33, 64})
            for (int64_t n : {7, 33})
                for (int64_t tokens : {1, 7})
                    for (bool per_slot : {false, true}) {
                        const int64_t n_expert = 5, n_used = 2;
                        cases.push_back(
                            {std::string("mul_mat_id ") + type_name(w) + " k" + std::to_string(k) + " n" +
                                 std::to_string(n) + " tokens " + std::to_string(tokens) + (per_slot ? " b per slot" : " b shared"),
                             [=](Inputs& in) {
                                 Tensor* ex = in.uniform(w, {k, n, n_expert, 1});
                                 Tensor* b = in.uniform(DType::F32, {k, per_slot ? n_used : 1, tokens, 1});
                                 Tensor* ids = in.ints({n_used, tokens, 1, 1},
                                                       random_ids(size_t(n_used * tokens), int32_t(n_expert),
                                                                  uint64_t(k * 100 + n + tokens)));
                                 return mul_mat_id(in.ctx, ex, b, ids);
                             },
                             matmul_tol(k, w)});
                    }
    // b given as a permuted view (tokens in dim 1 of the leaf)
    cases.push_back({"mul_mat_id f32 permuted b", [](Inputs& in) {
                         Tensor* ex = in.uniform(DType::F32, {32, 9, 4, 1});
                         Tensor* b = in.permuted(DType::F32, {32, 2, 3, 1}, {0, 2, 1, 3});
                         Tensor* ids = in.ints({2, 3, 1, 1}, {3, 0, 1, 1, 2, 3});
                         return mul_mat_id(in.ctx, ex, b, ids);
                     },
                     matmul_tol(32, DType::F32)});
    check_cases(cases, 3000);
}

// ====================================================================== elementwise

TEST_CASE("ops: add, mul, div with broadcasting and non-contiguous operands; scale") {
    std::vector<OpCase> cases;
    using BinFn = Tensor* (*)(Context&, Tensor*, Tensor*);
    const std::pair<const char*, BinFn> ops[] = {{"add", add}, {"mul", mul}, {"div", div}};
    for (const Shape& s : kShapes) {
        // b shapes: same, one row, one column, a scalar, and dims 2/3 kept
        const Shape bs[] = {s, {s[0], 1, 1, 1}, {1, s[1], 1, 1}, {1, 1, 1, 1}, {s[0], 1, s[2], s[3]}};
        for (auto [name, fn] : ops)
            for (size_t bi = 0; bi < std::size(bs); ++bi) {
                const Shape b = bs[bi];
                const bool transposed_a = bi % 2 == 0;
                // div: b kept away from zero so the quotient's rounding is the only error
                const bool is_div = std::string(name) == "div";
                const float lo = is_div ? 0.5f : -1.0f, hi = is_div ? 2.0f : 1.0f;
                cases.push_back({std::string(name) + " a " + shape_name(s) + (transposed_a ? " (transposed)" : "") +
                                     " b " + shape_name(b),
                                 [=](Inputs& in) {
                                     Tensor* a = transposed_a ? in.transposed(DType::F32, s) : in.uniform(DType::F32, s);
                                     return fn(in.ctx, a, in.uniform(DType::F32, b, lo, hi));
                                 },
                                 one_op()});
            }
        cases.push_back({"add transposed b " + shape_name(s), [=](Inputs& in) {
                             return add(in.ctx, in.uniform(DType::F32, s), in.transposed(DType::F32, s));
                         },
                         one_op()});
        cases.push_back({"scale 0.125 permuted " + shape_name(s), [=](Inputs& in) {
                             return scale(in.ctx, in.permuted(DType::F32, s, {2, 0, 1, 3}), 0.125f);
                         },
                         one_op()});
        cases.push_back({"scale -3.7 " + shape_name(s),
                         [=](Inputs& in) { return scale(in.ctx, in.uniform(DType::F32, s), -3.7f); }, one_op()});
    }
    check_cases(cases, 4000);
}

TEST_CASE("ops: silu, gelu, gelu_erf, sigmoid, softcap, swiglu, geglu, swiglu_clamped") {
    std::vector<OpCase> cases;
    using UnFn = Tensor* (*)(Context&, Tensor*);
    const std::pair<const char*, UnFn> ops[] = {
        {"silu", silu}, {"gelu", gelu}, {"gelu_erf", gelu_erf}, {"sigmoid", sigmoid}};
    for (const Shape& s : kShapes) {
        for (auto [name, fn] : ops) {
            // [-8, 8] reaches the saturated tails of each activation
            cases.push_back({std::string(name) + " " + shape_name(s),
                             [=](Inputs& in) { return fn(in.ctx, in.uniform(DType::F32, s, -8, 8)); },
                             transcendental()});
            cases.push_back({std::string(name) + " transposed " + shape_name(s),
                             [=](Inputs& in) { return fn(in.ctx, in.transposed(DType::F32, s, -8, 8)); },
                             transcendental()});
        }
        cases.push_back({"softcap 30 " + shape_name(s),
                         [=](Inputs& in) { return softcap(in.ctx, in.uniform(DType::F32, s, -100, 100), 30.0f); },
                         transcendental()});
        cases.push_back({"softcap 0.5 permuted " + shape_name(s), [=](Inputs& in) {
                             return softcap(in.ctx, in.permuted(DType::F32, s, {0, 2, 1, 3}, -3, 3), 0.5f);
                         },
                         transcendental()});
        cases.push_back({"swiglu " + shape_name(s), [=](Inputs& in) {
                             return swiglu(in.ctx, in.uniform(DType::F32, s, -8, 8), in.transposed(DType::F32, s));
                         },
                         transcendental()});
        cases.push_back({"geglu " + shape_name(s), [=](Inputs& in) {
                             return geglu(in.ctx, in.transposed(DType::F32, s, -8, 8), in.uniform(DType::F32, s));
                         },
                         transcendental()});
        // [-12, 12] against limit 7: a share of both inputs is clamped on each side
        cases.push_back({"swiglu_clamped " + shape_name(s), [=](Inputs& in) {
                             return swiglu_clamped(in.ctx, in.uniform(DType::F32, s, -12, 12),
                                                   in.transposed(DType::F32, s, -12, 12), 1.702f, 7.0f);
                         },
                         transcendental()});
    }
    check_cases(cases, 5000);
}

// ====================================================================== norms, rope, softmax

TEST_CASE("ops: rms_norm and norm") {
    std::vector<OpCase> cases;
    for (const Shape& s : kShapes)
        for (float eps : {1e-6f, 1e-5f}) {
            cases.push_back({"rms_norm " + shape_name(s),
                             [=](Inputs& in) { return rms_norm(in.ctx, in.uniform(DType::F32, s), eps); },
                             normalised(s[0])});
            cases.push_back({"rms_norm transposed " + shape_name(s),
                             [=](Inputs& in) { return rms_norm(in.ctx, in.transposed(DType::F32, s), eps); },
                             normalised(s[0])});
            cases.push_back({"norm " + shape_name(s),
                             [=](Inputs& in) { return norm(in.ctx, in.uniform(DType::F32, s, -1, 3), eps); },
                             normalised(s[0])});
            cases.push_back({"norm permuted " + shape_name(s),
                             [=](Inputs& in) { return norm(in.ctx, in.permuted(DType::F32, s, {0, 3, 1, 2}), eps); },
                             normalised(s[0])});
        }
    check_cases(cases, 6000);
}

TEST_CASE("ops: rope normal / neox, partial dims, freq factors, linear scaling and YaRN, strided x") {
    std::vector<OpCase> cases;
    struct Variant {
        const char* name;
        float freq_scale, ext_factor;
        bool factors;
    };
    const Variant variants[] = {{"plain", 1.0f, 0.0f, false},
                                {"linear x4", 0.25f, 0.0f, false},
                                {"yarn x4", 0.25f, 1.0f, false},
                                {"freq factors", 1.0f, 0.0f, true},
                                {"yarn x8 + freq factors", 0.125f, 1.0f, true}};
    const int64_t p_max = 3000;
    for (int mode : {kRopeNormal, kRopeNeox})
        for (int64_t head_dim : {64, 128})
            for (int n_dims_div : {1, 2})
                for (const Variant& v : variants)
                    for (auto [n_head, n_tok] : {std::pair<int64_t, int64_t>{1, 1}, {7, 3}, {2, 33}}) {
                        const int n_dims = int(head_dim / n_dims_div);
                        const bool strided = n_tok == 3;  // x as a permuted view (tokens and heads swapped in memory)
                        cases.push_back(
                            {std::string("rope ") + (mode == kRopeNeox ? "neox " : "normal ") + v.name + " hd" +
                                 std::to_string(head_dim) + " n_dims" + std::to_string(n_dims) + " heads" +
                                 std::to_string(n_head) + " tokens" + std::to_string(n_tok) + (strided ? " strided" : ""),
                             [=](Inputs& in) {
                                 const Shape s{head_dim, n_head, n_tok, 1};
                                 Tensor* x = strided ? in.permuted(DType::F32, s, {0, 2, 1, 3}) : in.uniform(DType::F32, s);
                                 Tensor* pos = in.ints({n_tok, 1, 1, 1},
                                                       random_ids(size_t(n_tok), int32_t(p_max), uint64_t(n_tok + n_head)));
                                 Tensor* ff = v.factors ? in.uniform(DType::F32, {n_dims / 2, 1, 1, 1}, 1.0f, 8.0f) : nullptr;
                                 RopeParams p;
                                 p.n_dims = n_dims;
                                 p.mode = mode;
                                 p.n_ctx_orig = 4096;
                                 p.freq_base = head_dim == 64 ? 10000.0f : 500000.0f;
                                 p.freq_scale = v.freq_scale;
                                 p.ext_factor = v.ext_factor;
                                 p.attn_factor = v.ext_factor != 0 ? 0.9f : 1.0f;
                                 return rope(in.ctx, x, pos, p, ff);
                             },
                             rope_tol(p_max)});
                    }
    check_cases(cases, 7000);
}

TEST_CASE("ops: softmax with scale, broadcast mask, -inf entries and fully masked rows") {
    std::vector<OpCase> cases;
    for (int64_t ne0 : {1, 7, 33, 4097})
        for (int64_t ne1 : {1, 7})
            for (int64_t ne2 : {1, 3})
                for (bool masked : {false, true})
                    for (float sc : {1.0f, 0.125f}) {
                        if (ne0 == 4097 && (ne2 == 3 || sc != 1.0f)) continue;  // keep the long rows few
                        cases.push_back(
                            {"softmax " + shape_name({ne0, ne1, ne2, 1}) + " scale " + std::to_string(sc) +
                                 (masked ? " masked" : ""),
                             [=](Inputs& in) {
                                 // inputs in [-10, 10] spread the probabilities over many orders of magnitude
                                 Tensor* a = ne2 == 3 ? in.transposed(DType::F32, {ne0, ne1, ne2, 1}, -10, 10)
                                                      : in.uniform(DType::F32, {ne0, ne1, ne2, 1}, -10, 10);
                                 Tensor* mask = nullptr;
                                 if (masked) mask = in.random_mask(ne0, ne1);
                                 return softmax(in.ctx, a, mask, sc);
                             },
                             softmax_tol(ne0)});
                    }
    check_cases(cases, 8000);
}

// ====================================================================== reductions and selection

TEST_CASE("ops: sum, mean, argmax, top_k") {
    std::vector<OpCase> cases;
    for (const Shape& s : kShapes) {
        cases.push_back({"sum " + shape_name(s), [=](Inputs& in) { return sum(in.ctx, in.uniform(DType::F32, s)); },
                         row_sum(s[0])});
        cases.push_back({"sum transposed " + shape_name(s),
                         [=](Inputs& in) { return sum(in.ctx, in.transposed(DType::F32, s)); }, row_sum(s[0])});
        cases.push_back({"mean " + shape_name(s),
                         [=](Inputs& in) { return mean(in.ctx, in.uniform(DType::F32, s)); }, row_mean(s[0])});
        cases.push_back({"mean permuted " + shape_name(s),
                         [=](Inputs& in) { return mean(in.ctx, in.permuted(DType::F32, s, {0, 2, 1, 3})); },
                         row_mean(s[0])});
        // argmax / top_k pick indices, no arithmetic: exact. Values in steps of 0.25 make ties common, which
        // checks the tie rule (lowest index first).
        cases.push_back({"argmax " + shape_name(s), [=](Inputs& in) { return argmax(in.ctx, in.uniform(DType::F32, s)); },
                         exact()});
        cases.push_back({"argmax ties transposed " + shape_name(s),
                         [=](Inputs& in) { return argmax(in.ctx, transpose(in.ctx, in.steps({s[1], s[0], s[2], s[3]}, 0.25f))); },
                         exact()});
        for (int64_t k : {int64_t(1), std::min<int64_t>(3, s[0]), s[0]}) {
            if (s[0] == 4097 && k == s[0]) continue;  // a full sort of long rows adds nothing over k = 3
            cases.push_back({"top_k " + std::to_string(k) + " " + shape_name(s),
                             [=](Inputs& in) { return top_k(in.ctx, in.uniform(DType::F32, s), int(k)); }, exact()});
            cases.push_back({"top_k ties " + std::to_string(k) + " " + shape_name(s),
                             [=](Inputs& in) { return top_k(in.ctx, in.steps(s, 0.25f), int(k)); }, exact()});
        }
    }
    check_cases(cases, 9000);
}

// ====================================================================== quantized types
// Separate from the float cases: these depend on core/quant.cpp's dequantizers and quantizers.

TEST_CASE("ops: quantized weights in mul_mat, mul_mat_id, get_rows; cast and cpy into q8_0 / q4_0") {
    const DType kQuant[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                            DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K,
                            DType::IQ4_NL, DType::IQ4_XS, DType::MXFP4};
    std::vector<OpCase> cases;
    for (DType w : kQuant) {
        const std::string wn = type_name(w);
        const int64_t bs = type_traits(w).block_size;
        // k must be a whole number of blocks: one block, and a few (256 = 1 super-block for K types)
        for (int64_t k : {bs, int64_t(512)})
            for (int64_t n : {1, 7, 33})
                for (int64_t m : {1, 7, 33}) {
                    if (k == 512 && n != m) continue;
                    cases.push_back({"mul_mat " + wn + " k" + std::to_string(k) + " n" + std::to_string(n) + " m" +
                                         std::to_string(m),
                                     [=](Inputs& in) {
                                         return mul_mat(in.ctx, in.uniform(w, {k, n, 1, 1}),
                                                        in.uniform(DType::F32, {k, m, 1, 1}));
                                     },
                                     matmul_tol(k, w)});
                }
        // Many weight rows (odd count, past any panel size): a few types only, quantizing 4097 rows is slow.
        if (w == DType::Q4_0 || w == DType::Q8_0 || w == DType::Q4_K || w == DType::Q6_K || w == DType::IQ4_XS)
            cases.push_back({"mul_mat " + wn + " n4097 k256 m1", [=](Inputs& in) {
                                 return mul_mat(in.ctx, in.uniform(w, {256, 4097, 1, 1}),
                                                in.uniform(DType::F32, {256, 1, 1, 1}));
                             },
                             matmul_tol(256, w)});
        cases.push_back({"mul_mat " + wn + " broadcast + transposed b", [=](Inputs& in) {
                             return mul_mat(in.ctx, in.uniform(w, {256, 5, 2, 1}), in.transposed(DType::F32, {256, 3, 4, 1}));
                         },
                         matmul_tol(256, w)});
        cases.push_back({"mul_mat_id " + wn, [=](Inputs& in) {
                             Tensor* ex = in.uniform(w, {256, 9, 4, 1});
                             Tensor* b = in.uniform(DType::F32, {256, 1, 5, 1});
                             Tensor* ids = in.ints({2, 5, 1, 1}, {3, 0, 1, 2, 2, 2, 0, 3, 1, 0});
                             return mul_mat_id(in.ctx, ex, b, ids);
                         },
                         matmul_tol(256, w)});
        cases.push_back({"get_rows " + wn, [=](Inputs& in) {
                             Tensor* table = in.uniform(w, {2 * 256, 12, 1, 1});
                             return get_rows(in.ctx, table, in.ints({7, 1, 1, 1}, random_ids(7, 12, 77)));
                         },
                         dequantized()});
        cases.push_back({"cast " + wn + " -> f32 (dequantize)", [=](Inputs& in) {
                             return cast(in.ctx, in.uniform(w, {256, 3, 1, 1}), DType::F32);
                         },
                         dequantized()});
    }
    for (DType q : {DType::Q8_0, DType::Q4_0}) {
        const std::string qn = type_name(q);
        cases.push_back({"cast f32 -> " + qn + " (transposed source)",
                         [=](Inputs& in) { return cast(in.ctx, in.transposed(DType::F32, {64, 7, 1, 1}), q); },
                         quant_store(q)});
        cases.push_back({"cpy f32 -> " + qn + " cache rows 2 apart", [=](Inputs& in) {
                             Tensor* src = in.uniform(DType::F32, {96, 5, 1, 1});
                             Tensor* cache = in.uniform(q, {96, 10, 1, 1});
                             return cpy(in.ctx, src, view_2d(in.ctx, cache, 96, 5, 2 * cache->nb[1], cache->nb[1]));
                         },
                         quant_store(q), true});
    }
    check_cases(cases, 10000);
}

// ====================================================================== error paths

namespace {

// Runs one graph on backend `be`, leaves given storage by that backend (contents from their fills).
void compute_on(Backend& be, Inputs& in, Tensor* out, std::vector<std::unique_ptr<Buffer>>& keep) {
    Graph g;
    g.expand(out);
    for (size_t i = 0; i < in.leaves.size(); ++i) {
        Tensor* t = in.leaves[i].first;
        keep.push_back(be.alloc_buffer(std::max<size_t>(t->nbytes(), 1)));
        t->buffer = keep.back().get();
        t->data = keep.back()->base();
    }
    keep.push_back(allocate_graph(g, be));
    for (size_t i = 0; i < in.leaves.size(); ++i) {
        const auto bytes = leaf_bytes(*in.leaves[i].first, in.leaves[i].second, 99 + i);
        be.set_tensor(*in.leaves[i].first, bytes.data(), 0, bytes.size());
    }
    be.compute(g);
}

}  // namespace

TEST_CASE("ops errors: an unsupported type is refused by supports() and by compute, naming the node") {
    for (const std::string& name : available_backends()) {
        auto be = create_backend(name);
        INFO("backend " << name);
        Context ctx;
        Inputs in(ctx);
        Tensor* table = in.ints({4, 3, 1, 1}, std::vector<int32_t>(12, 1));  // an i32 table: no float rows
        Tensor* g = get_rows(ctx, table, in.ints({1, 1, 1, 1}, {0}));
        g->name = "i32_table_rows";
        CHECK_FALSE(be->supports(*g));
        std::vector<std::unique_ptr<Buffer>> keep;
        const std::string msg = error_of([&] { compute_on(*be, in, g, keep); });
        INFO("message: " << msg);
        CHECK(msg.find("i32_table_rows") != std::string::npos);
        // and a cast into i32, which no conversion produces
        Tensor* f = ctx.new_tensor(DType::F32, {8});
        CHECK_FALSE(be->supports(*cast(ctx, f, DType::I32)));
    }
}

TEST_CASE("ops errors: mismatched shapes are refused at build time, naming the op and the shapes") {
    Context ctx;
    Tensor* a = ctx.new_tensor(DType::F32, {8, 3});
    Tensor* b = ctx.new_tensor(DType::F32, {7, 3});
    Tensor* c = ctx.new_tensor(DType::F32, {3, 3});
    Tensor* pos = ctx.new_tensor(DType::I32, {5});
    const std::pair<const char*, std::function<void()>> builds[] = {
        {"mul_mat", [&] { mul_mat(ctx, a, b); }},
        {"add", [&] { add(ctx, a, c); }},
        {"concat", [&] { concat(ctx, a, ctx.new_tensor(DType::F32, {8, 3, 2}), 0); }},
        {"swiglu", [&] { swiglu(ctx, a, b); }},
        {"rope", [&] {
             RopeParams p;
             p.n_dims = 8;
             rope(ctx, ctx.new_tensor(DType::F32, {8, 2, 3}), pos, p);
         }},
        {"get_rows", [&] { get_rows(ctx, a, ctx.new_tensor(DType::F32, {2})); }},
        {"mul_mat_id", [&] {
             mul_mat_id(ctx, ctx.new_tensor(DType::F32, {8, 4, 3}), ctx.new_tensor(DType::F32, {8, 1, 2}),
                        ctx.new_tensor(DType::I32, {2, 3}));
         }},
        {"softmax", [&] { softmax(ctx, a, c, 1.0f); }},
    };
    for (const auto& [op, f] : builds) {
        const std::string msg = error_of(f);
        INFO(op << ": " << msg);
        CHECK(msg.find(op) != std::string::npos);
    }
    // the message names the shapes involved
    const std::string msg = error_of([&] { mul_mat(ctx, a, b); });
    CHECK(msg.find("[8, 3, 1, 1]") != std::string::npos);
    CHECK(msg.find("[7, 3, 1, 1]") != std::string::npos);
}

TEST_CASE("ops errors: a row or expert id out of range is an Error at compute, naming the node and the id") {
    for (const std::string& name : available_backends()) {
        auto be = create_backend(name);
        INFO("backend " << name);
        // A device kernel flags the bad id and the backend names the node after the graph; only the host
        // backends see which id it was.
        const bool names_id = be->is_host();
        for (int32_t bad : {6, -2}) {
            Context ctx;
            Inputs in(ctx);
            Tensor* g = get_rows(ctx, in.uniform(DType::F16, {8, 6, 1, 1}), in.ints({3, 1, 1, 1}, {0, bad, 1}));
            g->name = "embd_rows";
            std::vector<std::unique_ptr<Buffer>> keep;
            const std::string msg = error_of([&] { compute_on(*be, in, g, keep); });
            INFO("get_rows message: " << msg);
            CHECK(msg.find("embd_rows") != std::string::npos);
            if (names_id) CHECK(msg.find(std::to_string(bad)) != std::string::npos);
        }
        for (int32_t bad : {4, -1}) {
            Context ctx;
            Inputs in(ctx);
            Tensor* m = mul_mat_id(ctx, in.uniform(DType::F32, {16, 3, 4, 1}), in.uniform(DType::F32, {16, 1, 2, 1}),
                                   in.ints({2, 2, 1, 1}, {0, 1, 2, bad}));
            m->name = "moe_up";
            std::vector<std::unique_ptr<Buffer>> keep;
            const std::string msg = error_of([&] { compute_on(*be, in, m, keep); });
            INFO("mul_mat_id message: " << msg);
            CHECK(msg.find("moe_up") != std::string::npos);
            if (names_id) CHECK(msg.find(std::to_string(bad)) != std::string::npos);
        }
    }
}
