// Golden logits for the families added after Llama, Gemma and DeepSeek (../shared/golden/extra: qwen2, qwen3,
// qwen3moe, phi3, gpt-oss), each through the library in one batch, one token at a time and in prefill chunks
// of 5 (window layers then read keys of earlier chunks), on the reference backend, and through `tessera eval`.
// The yardstick is llama.cpp's logits (Dec 2025); tolerances are the manifest's (see golden/extra/README.md).
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

#include "core/gguf.h"
#include "models/make_model.h"
#include "models/tokenizer.h"
#include "tests/golden_util.h"

using namespace tessera;
using namespace tessera::testing;
namespace golden = tessera::testing::golden;

namespace {

// The families this file covers, by case name (the IQ4 llama cases belong to the quant tests).
std::vector<golden::Case> family_cases() {
    std::vector<golden::Case> out;
    for (const auto& c : golden::load_manifest("golden/extra"))
        for (const char* name : {"qwen2", "qwen3", "qwen3moe", "phi3", "gpt-oss", "gpt-oss-mxfp4"})
            if (c.name == name) out.push_back(c);
    return out;
}

}  // namespace

TEST_CASE("golden families: batch and incremental, F32 cache") {
    if (!golden::have_extra()) return;
    const auto cases = family_cases();
    REQUIRE(cases.size() >= 1);
    for (const auto& c : cases) {
        auto model = Model::open(c.gguf);
        CHECK(model->hparams().arch == c.arch);
        golden::check_batch_incremental(*model, c);
    }
}

TEST_CASE("golden families: prefill in chunks of 5 tokens") {
    if (!golden::have_extra()) return;
    for (const auto& c : family_cases()) {
        auto model = Model::open(c.gguf);
        golden::RunOptions o;
        o.n_batch = 5;  // odd and below gpt-oss's window of 8: chunks read keys of one or two earlier chunks
        golden::check_run(*model, c, o, c.tol_rel_rms, "chunks of 5");
    }
}

TEST_CASE("golden families: F32 cases on the reference backend") {
    if (!golden::have_extra()) return;
    for (const auto& c : family_cases()) {
        if (c.weight_type != "F32") continue;
        auto model = Model::open(c.gguf);
        golden::RunOptions o;
        o.backend = "reference";
        golden::check_run(*model, c, o, c.tol_rel_rms, "reference batch");
    }
}

TEST_CASE("golden families: tessera eval as a subprocess, batch and --incremental") {
    if (!golden::have_extra()) return;
    for (const auto& c : family_cases()) golden::check_cli_eval(c);
}

// Decode bytes come from the Model's weight list, one rule for every architecture: each weight once, one row of
// token_embd unless it is also the output, and the n_used / n_expert share of each routed expert tensor.
TEST_CASE("decode bytes per token: one rule over the bound weights") {
    if (!golden::have_extra()) return;
    auto file_bytes = [](const Model& m, auto&& pick) {
        size_t total = 0;
        for (const auto& t : m.file().tensors()) total += pick(t);
        return total;
    };
    {  // qwen2: untied output, dense: everything but token_embd, plus one of its rows
        auto m = Model::open(shared_path("golden/extra/qwen2.gguf"));
        const auto* te = m->file().find_tensor("token_embd.weight");
        REQUIRE(te != nullptr);
        CHECK(m->decode_weight_bytes() == m->weight_bytes() - te->nbytes + te->nbytes / size_t(te->ne[1]));
    }
    {  // qwen3moe: 2 of 8 experts per token
        auto m = Model::open(shared_path("golden/extra/qwen3moe.gguf"));
        const size_t want = file_bytes(*m, [](const GGUFFile::TensorInfo& t) -> size_t {
            if (t.name == "token_embd.weight") return t.nbytes / size_t(t.ne[1]);
            if (t.name.find("_exps.") != std::string::npos) return t.nbytes / 8 * 2;
            return t.nbytes;
        });
        CHECK(m->decode_weight_bytes() == want);
        CHECK(m->hparams().n_expert == 8);
        CHECK(m->hparams().n_expert_used == 2);
    }
    {  // llama-mha: output tied to token_embd, which is then read whole, once (not once more for the lookup)
        auto m = Model::open(shared_path("golden/llama-mha.gguf"));
        REQUIRE(m->file().find_tensor("output.weight") == nullptr);
        CHECK(m->decode_weight_bytes() == m->weight_bytes());
    }
}

TEST_CASE("make-model: each family's tiny preset loads, generates, and says what it is") {
    for (const char* arch : {"qwen2", "qwen3", "qwen3moe", "phi3", "gpt-oss"}) {
        INFO(arch);
        MakeModelOptions o;
        o.arch = arch;
        o.preset = "tiny";
        o.type = "q8_0";
        const std::string path = "/tmp/tessera_families_" + std::to_string(::getpid()) + "_" + arch + ".gguf";
        const MadeModel made = make_model(o, path);
        auto m = Model::open(path);
        CHECK(m->hparams().arch == arch);
        CHECK(made.file_bytes <= m->weight_bytes());
        CHECK(m->decode_weight_bytes() > 0);
        CHECK(m->decode_weight_bytes() <= m->weight_bytes());
        golden::RunOptions ro;
        ro.n_batch = 3;  // chunks: the window layers of gpt-oss-tiny (window 8) see earlier chunks
        const std::vector<int32_t> ids = {1, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110};
        const auto logits = golden::run_logits(*m, ids, ro);
        REQUIRE(logits.size() == ids.size() * size_t(m->hparams().n_vocab));
        CHECK(std::all_of(logits.begin(), logits.end(), [](float x) { return std::isfinite(x); }));
        std::remove(path.c_str());
    }
    {  // llama.cpp (as of Feb 2025) wants Phi-3's special tokens when general.name says phi3 or phi-3, and
       // refuses the synthesized vocabulary then: the name must avoid both, whatever the preset is called.
        MakeModelOptions o;
        o.arch = "phi3";
        o.preset = "phi3-tiny";
        const std::string path = "/tmp/tessera_families_" + std::to_string(::getpid()) + "_phi3_name.gguf";
        make_model(o, path);
        std::string name = GGUFFile::open(path)->get<std::string>("general.name");
        std::remove(path.c_str());
        for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
        INFO(name);
        CHECK(name.find("phi3") == std::string::npos);
        CHECK(name.find("phi-3") == std::string::npos);
        CHECK(name.find("phi 3") != std::string::npos);
    }
    MakeModelOptions bad;
    bad.arch = "qwen3";
    bad.preset = "phi3-mini";
    CHECK_THROWS_WITH(make_model(bad, "/tmp/unused.gguf"), doctest::Contains("phi3"));
}

TEST_CASE("make-model: a synthesized vocabulary larger than its distinct pieces is padded with unused tokens") {
    // The real shapes' vocabularies (151936, 201088) exceed the ~37K pieces the synthesizer spells out.
    GGUFWriter w;
    REQUIRE(make_model_write_vocab(w, "", 40000) == 40000);
    const std::string path = "/tmp/tessera_families_vocab_" + std::to_string(::getpid()) + ".gguf";
    w.write(path);
    auto f = GGUFFile::open(path);
    const auto tokens = f->get_array<std::string>("tokenizer.ggml.tokens");
    const auto types = f->get_array<int32_t>("tokenizer.ggml.token_type");
    REQUIRE(tokens.size() == 40000);
    REQUIRE(types.size() == 40000);
    CHECK(types.back() == 5);  // unused
    CHECK(std::count(tokens.begin(), tokens.end(), tokens.back()) == 1);
    // Text never maps to a reserved token.
    auto tok = Tokenizer::from_gguf(*f);
    std::remove(path.c_str());
    for (int32_t id : tok->tokenize("the quick brown fox, 42 times!", true, false)) CHECK(types[size_t(id)] != 5);
}
