// Golden logits for the IQ4 weight types: the llama-architecture cases of golden/extra (llama-gqa's weights
// through llama-quantize's IQ4_NL and IQ4_XS mixes: IQ4_* matrices, attn_v Q5_K, output Q6_K), through the
// library (batch, one token at a time, chunks; cpu and reference backends) and `tessera eval`. The manifest's
// tolerances hold as they are: llama.cpp quantizes activations (Q8_0 for IQ4_NL, Q8_K for IQ4_XS) as the cpu
// backend does, and the reference, which does not, stays within them too (golden/extra/README.md: the exact
// dequantized weights in F32 land at 1.5e-2 / 2.0e-2 against tolerances of 0.04).
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>

#include "tests/golden_util.h"

using namespace tessera;
using namespace tessera::testing;
namespace golden = tessera::testing::golden;

namespace {

bool have_extra() {
    struct stat st;
    return stat(shared_path("golden/extra/manifest.json").c_str(), &st) == 0;
}

std::vector<golden::Case> iq4_cases() {
    std::vector<golden::Case> out;
    for (auto& c : golden::load_manifest("golden/extra"))
        if (c.arch == "llama") out.push_back(c);
    return out;
}

}  // namespace

TEST_CASE("golden iq4: IQ4_NL and IQ4_XS files, batch, incremental and chunked prefill, F32 cache") {
    if (!have_extra()) {
        MESSAGE("skipped: ../shared/golden/extra is missing");
        return;
    }
    const auto cases = iq4_cases();
    REQUIRE(cases.size() >= 2);  // llama-gqa-iq4_nl, llama-gqa-iq4_xs
    for (const auto& c : cases) {
        auto model = Model::open(c.gguf);
        const auto ids = golden::read_tokens(c.tokens);
        const auto want = golden::read_f32(c.logits);
        REQUIRE(int64_t(ids.size()) == c.n_tokens);
        REQUIRE(int64_t(want.size()) == c.n_tokens * c.n_vocab);
        golden::RunOptions o;
        golden::check_case(c, golden::run_logits(*model, ids, o), want, c.tol_rel_rms, "batch");
        o.incremental = true;
        golden::check_case(c, golden::run_logits(*model, ids, o), want, c.tol_rel_rms, "incremental");
        o.incremental = false;
        o.n_batch = 7;
        golden::check_case(c, golden::run_logits(*model, ids, o), want, c.tol_rel_rms, "chunks of 7");
    }
}

TEST_CASE("golden iq4: reference backend") {
    if (!have_extra()) return;
    for (const auto& c : iq4_cases()) {
        auto model = Model::open(c.gguf);
        golden::RunOptions o;
        o.backend = "reference";
        golden::check_case(c, golden::run_logits(*model, golden::read_tokens(c.tokens), o),
                           golden::read_f32(c.logits), c.tol_rel_rms, "reference batch");
    }
}

TEST_CASE("golden iq4: tessera eval as a subprocess, batch and --incremental") {
    if (!have_extra()) return;
    for (const auto& c : iq4_cases()) {
        std::string toks;
        for (int32_t id : golden::read_tokens(c.tokens)) toks += (toks.empty() ? "" : " ") + std::to_string(id);
        for (const char* mode : {"", " --incremental"}) {
            const std::string out = "/tmp/tessera_golden_iq4_" + std::to_string(::getpid()) + ".f32";
            const std::string cmd = cli_path() + " eval -m " + c.gguf + " --tokens \"" + toks + "\" --logits-out " +
                                    out + " --cache-type f32 --threads 2" + mode;
            std::string log;
            const int rc = run_command(cmd, &log);
            INFO(cmd << "\n" << log);
            REQUIRE(rc == 0);
            golden::check_case(c, golden::read_f32(out), golden::read_f32(c.logits), c.tol_rel_rms,
                               mode[0] ? "cli incremental" : "cli batch");
            std::remove(out.c_str());
        }
    }
}

TEST_CASE("golden iq4: tessera inspect names the types") {
    if (!have_extra()) return;
    for (const auto& c : iq4_cases()) {
        std::string log;
        REQUIRE(run_command(cli_path() + " inspect " + c.gguf, &log) == 0);
        const char* type = c.weight_type == "IQ4_NL" ? "iq4_nl" : "iq4_xs";
        INFO(log);
        CHECK(log.find(type) != std::string::npos);
        CHECK(log.find("q5_K") != std::string::npos);  // attn_v
    }
}
