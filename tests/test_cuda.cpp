// The cuda backend end to end. Without a GPU (or in a build without CUDA) only the refusals are checked:
// asking for cuda gives a clear "unsupported" error, never a crash. With a GPU: every golden case of
// ../shared/golden (llama, gemma 1/2/3, deepseek2) through a model uploaded to the device, batch, one token
// at a time and in small chunks, plus `tessera eval --device cuda`. The op-by-op comparison with the
// reference runs in test_ops (it covers every available backend).
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <cstdio>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/backend.h"
#include "core/error.h"
#include "tessera.h"
#include "models/session.h"
#include "tests/golden_util.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

bool have_gpu() {
    const auto names = available_backends();
    return std::find(names.begin(), names.end(), "cuda") != names.end();
}

}  // namespace

TEST_CASE("cuda: without a GPU, asking for it is a clear error through the library and the C API") {
    if (have_gpu()) {
        MESSAGE("a GPU is present: the refusal is not testable here");
        return;
    }
    const std::string msg = error_of([] { create_backend("cuda"); });
    INFO(msg);
    CHECK(msg.find("cuda") != std::string::npos);
    CHECK((msg.find("no CUDA device") != std::string::npos || msg.find("no CUDA support") != std::string::npos));

    if (!golden::have_shared()) return;
    const auto cases = golden::cases_for({"llama"});
    REQUIRE(!cases.empty());
    tessera_model_params mp = tessera_model_default_params();
    mp.backend = "cuda";
    tessera_model* m = nullptr;
    CHECK(tessera_model_open(cases[0].gguf.c_str(), &mp, &m) == TESSERA_ERR_UNSUPPORTED);
    CHECK(m == nullptr);
    CHECK(std::string(tessera_last_error()).find("cuda") != std::string::npos);
    mp.backend = "tpu";
    CHECK(tessera_model_open(cases[0].gguf.c_str(), &mp, &m) == TESSERA_ERR_UNSUPPORTED);
    CHECK(std::string(tessera_last_error()).find("unknown backend 'tpu'") != std::string::npos);

    // A zero-initialized struct (the C idiom) means the defaults: all layers, so a host backend opens fine...
    tessera_model_params zero{};
    zero.backend = "cpu";
    REQUIRE(tessera_model_open(cases[0].gguf.c_str(), &zero, &m) == TESSERA_OK);
    tessera_model_free(m);
    m = nullptr;
    // ...while a layer count on a host backend is a mistake worth naming.
    zero.gpu_layers = 2;
    CHECK(tessera_model_open(cases[0].gguf.c_str(), &zero, &m) != TESSERA_OK);
    CHECK(std::string(tessera_last_error()).find("not a GPU") != std::string::npos);
    CHECK(m == nullptr);
}

TEST_CASE("cuda: every golden case on the GPU, batch, incremental and chunked, F32 and F16 caches") {
    if (!have_gpu()) {
        MESSAGE("skipped: no CUDA device (this build: " << std::string(compiled_backends().size() > 2 ? "with" : "without")
                                                        << " CUDA)");
        return;
    }
    if (!golden::have_shared()) {
        MESSAGE("skipped: ../shared is missing");
        return;
    }
    const auto cases = golden::cases_for({"llama", "gemma", "gemma2", "gemma3", "deepseek2"});
    REQUIRE(cases.size() >= 15);
    for (const auto& c : cases) {
        ModelOptions mo;
        mo.backend = "cuda";
        size_t last_done = 0, total_seen = 0;
        mo.progress = [&](size_t done, size_t total) {
            CHECK(done >= last_done);
            last_done = done;
            total_seen = total;
        };
        auto model = Model::open(c.gguf, mo);
        CHECK(last_done == total_seen);  // the upload reported its end
        CHECK(model->weights_backend() == "cuda");
        const auto ids = golden::read_tokens(c.tokens);
        const auto want = golden::read_f32(c.logits);
        golden::RunOptions o;  // F32 cache, as the golden run
        o.backend = "cuda";
        golden::check_case(c, golden::run_logits(*model, ids, o), want, c.tol_rel_rms, "cuda batch");
        o.incremental = true;
        golden::check_case(c, golden::run_logits(*model, ids, o), want, c.tol_rel_rms, "cuda incremental");
        o.incremental = false;
        o.n_batch = 5;  // crosses the golden files' 8-token windows and rings
        golden::check_case(c, golden::run_logits(*model, ids, o), want, c.tol_rel_rms, "cuda chunks of 5");
        // An F16 cache rounds K and V: compare with the cpu on the same cache type instead of llama.cpp's F32 run.
        auto host_model = Model::open(c.gguf);
        golden::RunOptions f16;
        f16.cache = DType::F16;
        const auto cpu_f16 = golden::run_logits(*host_model, ids, f16);
        f16.backend = "cuda";
        golden::check_case(c, golden::run_logits(*model, ids, f16), cpu_f16, c.tol_rel_rms, "cuda f16 cache vs cpu");

        // A session must compute where the weights are.
        SessionOptions so;
        so.backend = "cpu";
        const std::string msg = error_of([&] { Session s(*model, so); });
        CHECK(msg.find("uploaded to 'cuda'") != std::string::npos);
        so.backend = "cuda";
        const std::string msg2 = error_of([&] { Session s(*host_model, so); });
        CHECK(msg2.find("weights are on 'cpu'") != std::string::npos);
    }
}

TEST_CASE("cuda: a layer split is refused on the cpu, and on a GPU gives llama.cpp's logits with any split") {
    if (!golden::have_shared()) return;
    const auto cases = golden::cases_for({"llama", "gemma2", "deepseek2"});
    REQUIRE(!cases.empty());
    ModelOptions cpu;
    cpu.gpu_layers = 1;
    const std::string msg = error_of([&] { Model::open(cases[0].gguf, cpu); });
    INFO(msg);
    CHECK(msg.find("not a GPU") != std::string::npos);
    if (!have_gpu()) {
        MESSAGE("skipped the split runs: no CUDA device");
        return;
    }
    for (const auto& c : cases) {
        const auto ids = golden::read_tokens(c.tokens);
        const auto want = golden::read_f32(c.logits);
        for (int layers : {0, 1, 1000}) {  // all on the CPU, a real split, more than the model has (= all)
            ModelOptions mo;
            mo.backend = "cuda";
            mo.gpu_layers = layers;
            auto model = Model::open(c.gguf, mo);
            CHECK(model->weights_split() == (layers < model->hparams().n_layer));
            golden::RunOptions o;
            o.backend = "cuda";
            golden::check_case(c, golden::run_logits(*model, ids, o), want, c.tol_rel_rms,
                               "cuda with " + std::to_string(layers) + " gpu layers");
        }
    }
}

TEST_CASE("cuda: tessera eval --device cuda matches llama.cpp's logits") {
    if (!have_gpu() || !golden::have_shared()) {
        MESSAGE("skipped: needs a CUDA device and ../shared");
        return;
    }
    for (const auto& c : golden::cases_for({"llama", "deepseek2"})) {
        const auto ids = golden::read_tokens(c.tokens);
        std::string toks;
        for (int32_t id : ids) toks += (toks.empty() ? "" : " ") + std::to_string(id);
        const std::string out = "/tmp/tessera_cuda_eval_" + std::to_string(::getpid()) + ".f32";
        const std::string cmd = cli_path() + " eval --device cuda -m " + c.gguf + " --tokens \"" + toks +
                                "\" --logits-out " + out + " --cache-type f32";
        std::string log;
        const int rc = run_command(cmd, &log);
        INFO(cmd << "\n" << log);
        REQUIRE(rc == 0);
        golden::check_case(c, golden::read_f32(out), golden::read_f32(c.logits), c.tol_rel_rms, "cli cuda");
        std::remove(out.c_str());
    }
}
