// The amx cpu level's F16 / BF16 matmul (backends/cpu/amx_matmul_f16.cpp) on weights the cpu backend repacked
// for the BF16 tiles (amx_repack_f16.h), against the reference, at the amx level this machine runs (the real
// tiles, or their emulated twin, amx_emu.h): the layout's round trip, odd shapes on both the tile path and the
// small-batch path, strided activations, 1 to 3 threads, and the F16 golden cases with weights repacked at load.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/amx_repack.h"
#include "backends/cpu/amx_repack_f16.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/graph.h"
#include "core/half.h"
#include "core/ops.h"
#include "models/model.h"
#include "tests/amx_level.h"
#include "tests/golden_util.h"
#include "tests/repacked_matmul_check.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;
namespace layout = tessera::cpu::amx_layout;

TEST_CASE("amx F16/BF16 layout: repack then unpack gives back every row's bits, any k, partial panels") {
    std::mt19937 rng(12);
    for (DType t : {DType::F16, DType::BF16})
        for (int64_t rows : {1, 15, 16, 17, 33})
            for (int64_t k : {1, 2, 31, 32, 45, 64, 96, 100}) {
                CHECK(layout::repackable(t));
                // Every 16-bit pattern may occur (NaNs, infinities, denormals): the layout moves bits only. The
                // source rows have a stride of their own, 3 values longer than k.
                const size_t stride = size_t(k + 3) * 2;
                std::vector<uint16_t> src(size_t(rows) * (stride / 2)), back(src.size(), 0);
                for (auto& v : src) v = uint16_t(rng());
                std::vector<uint8_t> packed(layout::packed_bytes(t, rows, k));
                layout::repack(t, src.data(), stride, rows, k, packed.data());
                layout::unpack(t, packed.data(), rows, k, back.data(), stride);
                for (int64_t r = 0; r < rows; ++r)
                    CHECK_MESSAGE(std::memcmp(src.data() + r * (k + 3), back.data() + r * (k + 3), size_t(k) * 2) == 0,
                                  std::string(type_name(t)) << " rows " << rows << " k " << k << " row " << r);
                // Whole panels and blocks take exactly the file's bytes; otherwise the padding only.
                const size_t panels = size_t((rows + 15) / 16), blocks = size_t((k + 31) / 32);
                CHECK(packed.size() == panels * blocks * 1024);
            }
}

TEST_CASE("amx F16/BF16 split: an F16 value is exactly its two BF16 parts; an fp32 one (above 2^-100) to 2^-17") {
    for (uint32_t bits = 0; bits < 0x10000; ++bits) {
        const float w = fp16_to_fp32(uint16_t(bits));
        if (!std::isfinite(w)) continue;
        uint16_t hi, lo;
        layout::split_bf16(w, &hi, &lo);
        REQUIRE_MESSAGE(double(bf16_to_fp32(hi)) + bf16_to_fp32(lo) == double(w), "f16 bits " << bits);
    }
    std::mt19937 rng(3);
    for (int i = 0; i < 100000; ++i) {
        uint32_t u = rng();
        float x;
        std::memcpy(&x, &u, 4);
        // Below about 2^-110 the low part is a denormal (which the tiles read as zero anyway): no relative bound.
        if (!std::isfinite(x) || std::fabs(x) < std::ldexp(1.0f, -100)) continue;
        uint16_t hi, lo;
        layout::split_bf16(x, &hi, &lo);
        REQUIRE(std::isfinite(bf16_to_fp32(hi)));
        REQUIRE_MESSAGE(std::fabs(double(bf16_to_fp32(hi)) + bf16_to_fp32(lo) - x) <= std::ldexp(std::fabs(double(x)), -17),
                        "x " << x);
    }
    uint16_t hi, lo;  // rounding to nearest would overflow here: the high part is truncated instead
    layout::split_bf16(std::numeric_limits<float>::max(), &hi, &lo);
    CHECK(std::isfinite(bf16_to_fp32(hi)));
}

namespace {

struct F16Case {
    DType type;
    int64_t k, n, m;
    bool strided_b;  // b a transposed view: the activation packing path
};

// One repacked mul_mat against the reference on the same weights. Error bound per output, from
// amx_matmul_f16.cpp's analysis: the tile path 3 x 2^-17 of sum |w x| (the activation split and the
// product of the two low parts it leaves out) plus fp32 summation, k x 2^-24 of it; the small-batch path
// (exact products, fp32 sums) the latter alone. Returns the output for the thread-count check.
std::vector<float> check_f16_matmul(const F16Case& c, int threads, const std::string& level) {
    Context ctx;
    HostArena arena;
    Tensor* a = arena.make(ctx, c.type, {c.k, c.n}, "w");
    arena.fill_random(a, 700 + uint64_t(c.k * 3 + c.n));
    Tensor* b;
    std::vector<float> bf(size_t(c.k * c.m));
    if (c.strided_b) {
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
    Tensor* orig = arena.make(ctx, c.type, {c.k, c.n}, "w unpacked");
    std::memcpy(orig->data, a->data, a->nbytes());
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

    const bool tiles = c.m >= 8;  // amx_matmul_f16.h's kAmxF16TileMinRows
    const double per_term = (tiles ? 3 * std::ldexp(1.0, -17) : 0.0) + double(c.k + 2) * std::ldexp(1.0, -24);
    double worst = 0;
    int64_t wi = 0, wj = 0;
    for (int64_t j = 0; j < c.m; ++j)
        for (int64_t i = 0; i < c.n; ++i) {
            double mag = 0;
            for (int64_t p = 0; p < c.k; ++p) mag += std::fabs(double(af[size_t(i * c.k + p)]) * bf[size_t(j * c.k + p)]);
            const size_t o = size_t(j * c.n + i);
            const double r = std::fabs(double(got[o]) - want[o]) / (per_term * mag + 1e-30);
            if (!(r <= worst)) {
                worst = r;
                wi = i;
                wj = j;
            }
        }
    INFO(std::string(type_name(c.type)) << " k " << c.k << " n " << c.n << " m " << c.m << std::string(c.strided_b ? " strided b" : "")
                           << " threads " << threads << " level " << level << "; worst at (" << wi << ", " << wj << ") got "
                           << got[size_t(wj * c.n + wi)] << " want " << want[size_t(wj * c.n + wi)] << ", "
                           << worst << " of the bound");
    CHECK(worst <= 1.0);
    return got;
}

}  // namespace

TEST_CASE("amx mul_mat: repacked F16 / BF16 weights against the reference, odd shapes, 1 to 3 threads") {
    const std::string level = amx_level_name();
    if (level.empty()) return;
    // k 32, 64, 96 (whole 32-value blocks) and 45, 100, 7 (a zero-padded last block, odd k: a half pair);
    // n 17, 33, 5, 20: partial 16-row panels; m 8..40: the tiles, with partial 16-row activation groups; m 1, 3,
    // 5: the small-batch (decode) path, groups of 4 and a remainder.
    const F16Case cases[] = {
        {DType::F16, 32, 17, 8, false},   {DType::BF16, 32, 17, 8, false},  {DType::F16, 64, 33, 19, true},
        {DType::BF16, 64, 33, 19, false}, {DType::F16, 96, 20, 16, false},  {DType::BF16, 96, 5, 40, true},
        {DType::F16, 45, 33, 17, false},  {DType::BF16, 45, 17, 9, true},   {DType::F16, 100, 16, 33, true},
        {DType::F16, 7, 3, 12, false},    {DType::F16, 64, 48, 1, false},   {DType::BF16, 96, 33, 1, true},
        {DType::F16, 45, 17, 3, true},    {DType::BF16, 100, 20, 5, false}, {DType::F16, 256, 40, 24, false},
    };
    for (const auto& c : cases)
        check_same_bits_at_1_to_3_threads([&](int threads) { return check_f16_matmul(c, threads, level); }, "");
}

TEST_CASE("amx: repacked F16 weights reach only the amx level's mul_mat; anything else is an error naming them") {
    const std::string level = amx_level_name();
    if (level.empty()) return;
    Context ctx;
    HostArena arena;
    Tensor* a = arena.make(ctx, DType::F16, {64, 20}, "blk.0.ffn_up.weight");
    arena.fill_random(a, 9);
    Tensor* b = arena.make(ctx, DType::F32, {64, 9}, "x");
    arena.fill_random(b, 10);
    BackendOptions opt;
    opt.cpu_level = level;
    auto amx = create_backend("cpu", opt);
    auto packed = amx->repack_weights({a});
    REQUIRE(packed != nullptr);
    auto ref = create_backend("reference");
    expect_repacked_weight_refused(mul_mat(ctx, a, b), *ref, "blk.0.ffn_up.weight");
    opt.cpu_level = "avx2";
    if (cpu::cpu_level_missing(cpu::CpuLevel::Avx2).empty()) {
        auto avx2 = create_backend("cpu", opt);
        expect_repacked_weight_refused(mul_mat(ctx, a, b), *avx2, "blk.0.ffn_up.weight");  // nor another level
    }
    Tensor* ids = arena.make(ctx, DType::I32, {2}, "ids");
    arena.fill_i32(ids, {0, 3});
    expect_repacked_weight_refused(get_rows(ctx, a, ids), *amx, "blk.0.ffn_up.weight");  // nor another op
    // 3-D F16 weights (experts) stay as they are.
    Tensor* e3 = arena.make(ctx, DType::F16, {64, 16, 2}, "experts");
    CHECK(amx->repack_weights({e3}) == nullptr);
    CHECK((e3->flags & kFlagRepacked) == 0);
}

TEST_CASE("amx: the F16 golden cases with weights repacked at load, batch and incremental") {
    // Opened with TESSERA_CPU naming the amx level: Model::open repacks the F16 projections for the BF16 tiles,
    // and the batch (48 tokens: the tile path) and one token at a time (the small-batch path) must meet the
    // manifest's tolerance as they are.
    const std::string level = amx_level_name();
    if (level.empty() || !golden::have_shared()) return;
    const CpuLevelGuard guard(level);
    int checked = 0;
    for (const auto& c : golden::cases_for({"llama", "gemma2"})) {
        if (c.weight_type != "F16") continue;
        auto model = Model::open(c.gguf);
        CHECK_MESSAGE(model->repacked_weight_bytes() > 0, c.name << ": nothing was repacked");
        golden::check_batch_incremental(*model, c, 0, level);
        ++checked;
    }
    CHECK(checked >= 2);
}
