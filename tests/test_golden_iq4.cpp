// Golden logits for the IQ4 weight types: the llama-architecture cases of golden/extra (llama-gqa's weights
// through llama-quantize's IQ4_NL and IQ4_XS mixes: IQ4_* matrices, attn_v Q5_K, output Q6_K), through the
// library (batch, one token at a time, chunks; cpu and reference backends) and `tessera eval`. The manifest's
// tolerances hold as they are: llama.cpp quantizes activations (Q8_0 for IQ4_NL, Q8_K for IQ4_XS) as the cpu
// backend does, and the reference, which does not, stays within them too (golden/extra/README.md: the exact
// dequantized weights in F32 land at 1.5e-2 / 2.0e-2 against tolerances of 0.04).
#include <doctest/doctest.h>

#include "tests/golden_util.h"

using namespace tessera;
using namespace tessera::testing;
namespace golden = tessera::testing::golden;

namespace {

std::vector<golden::Case> iq4_cases() {
    std::vector<golden::Case> out;
    for (auto& c : golden::load_manifest("golden/extra"))
        if (c.arch == "llama") out.push_back(c);
    return out;
}

}  // namespace

TEST_CASE("golden iq4: IQ4_NL and IQ4_XS files, batch, incremental and chunked prefill, F32 cache") {
    if (!golden::have_extra()) return;
    const auto cases = iq4_cases();
    REQUIRE(cases.size() >= 2);  // llama-gqa-iq4_nl, llama-gqa-iq4_xs
    for (const auto& c : cases) {
        auto model = Model::open(c.gguf);
        golden::check_batch_incremental(*model, c, 7);
    }
}

TEST_CASE("golden iq4: reference backend") {
    if (!golden::have_extra()) return;
    for (const auto& c : iq4_cases()) {
        // Opened for the reference backend: opened for the cpu backend, the Q6_K output matrix would be
        // repacked into the avx2 / avx512 levels' interleaved rows, which only their mul_mat reads.
        ModelOptions mo;
        mo.backend = "reference";
        auto model = Model::open(c.gguf, mo);
        golden::RunOptions o;
        o.backend = "reference";
        golden::check_run(*model, c, o, c.tol_rel_rms, "reference batch");
    }
}

TEST_CASE("golden iq4: tessera eval as a subprocess, batch and --incremental") {
    if (!golden::have_extra()) return;
    for (const auto& c : iq4_cases()) golden::check_cli_eval(c);
}

TEST_CASE("golden iq4: tessera inspect names the types") {
    if (!golden::have_extra()) return;
    for (const auto& c : iq4_cases()) {
        std::string log;
        REQUIRE(run_command(cli_path() + " inspect " + c.gguf, &log) == 0);
        const char* type = c.weight_type == "IQ4_NL" ? "iq4_nl" : "iq4_xs";
        INFO(log);
        CHECK(log.find(type) != std::string::npos);
        CHECK(log.find("q5_K") != std::string::npos);  // attn_v
    }
}
