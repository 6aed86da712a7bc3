// Float weights (F16, BF16, F32) copied at load into the cpu backend's own memory at the avx2 and avx512
// levels (cpu_backend.cpp: kFloatCopy): byte for byte, the file's layout kept, so every kernel and the
// reference read the copy as they read the file; the pages they had in the file's mapping released; and the
// F16 golden cases still give llama.cpp's logits from the copies.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/gguf.h"
#include "core/graph.h"
#include "core/ops.h"
#include "models/model.h"
#include "tests/amx_level.h"
#include "tests/cpu_levels.h"
#include "tests/golden_util.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

// The levels whose backend copies float weights (avx2, avx512, and their emulated twins where the CPU lacks
// them), by name.
std::vector<std::string> copying_levels() {
    std::vector<std::string> names;
    for (const cpu::CpuKernels* k : cpu_level_tables())
        if (k->level == cpu::CpuLevel::Avx2 || k->level == cpu::CpuLevel::Avx512)
            names.push_back(cpu::kernel_level_name(k->kernel_level()));
    if (names.empty()) MESSAGE("no avx2 or avx512 level here: float weight copies not checked");
    return names;
}

// out = w x b on `backend`, as floats.
std::vector<float> product(Tensor* w, Tensor* b, Backend& backend) {
    Context ctx;
    Tensor* out = mul_mat(ctx, w, b);
    out->flags |= kFlagOutput;
    Graph g;
    g.expand(out);
    auto buffer = allocate_graph(g, backend);
    backend.compute(g);
    return to_floats(*out);
}

}  // namespace

TEST_CASE("float weights: 2-D F16, BF16 and F32 weights copied byte for byte at load, their old storage handed back") {
    for (const std::string& level : copying_levels()) {
        INFO("cpu level " << level);
        Context ctx;
        HostArena arena;
        Tensor* f16 = arena.make(ctx, DType::F16, {64, 20}, "blk.0.ffn_up.weight");
        Tensor* bf16 = arena.make(ctx, DType::BF16, {96, 7}, "blk.0.attn_q.weight");
        Tensor* f32 = arena.make(ctx, DType::F32, {33, 5}, "blk.0.attn_k.weight");
        Tensor* experts = arena.make(ctx, DType::F16, {64, 4, 2}, "blk.0.ffn_up_exps.weight");  // 3-D: left
        for (Tensor* t : {f16, bf16, f32, experts}) arena.fill_random(t, 7);

        struct Before {
            Tensor* t;
            const void* data;
            std::vector<uint8_t> bytes;
        };
        std::vector<Before> before;
        for (Tensor* t : {f16, bf16, f32, experts}) {
            const auto* p = static_cast<const uint8_t*>(t->data);
            before.push_back({t, t->data, std::vector<uint8_t>(p, p + t->nbytes())});
        }
        auto reference = create_backend("reference");
        Tensor* x64 = arena.make(ctx, DType::F32, {64, 3}, "x64");
        arena.fill_random(x64, 9);
        const std::vector<float> want = product(f16, x64, *reference);

        BackendOptions opt;
        opt.cpu_level = level;
        opt.threads = 2;
        auto be = create_backend("cpu", opt);
        std::mutex mu;
        std::vector<std::pair<const void*, size_t>> handed;
        auto copies = be->repack_weights({f16, experts, bf16, f32}, [&](const void* data, size_t bytes) {
            std::lock_guard<std::mutex> lock(mu);
            handed.emplace_back(data, bytes);
        });
        REQUIRE(copies != nullptr);
        for (const Before& b : before) {
            const bool copied = b.t != experts;
            CHECK_MESSAGE((b.t->data != b.data) == copied, b.t->name);
            CHECK_MESSAGE((b.t->buffer == copies.get()) == copied, b.t->name);
            CHECK_MESSAGE((b.t->flags & (kFlagRepacked | kFlagRows8)) == 0, b.t->name << ": a copy is not repacked");
            CHECK_MESSAGE(std::memcmp(b.t->data, b.bytes.data(), b.bytes.size()) == 0, b.t->name);
        }
        std::vector<std::pair<const void*, size_t>> expected;
        for (const Before& b : before)
            if (b.t != experts) expected.emplace_back(b.data, b.bytes.size());
        std::sort(handed.begin(), handed.end());
        std::sort(expected.begin(), expected.end());
        CHECK(handed == expected);
        // The copy is an ordinary weight: the reference reads it (no refusal) and gives what it gave before,
        // and the level's own kernels agree with it.
        CHECK(product(f16, x64, *reference) == want);
        const std::vector<float> got = product(f16, x64, *be);
        CHECK(rel_rms(got, want) < 1e-5);
    }
}

TEST_CASE("float weights: the F16 golden cases with their matrices copied at load, the file pages released") {
    if (!golden::have_shared()) return;
    for (const std::string& level : copying_levels()) {
        const CpuLevelGuard guard(level);
        int checked = 0;
        for (const auto& c : golden::cases_for({"llama", "gemma2"})) {
            if (c.weight_type != "F16") continue;
            auto model = Model::open(c.gguf);
            // Every 2-D float matrix a matmul reads (token_embd only gives rows to get_rows) is copied, each
            // rounded up to 64 bytes in the copy.
            size_t expected = 0;
            const auto file = GGUFFile::open(c.gguf);
            for (const auto& ti : file->tensors()) {
                if (ti.name == "token_embd.weight" || ti.ne[1] == 1 || ti.ne[2] != 1) continue;
                if (ti.type != DType::F16 && ti.type != DType::BF16 && ti.type != DType::F32) continue;
                expected += (row_bytes(ti.type, ti.ne[0]) * size_t(ti.ne[1]) + 63) / 64 * 64;
            }
            CHECK_MESSAGE(expected > 0, c.name << " has no float matrix");
            CHECK_MESSAGE(model->repacked_weight_bytes() == expected, c.name << " at " << level);
            const long long released = (long long)model->released_mapped_bytes();
            CHECK_MESSAGE(released >= (long long)expected * 9 / 10, c.name << ": " << released << " bytes released");
            const long long resident = mapped_resident_bytes(c.gguf);
            if (resident >= 0) {  // the copies replace the file's pages: what stays mapped fits beside them
                const long long page = sysconf(_SC_PAGESIZE);
                const long long file_size = (long long)std::filesystem::file_size(c.gguf);
                CHECK(resident <= (file_size + page - 1) / page * page - released);
            }
            golden::check_batch_incremental(*model, c, 0, level);
            ++checked;
        }
        CHECK(checked >= 2);
    }
}
