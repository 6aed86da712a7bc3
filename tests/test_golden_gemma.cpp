// Golden logits for the Gemma family: every gemma, gemma2 (F32, F16, Q8_0, Q4_0, Q4_K_M) and gemma3
// case of ../shared/golden/manifest.json through the library, in one batch, one token at a time, and
// in odd-sized prefill chunks (window layers then see keys written by earlier chunks). The yardstick
// is llama.cpp's logits; the tolerances are the manifest's (see golden/README.md: they already allow
// for llama.cpp's table GELU and its activation quantization).
#include <doctest/doctest.h>

#include "tests/golden_util.h"

using namespace tessera;
using namespace tessera::testing;
namespace golden = tessera::testing::golden;

namespace {

std::vector<golden::Case> gemma_cases() { return golden::cases_for({"gemma", "gemma2", "gemma3"}); }

}  // namespace

TEST_CASE("golden gemma: every gemma/gemma2/gemma3 case, batch and incremental, F32 cache") {
    if (!golden::have_shared()) {
        MESSAGE("skipped: ../shared is missing");
        return;
    }
    const auto cases = gemma_cases();
    REQUIRE(cases.size() >= 7);  // gemma, gemma2 (+ f16, q8_0, q4_0, q4_k_m), gemma3
    for (const auto& c : cases) {
        auto model = Model::open(c.gguf);
        CHECK(model->hparams().arch == c.arch);
        golden::check_batch_incremental(*model, c);
    }
}

TEST_CASE("golden gemma: prefill in chunks of 5 tokens crosses the 8-token window") {
    if (!golden::have_shared()) return;
    for (const auto& c : gemma_cases()) {
        if (c.weight_type != "F32") continue;
        auto model = Model::open(c.gguf);
        golden::RunOptions o;
        // Odd, smaller than the window: every chunk reads keys of one or two earlier chunks. Window layers
        // keep rings of 8 + 5 - 1 = 12 slots, so chunks are also cut where a ring wraps.
        o.n_batch = 5;
        golden::check_run(*model, c, o, c.tol_rel_rms, "chunks of 5");
    }
}

TEST_CASE("golden gemma: window layers on rings of exactly the window (one token per batch)") {
    if (!golden::have_shared()) return;
    for (const auto& c : gemma_cases()) {
        if (c.weight_type != "F32" || c.arch == "gemma") continue;  // gemma has no window layers
        auto model = Model::open(c.gguf);
        golden::RunOptions o;
        o.incremental = true;
        o.n_batch = 1;  // ring = window + n_batch - 1 = 8 slots: 48 tokens wrap it 6 times
        int rings = 0;
        o.inspect = [&](const Session& s) {
            for (int il = 0; il < s.cache().n_layer(); ++il) {
                const bool window = s.cache().layer(il).kind == CacheKind::Window;
                CHECK(s.cache().ring_slots(il) == (window ? 8 : 0));
                rings += window;
            }
        };
        golden::check_run(*model, c, o, c.tol_rel_rms, "incremental, 8-slot rings");
        CHECK(rings == (c.arch == "gemma2" ? 2 : 5));  // gemma2: layers 0, 2; gemma3: layers 0-4
    }
}

TEST_CASE("golden gemma: F32 cases on the reference backend") {
    if (!golden::have_shared()) return;
    for (const auto& c : gemma_cases()) {
        if (c.weight_type != "F32") continue;
        auto model = Model::open(c.gguf);
        golden::RunOptions o;
        o.backend = "reference";
        golden::check_run(*model, c, o, c.tol_rel_rms, "reference batch");
    }
}

TEST_CASE("golden gemma: the default F16 cache") {
    if (!golden::have_shared()) return;
    for (const auto& c : gemma_cases()) {
        if (c.weight_type != "F32") continue;
        auto model = Model::open(c.gguf);
        golden::RunOptions o;
        o.cache = DType::F16;
        // F16 K/V rows carry a relative rounding error up to 2^-11 (4.9e-4) each; through 2-6 layers that
        // moves the logits by about that much relative. The bound is the manifest's tolerance plus 2e-3
        // (4x the rounding unit), still far below what a wrong rope mode, window or norm produces (>= 0.05).
        golden::check_run(*model, c, o, c.tol_rel_rms + 2e-3, "batch, f16 cache");
    }
}
