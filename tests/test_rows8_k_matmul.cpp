// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS weights repacked at load into interleaved rows (backends/cpu/rows8_k_layout.h) and their matmul
// (backends/cpu/rows8_k_matmul.cpp), against the reference on the same weights unrepacked, at every cpu level
// this machine runs that makes the layout (the avx512 kernels through their emulated twin where the CPU lacks
// them): partial strips, 1 to 40 activation rows, k of 1 to 8 super-blocks, strided activations, 1 to 3
// threads bit for bit, the int16 sums at their extremes. Also: the layout's inverse gives the file's bytes
// back, and the Q4_K_M golden cases (and the IQ4 ones, for their Q5_K attn_v) pass with their weights repacked
// at load; the IQ4 ones also at the amx level, where the tiles take the K-quants and interleaved rows the IQ4 types.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/amx_repack.h"
#include "backends/cpu/rows8_k_layout.h"
#include "backends/cpu/rows8_layout.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/quant.h"
#include "models/model.h"
#include "tests/amx_level.h"
#include "tests/cpu_levels.h"
#include "tests/golden_util.h"
#include "tests/repacked_matmul_check.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

namespace L = cpu::rows8_k_layout;

constexpr DType kTypes[] = {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_XS};

// The cpu levels whose backend repacks all of kTypes into this layout, by name.
std::vector<std::string> rows8_k_levels() {
    std::vector<std::string> names;
    for (const cpu::CpuKernels* k : cpu_level_tables()) {
        const std::string name = cpu::kernel_level_name(k->kernel_level());
        Context ctx;
        HostArena arena;
        std::vector<Tensor*> weights;
        for (DType t : kTypes) {
            weights.push_back(arena.make(ctx, t, {256, 8}, type_name(t)));
            arena.fill_random(weights.back(), weights.size());
        }
        BackendOptions opt;
        opt.cpu_level = name;
        auto be = create_backend("cpu", opt);
        auto packed = be->repack_weights(weights);
        if (packed && std::all_of(weights.begin(), weights.end(), [](Tensor* w) { return (w->flags & kFlagRows8) != 0; })) {
            names.push_back(name);
            MESSAGE("rows8 K-quant kernels checked at cpu level " << name);
        }
    }
    return names;
}

// Weight contents: random, or every quant at its largest (Q4_K 15, Q5_K 31, Q6_K 63) with the largest scales
// and every activation +1, or every quant 0 with every activation -1: the int16 sums at their extremes
// (Q4_K: 8 x 2 x 15 x 127 = 30480; Q5_K: 4 x 2 x 31 x 127 = 31496; Q6_K: 2 x 2 x 63 x 127 = 32004).
// IQ4_XS: every index 0 (level -127) under scale 31 against +1, or index 15 (113) under -32 against -1
// (its pairs: 2 x 127 x 127 = 32258). Q6_K's scales alternate 127 and -128
// so both signs of the sign extension are used. Q3_K: every value 7 (quant 3) under scale 31 against +1, or
// 0 (quant -4) under -32 against -1. Q2_K: every value 3 or 0 under scale and min 15.
enum class Fill { Random, AllMax, AllZeroNegX };

std::vector<float> check_rows8_k(const RepackedMatmulCase& c, Fill fill, int threads, const std::string& level) {
    auto extremes = [fill](HostArena& arena, Tensor* a, Tensor* contiguous_b) {
        const int64_t blocks = a->ne[0] * a->ne[1] / QK_K;
        const uint8_t q = fill == Fill::AllMax ? 0xFF : 0x00;
        if (a->type == DType::Q4_K) {
            auto* w = static_cast<block_q4_K*>(a->data);
            for (int64_t i = 0; i < blocks; ++i) {
                std::memset(w[i].qs, q, sizeof w[i].qs);
                std::memset(w[i].scales, 0xFF, sizeof w[i].scales);  // every 6-bit scale and min 63
            }
        } else if (a->type == DType::IQ4_XS) {
            auto* w = static_cast<block_iq4_xs*>(a->data);
            const bool top = fill == Fill::AllMax;  // ls 63 (scale 31), else ls 0 (scale -32)
            for (int64_t i = 0; i < blocks; ++i) {
                std::memset(w[i].qs, top ? 0x00 : 0xFF, sizeof w[i].qs);
                std::memset(w[i].scales_l, top ? 0xFF : 0x00, sizeof w[i].scales_l);
                w[i].scales_h = top ? 0xFFFF : 0x0000;
            }
        } else if (a->type == DType::Q2_K) {
            auto* w = static_cast<block_q2_K*>(a->data);
            for (int64_t i = 0; i < blocks; ++i) {
                std::memset(w[i].qs, q, sizeof w[i].qs);
                std::memset(w[i].scales, 0xFF, sizeof w[i].scales);
            }
        } else if (a->type == DType::Q3_K) {
            auto* w = static_cast<block_q3_K*>(a->data);
            for (int64_t i = 0; i < blocks; ++i) {
                std::memset(w[i].qs, q, sizeof w[i].qs);
                std::memset(w[i].hmask, q, sizeof w[i].hmask);
                std::memset(w[i].scales, q, sizeof w[i].scales);  // every 6-bit scale 63 (31) or 0 (-32)
            }
        } else if (a->type == DType::Q5_K) {
            auto* w = static_cast<block_q5_K*>(a->data);
            for (int64_t i = 0; i < blocks; ++i) {
                std::memset(w[i].qs, q, sizeof w[i].qs);
                std::memset(w[i].qh, q, sizeof w[i].qh);
                std::memset(w[i].scales, 0xFF, sizeof w[i].scales);
            }
        } else {
            auto* w = static_cast<block_q6_K*>(a->data);
            for (int64_t i = 0; i < blocks; ++i) {
                std::memset(w[i].ql, q, sizeof w[i].ql);
                std::memset(w[i].qh, q, sizeof w[i].qh);
                for (int s = 0; s < QK_K / 16; ++s) w[i].scales[s] = int8_t(s % 2 ? -128 : 127);
            }
        }
        if (contiguous_b)
            arena.fill(contiguous_b, std::vector<float>(size_t(contiguous_b->ne[0] * contiguous_b->ne[1]),
                                                        fill == Fill::AllMax ? 1.0f : -1.0f));
    };
    return check_repacked_matmul(c, threads, level, {256, 0.51},
                                 {900 + uint64_t(c.k + 3 * c.n), 950 + uint64_t(c.m), kFlagRepacked | kFlagRows8,
                                  "rows8 K fill " + std::to_string(int(fill)),
                                  fill == Fill::Random ? nullptr : std::function<void(HostArena&, Tensor*, Tensor*)>(extremes)});
}

}  // namespace

TEST_CASE("rows8 K layout: unpack gives every real row's GGUF blocks back; padding rows are all zero") {
    for (DType t : kTypes)
        for (int64_t rows : {1, 7, 8, 9, 21})
            for (int64_t k : {256, 768}) {
                Context ctx;
                HostArena arena;
                Tensor* a = arena.make(ctx, t, {k, rows}, "w");
                arena.fill_random(a, 40 + uint64_t(rows + k));
                std::vector<uint8_t> packed(L::packed_bytes(t, rows, k), 0xCD);
                CHECK(packed.size() == size_t((rows + 7) / 8 * 8) * size_t(k / 256) * type_traits(t).block_bytes);
                L::repack(t, a->data, a->nb[1], rows, k, packed.data());
                std::vector<uint8_t> back(a->nbytes(), 0xAB);
                L::unpack(t, packed.data(), rows, k, back.data(), a->nb[1]);
                CHECK_MESSAGE(std::memcmp(back.data(), a->data, a->nbytes()) == 0, type_name(t) << " rows " << rows << " k " << k);
                if (rows % 8) {  // the last strip: its padding rows' d is 0 (the first record's fp16 of row `pad`)
                    const size_t strip = size_t(k / 256) * L::record_bytes(t);
                    const uint8_t* last = packed.data() + packed.size() - strip;
                    const int pad = int(rows % 8);
                    CHECK((last[2 * pad] | last[2 * pad + 1]) == 0);
                }
                // Every byte is written, padding included: a repack over other old contents gives the same bytes.
                std::vector<uint8_t> again(packed.size(), 0x00);
                L::repack(t, a->data, a->nb[1], rows, k, again.data());
                CHECK(again == packed);
            }
    CHECK_THROWS_AS(L::repack(DType::Q4_1, nullptr, 0, 8, 256, nullptr), Error);
    CHECK_THROWS_AS(L::repack(DType::Q4_K, nullptr, 0, 8, 128, nullptr), Error);
}

TEST_CASE("rows8 K mul_mat: repacked Q2_K / Q3_K / Q4_K / Q5_K / Q6_K / IQ4_XS against the reference, odd shapes, 1 to 40 columns, 1 to 3 threads") {
    const std::vector<std::string> levels = rows8_k_levels();
    if (levels.empty()) {
        MESSAGE("no cpu level here repacks K-quants into interleaved rows: nothing to check");
        return;
    }
    // n 1, 7, 9, 21: partial strips; 50, 100, 300: several 48-row units of work, the last partial (a decode
    // item spans several); m 1 (decode), 2-8
    // (a decode batch), 9, 17, 40: several 8-column passes, the last partial; k 256 .. 2048: 1 to 8 super-blocks.
    std::vector<RepackedMatmulCase> cases;
    for (DType t : kTypes) {
        for (int64_t m = 1; m <= 9; ++m) cases.push_back({t, 512, 21, m, m == 3});
        for (const auto& c : {RepackedMatmulCase{t, 256, 7, 4, false}, RepackedMatmulCase{t, 256, 1, 2, false},
                              RepackedMatmulCase{t, 2048, 9, 5, false}, RepackedMatmulCase{t, 768, 50, 17, true},
                              RepackedMatmulCase{t, 256, 100, 8, false}, RepackedMatmulCase{t, 1280, 100, 1, false},
                              RepackedMatmulCase{t, 256, 13, 40, true}, RepackedMatmulCase{t, 256, 300, 1, false},
                              RepackedMatmulCase{t, 512, 300, 3, true}})
            cases.push_back(c);
    }
    for (const std::string& level : levels)
        for (const auto& c : cases)
            check_same_bits_at_1_to_3_threads([&](int threads) { return check_rows8_k(c, Fill::Random, threads, level); },
                                              std::string(type_name(c.type)) + " n " + std::to_string(c.n) + " m " +
                                                  std::to_string(c.m) + " " + level);
}

TEST_CASE("rows8 K mul_mat: quants and scales at their largest against activations +1, quants 0 against -1") {
    for (const std::string& level : rows8_k_levels())
        for (DType t : kTypes)
            for (int64_t m : {1, 4, 8})
                for (Fill f : {Fill::AllMax, Fill::AllZeroNegX}) check_rows8_k({t, 512, 16, m, false}, f, 2, level);
}

// Every matrix of a golden file but token_embd (read by get_rows) that a layout takes is repacked: the file's
// bytes, each rounded up to 64, plus the padding rows of partial strips or panels. Below the amx level a
// matrix in a type of this layout or of rows8_layout.h's (IQ4_NL, Q4_0, Q8_0) is; at the amx level the tile
// layout (amx_repack.h) takes its types first and interleaved rows the rest. Also counts the matrices of type t.
size_t expected_repacked_bytes(const std::string& gguf, DType t, int* of_type, bool amx_tiles_first) {
    size_t expected = 0;
    *of_type = 0;
    const auto file = GGUFFile::open(gguf);
    for (const auto& ti : file->tensors()) {
        if (ti.name == "token_embd.weight" || ti.ne[1] == 1) continue;
        if (amx_tiles_first && cpu::amx_layout::repackable(ti.type)) {
            if (ti.ne[0] % cpu::amx_layout::record_values(ti.type) != 0) continue;
            expected += (cpu::amx_layout::packed_bytes(ti.type, ti.ne[1], ti.ne[0]) + 63) / 64 * 64;
        } else if (L::repackable(ti.type))
            expected += (L::packed_bytes(ti.type, ti.ne[1], ti.ne[0]) + 63) / 64 * 64;
        else if (cpu::rows8_layout::repackable(ti.type))
            expected += (cpu::rows8_layout::packed_bytes(ti.type, ti.ne[1], ti.ne[0]) + 63) / 64 * 64;
        else
            continue;
        if (ti.type == t) ++*of_type;
    }
    return expected;
}

TEST_CASE("rows8 K: the Q4_K_M golden cases (llama, gemma2) with Q4_K and Q6_K weights in interleaved rows") {
    if (!golden::have_shared()) return;
    for (const std::string& level : rows8_k_levels()) {
        const CpuLevelGuard guard(level);
        int checked = 0;
        for (const auto& c : golden::cases_for({"llama", "gemma2"})) {
            if (c.weight_type != "Q4_K_M") continue;
            auto model = Model::open(c.gguf);
            int q6k = 0;
            const size_t expected = expected_repacked_bytes(c.gguf, DType::Q6_K, &q6k, false);
            CHECK_MESSAGE(q6k > 0, c.name << " has no Q6_K matrix");
            CHECK_MESSAGE(model->repacked_weight_bytes() == expected, c.name << " at " << level);
            golden::check_batch_incremental(*model, c, 0, level);
            ++checked;
        }
        CHECK(checked >= 2);
    }
}

// The IQ4 golden files at each level that puts their IQ4 matrices into interleaved rows: the rows8 levels,
// and the amx level (native or emulated), whose tiles take the Q5_K and Q6_K matrices beside them.
TEST_CASE("rows8: the IQ4 golden cases with their IQ4_NL / IQ4_XS matrices and Q5_K attn_v in interleaved rows") {
    if (!golden::have_extra()) return;
    std::vector<std::string> levels = rows8_k_levels();
    if (!amx_level_name().empty()) levels.push_back(amx_level_name());
    for (const std::string& level : levels) {
        const CpuLevelGuard guard(level);
        const bool amx = level.rfind("amx", 0) == 0;
        int checked = 0;
        for (const auto& c : golden::load_manifest("golden/extra")) {
            if (c.arch != "llama") continue;  // llama-gqa-iq4_nl, llama-gqa-iq4_xs
            auto model = Model::open(c.gguf);
            int q5k = 0;
            const size_t expected = expected_repacked_bytes(c.gguf, DType::Q5_K, &q5k, amx);
            CHECK_MESSAGE(q5k > 0, c.name << " has no Q5_K matrix");
            CHECK_MESSAGE(model->repacked_weight_bytes() == expected, c.name << " at " << level);
            golden::check_batch_incremental(*model, c, 7, level);
            ++checked;
        }
        CHECK(checked >= 2);
    }
}
