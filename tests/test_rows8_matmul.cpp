// Q4_0, Q8_0 and IQ4_NL weights repacked at load into interleaved rows (backends/cpu/rows8_layout.h) and their matmul
// (backends/cpu/rows8_matmul.cpp), against the reference on the same weights unrepacked, at every cpu level
// this machine runs (the avx512 kernels through their emulated twin where the CPU lacks them): odd shapes,
// partial strips, 1 to 17 activation rows, strided activations, 1 to 3 threads, the int16 sums' extremes.
// Also: the layout's inverse gives the file's bytes back, and a repacked weight is refused, by name, by
// everything but a level with these kernels.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/cpu/rows8_layout.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/graph.h"
#include "core/ops.h"
#include "core/quant.h"
#include "tests/cpu_levels.h"
#include "tests/repacked_matmul_check.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

namespace L = cpu::rows8_layout;

struct Case {
    int64_t k, n, m;
    bool strided_b;
};

// Weight contents: random blocks, or the values that take the avx2 kernels' int16 sums to their largest size
// (with every activation +-1, quantized to +-127): Q4_0 every nibble 15 / 0, eight u8 x s8 pair sums added
// in int16 (8 x 2 x 15 x 127 = 30480); Q8_0 every value -128 / +127, one pair |w| x (sign(w) x) of
// 2 x 128 x 127 = 32512 (and, with VNNI, the unsigned operand w + 128 at 0 / 255); IQ4_NL every index 0 / 15
// (levels -127 / 113: pairs of 2 x 127 x 127 = 32258).
constexpr DType kTypes[] = {DType::Q4_0, DType::Q8_0, DType::IQ4_NL};
enum class Fill { Random, AllMax, AllZeroNegX };

// The cpu levels whose backend repacks Q4_0 into this layout, by name; the others are listed in `others`.
std::vector<std::string> rows8_levels(std::vector<std::string>* others = nullptr) {
    std::vector<std::string> names;
    for (const cpu::CpuKernels* k : cpu_level_tables()) {
        const std::string name = cpu::kernel_level_name(k->kernel_level());
        Context ctx;
        HostArena arena;
        Tensor* a = arena.make(ctx, DType::Q4_0, {64, 8}, "w");
        arena.fill_random(a, 1);
        BackendOptions opt;
        opt.cpu_level = name;
        auto be = create_backend("cpu", opt);
        auto packed = be->repack_weights({a});
        if (packed && (a->flags & kFlagRows8)) {
            names.push_back(name);
            MESSAGE("rows8 kernels checked at cpu level " << name);
        }
        else if (others) others->push_back(name);
    }
    return names;
}

// Q4_0 / Q8_0 / IQ4_NL weights in rows8 strips against the reference; activations rounded to Q8_0 (see
// tests/repacked_matmul_check.h). Returns the output for the bit-identity check across thread counts.
std::vector<float> check_rows8(DType t, const Case& c, Fill fill, int threads, const std::string& level) {
    auto extremes = [fill, t](HostArena& arena, Tensor* a, Tensor* contiguous_b) {
        const bool high = fill == Fill::AllMax;
        for (int64_t i = 0; i < a->ne[0] * a->ne[1] / 32; ++i) {
            if (t == DType::Q8_0)
                std::memset(static_cast<block_q8_0*>(a->data)[i].qs, high ? 0x80 : 0x7F, 32);
            else if (t == DType::IQ4_NL)
                std::memset(static_cast<block_iq4_nl*>(a->data)[i].qs, high ? 0x00 : 0xFF, 16);
            else
                std::memset(static_cast<block_q4_0*>(a->data)[i].qs, high ? 0xFF : 0x00, 16);
        }
        if (contiguous_b) arena.fill(contiguous_b, std::vector<float>(size_t(contiguous_b->ne[0] * contiguous_b->ne[1]),
                                                                      high ? 1.0f : -1.0f));
    };
    return check_repacked_matmul({t, c.k, c.n, c.m, c.strided_b}, threads, level, {32, 0.57},
                                 {700 + uint64_t(c.k + 3 * c.n), 800 + uint64_t(c.m), kFlagRepacked | kFlagRows8,
                                  std::string(type_name(t)) + " rows8 fill " + std::to_string(int(fill)),
                                  fill == Fill::Random ? nullptr : std::function<void(HostArena&, Tensor*, Tensor*)>(extremes)});
}

}  // namespace

TEST_CASE("rows8 layout: unpack gives every real row's GGUF blocks back; padding rows are value 0") {
    for (DType t : kTypes)
        for (int64_t rows : {1, 7, 8, 9, 21}) {
            INFO(type_name(t) << ", " << rows << " rows");
            Context ctx;
            HostArena arena;
            Tensor* a = arena.make(ctx, t, {96, rows}, "w");
            arena.fill_random(a, 40 + uint64_t(rows));
            std::vector<uint8_t> packed(L::packed_bytes(t, rows, 96));
            CHECK(packed.size() == size_t((rows + 7) / 8 * 8) * 3 * type_traits(t).block_bytes);
            L::repack(t, a->data, a->nb[1], rows, 96, packed.data());
            std::vector<uint8_t> back(a->nbytes(), 0xAB);
            L::unpack(t, packed.data(), rows, 96, back.data(), a->nb[1]);
            CHECK(std::memcmp(back.data(), a->data, a->nbytes()) == 0);
            // Row 0's value 5 (Q4_0: the low nibble of byte 5; Q8_0: byte 5) sits at record byte 32 + 1.
            CHECK(packed[L::kScaleBytes + 32 + 1] == static_cast<const uint8_t*>(a->data)[2 + 5]);
            if (rows % 8) {  // the last strip's padding rows: scale 0, value 0 (Q4_0 nibbles 8)
                const uint8_t* rec = packed.data() + packed.size() - L::record_bytes(t);
                const int pad = int(rows % 8);
                CHECK((rec[2 * pad] | rec[2 * pad + 1]) == 0);
                CHECK(rec[L::kScaleBytes + 4 * pad] == (t == DType::Q4_0 ? 0x88 : 0x00));
            }
        }
    CHECK_THROWS_AS(L::repack(DType::Q8_K, nullptr, 0, 8, 256, nullptr), Error);
}

TEST_CASE("rows8 mul_mat: repacked Q4_0, Q8_0 and IQ4_NL against the reference, odd shapes, 1 to 17 columns, 1 to 3 threads") {
    const std::vector<std::string> levels = rows8_levels();
    if (levels.empty()) {
        MESSAGE("no cpu level here repacks Q4_0 into interleaved rows: nothing to check");
        return;
    }
    // n 1, 7, 9, 21: partial strips; 50, 100 and 300: several 48-row units of work, the last partial (one
    // column reads four strips side by side, then two, then one: 100 takes every form; a decode item spans
    // several units); m 1 (decode),
    // 2-8 (a decode batch of several sequences), 9, 17: more than one 4-column pass with a partial last one.
    // k 32, 96: one and three blocks; 2048 a TinyLlama row.
    std::vector<Case> cases;
    for (int64_t m = 1; m <= 9; ++m) cases.push_back({96, 21, m, m == 3});
    for (const Case c : {Case{32, 7, 4, false}, Case{64, 1, 2, false}, Case{2048, 9, 5, false},
                         Case{160, 50, 17, true}, Case{64, 100, 8, false}, Case{256, 100, 1, false},
                         Case{64, 300, 1, false}, Case{96, 300, 3, true}})
        cases.push_back(c);
    for (const std::string& level : levels)
        for (DType t : kTypes)
            for (const auto& c : cases)
                check_same_bits_at_1_to_3_threads([&](int threads) { return check_rows8(t, c, Fill::Random, threads, level); },
                                                  "");
}

TEST_CASE("rows8 mul_mat: weights and activations at the values that take the int16 sums to their extremes") {
    // n 40: one column goes through four strips side by side and a lone one; 4 and 8 columns through strip<W, C>.
    for (const std::string& level : rows8_levels())
        for (DType t : kTypes)
            for (int64_t m : {1, 4, 8})
                for (Fill f : {Fill::AllMax, Fill::AllZeroNegX}) check_rows8(t, {256, 40, m, false}, f, 2, level);
}

TEST_CASE("rows8: repacked weights reach only mul_mat at a level with its kernels; anything else is an error naming them") {
    std::vector<std::string> others;
    const std::vector<std::string> levels = rows8_levels(&others);
    if (levels.empty()) return;
    Context ctx;
    HostArena arena;
    Tensor* a = arena.make(ctx, DType::Q4_0, {64, 20}, "blk.0.ffn_up.weight");
    arena.fill_random(a, 9);
    Tensor* b = arena.make(ctx, DType::F32, {64, 3}, "x");
    arena.fill_random(b, 10);
    BackendOptions opt;
    opt.cpu_level = levels.front();
    auto be = create_backend("cpu", opt);
    auto packed = be->repack_weights({a});
    REQUIRE(packed != nullptr);
    auto ref = create_backend("reference");
    expect_repacked_weight_refused(mul_mat(ctx, a, b), *ref, "blk.0.ffn_up.weight");
    opt.cpu_level = "portable";
    auto portable = create_backend("cpu", opt);
    expect_repacked_weight_refused(mul_mat(ctx, a, b), *portable, "blk.0.ffn_up.weight");
    Tensor* ids = arena.make(ctx, DType::I32, {2}, "ids");
    arena.fill_i32(ids, {0, 3});
    expect_repacked_weight_refused(get_rows(ctx, a, ids), *be, "blk.0.ffn_up.weight");
    // Other types and 3-D weights are left as they are.
    Tensor* q8 = arena.make(ctx, DType::Q8_K, {256, 4}, "q8k");
    Tensor* e3 = arena.make(ctx, DType::Q4_0, {64, 16, 2}, "experts");
    CHECK(be->repack_weights({q8, e3}) == nullptr);
    CHECK((e3->flags & kFlagRepacked) == 0);
}

TEST_CASE("repack_weights hands back each repacked weight's old storage as its copy is made, and no other") {
    // Model::repack_weights drops those file pages one weight at a time, so loading never holds the model
    // twice. Weights left as they are must not be handed back: their pages are still read.
    const std::vector<std::string> levels = rows8_levels();
    if (levels.empty()) return;
    Context ctx;
    HostArena arena;
    Tensor* up = arena.make(ctx, DType::Q4_0, {64, 20}, "blk.0.ffn_up.weight");
    Tensor* down = arena.make(ctx, DType::Q4_0, {128, 9}, "blk.0.ffn_down.weight");
    Tensor* kept = arena.make(ctx, DType::Q8_K, {256, 4}, "q8k");
    for (Tensor* t : {up, down, kept}) arena.fill_random(t, 3);
    const std::vector<std::pair<const void*, size_t>> expected = {{up->data, up->nbytes()}, {down->data, down->nbytes()}};
    BackendOptions opt;
    opt.cpu_level = levels.front();
    opt.threads = 2;
    auto be = create_backend("cpu", opt);
    std::mutex mu;
    std::vector<std::pair<const void*, size_t>> handed;
    auto packed = be->repack_weights({up, kept, down}, [&](const void* data, size_t bytes) {
        std::lock_guard<std::mutex> lock(mu);
        handed.emplace_back(data, bytes);
    });
    REQUIRE(packed != nullptr);
    std::sort(handed.begin(), handed.end());
    auto sorted = expected;
    std::sort(sorted.begin(), sorted.end());
    CHECK(handed == sorted);
}
