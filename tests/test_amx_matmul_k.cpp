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
#include "tests/repacked_matmul_check.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

using KCase = RepackedMatmulCase;

// K-quant weights repacked for the amx level; activations rounded to Q8_K, a float scale per 256 values (0.51 d
// allows for its rounding; the kernel rounds to fp32 once per super-block). See tests/repacked_matmul_check.h.
std::vector<float> check_k_matmul(const KCase& c, int threads, const std::string& level) {
    return check_repacked_matmul(c, threads, level, {256, 0.51},
                                 {700 + uint64_t(c.k + c.n), 800 + uint64_t(c.m), kFlagRepacked, "amx K tiles", {}});
}

}  // namespace

TEST_CASE("amx mul_mat K: repacked Q4_K / Q6_K / Q5_K weights against the reference, odd shapes, 1 to 3 threads") {
    const std::string level = amx_level_name();
    if (level.empty()) return;
    // n 17, 33, 1, 15, 70, 77: partial 16-row panels (70, 77: more than one decode item); m 1, 2, 5, 6, 8
    // (decode, the weights unpacked once for all rows), 17, 33: partial 16-row activation groups; k 256, 512,
    // 768: one to three super-blocks. n 121, 149, 200 at m 1: decode items of 8 to 13 panels, read in runs far
    // apart (the last panel partial, inside the last run or taken alone after the runs).
    const KCase cases[] = {
        {DType::Q4_K, 256, 17, 2, false}, {DType::Q4_K, 512, 33, 5, true},  {DType::Q4_K, 768, 1, 17, false},
        {DType::Q4_K, 256, 40, 1, false}, {DType::Q4_K, 512, 15, 33, true}, {DType::Q6_K, 256, 17, 2, false},
        {DType::Q6_K, 512, 33, 5, true},  {DType::Q6_K, 768, 1, 17, false}, {DType::Q6_K, 256, 40, 1, false},
        {DType::Q6_K, 512, 15, 33, true}, {DType::Q5_K, 256, 17, 3, false}, {DType::Q5_K, 768, 20, 17, true},
        {DType::Q5_K, 512, 33, 1, false}, {DType::Q4_K, 768, 33, 8, false}, {DType::Q6_K, 512, 17, 8, true},
        {DType::Q5_K, 256, 17, 6, true},  {DType::Q4_K, 512, 70, 1, false}, {DType::Q6_K, 256, 77, 1, true},
        {DType::Q4_K, 256, 121, 1, false}, {DType::Q6_K, 512, 149, 1, true}, {DType::Q5_K, 256, 200, 1, false},
        {DType::Q4_K, 256, 149, 2, false},
    };
    for (const auto& c : cases)
        check_same_bits_at_1_to_3_threads([&](int threads) { return check_k_matmul(c, threads, level); },
                                          std::string(type_name(c.type)) + " n " + std::to_string(c.n) + " m " +
                                              std::to_string(c.m));
}

TEST_CASE("amx mul_mat K: one activation row (the decode path) gives the bits of the same row in a batch") {
    const std::string level = amx_level_name();
    if (level.empty()) return;
    for (DType t : {DType::Q4_K, DType::Q6_K, DType::Q5_K}) {
        Context ctx;
        HostArena arena;
        const int64_t k = 512, n = 37, m = 11;  // more rows than decode takes: the batch goes through the tiles
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
        golden::check_batch_incremental(*model, c, 0, level);
        ++checked;
    }
    CHECK(checked >= 2);
}
