// Several sessions on one shared model, each driven by its own thread through the C API: what a server or
// an app with parallel conversations does. Each thread must get exactly what a lone session gets (the model
// is read-only once loaded; nothing else is shared). `make tsan` runs this under ThreadSanitizer, which also
// reports any data race between the sessions.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "tessera.h"
#include "tests/testing.h"

namespace {

// Greedy generation of n tokens after a prompt, in a session of its own; returns the prompt's last logits'
// argmax followed by the generated ids.
std::vector<tessera_token> generate(tessera_model* m, const std::vector<tessera_token>& prompt, int n,
                                    int n_threads, std::string* error) {
    tessera_session_params sp = tessera_session_default_params();
    sp.n_ctx = 128;
    sp.n_threads = n_threads;
    tessera_sampler_params smp = tessera_sampler_default_params();
    smp.temperature = 0;
    tessera_session* s = nullptr;
    tessera_sampler* sampler = nullptr;
    std::vector<tessera_token> out;
    auto fail = [&](const char* what) {
        *error = std::string(what) + ": " + tessera_last_error();
        return out;
    };
    if (tessera_session_create(m, &sp, &s) != TESSERA_OK) return fail("session");
    if (tessera_sampler_create(m, &smp, &sampler) != TESSERA_OK) {
        tessera_session_free(s);
        return fail("sampler");
    }
    if (tessera_decode(s, prompt.data(), int32_t(prompt.size())) != TESSERA_OK) {
        *error = std::string("decode: ") + tessera_last_error();
    } else {
        for (int i = 0; i < n && error->empty(); ++i) {
            tessera_token t;
            if (tessera_sample(sampler, s, &t) != TESSERA_OK || tessera_decode(s, &t, 1) != TESSERA_OK)
                *error = std::string("generate: ") + tessera_last_error();
            else
                out.push_back(t);
        }
    }
    tessera_sampler_free(sampler);
    tessera_session_free(s);
    return out;
}

}  // namespace

TEST_CASE("capi: 4 threads, each with its own session on one shared model, get what a lone session gets") {
    const std::string path =
        tessera::testing::make_small_llama("/tmp/tessera_test_threads_" + std::to_string(::getpid()) + ".gguf", 128);
    tessera_model* m = nullptr;
    tessera_model_params mp = tessera_model_default_params();
    REQUIRE_MESSAGE(tessera_model_open(path.c_str(), &mp, &m) == TESSERA_OK, tessera_last_error());
    // The threads share a second, fresh copy: whatever the model builds lazily on first use is then built
    // while they race, not beforehand by the lone sessions.
    tessera_model* shared = nullptr;
    REQUIRE_MESSAGE(tessera_model_open(path.c_str(), &mp, &shared) == TESSERA_OK, tessera_last_error());

    constexpr int kThreads = 4, kTokens = 24;
    // Odd threads run their session on a pool of two: the sessions' own worker threads join the race.
    auto pool_size = [](int t) { return 1 + t % 2; };
    std::vector<std::vector<tessera_token>> prompts(kThreads);
    for (int t = 0; t < kThreads; ++t)
        for (int i = 0; i < 5 + 3 * t; ++i) prompts[size_t(t)].push_back(tessera_token(1 + (37 * t + 11 * i) % 900));

    // Alone, one after the other: the expected answers.
    std::vector<std::vector<tessera_token>> want(kThreads);
    for (int t = 0; t < kThreads; ++t) {
        std::string err;
        want[size_t(t)] = generate(m, prompts[size_t(t)], kTokens, pool_size(t), &err);
        REQUIRE_MESSAGE(err.empty(), err);
        REQUIRE(want[size_t(t)].size() == size_t(kTokens));
    }
    // Together on the fresh model, twice (the second round finds its lazily built state already there).
    for (int round = 0; round < 2; ++round) {
        std::vector<std::vector<tessera_token>> got(kThreads);
        std::vector<std::string> errors(kThreads);
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t)
            threads.emplace_back([&, t] {
                got[size_t(t)] = generate(shared, prompts[size_t(t)], kTokens, pool_size(t), &errors[size_t(t)]);
            });
        for (auto& th : threads) th.join();
        for (int t = 0; t < kThreads; ++t) {
            INFO("round " << round << ", thread " << t);
            CHECK(errors[size_t(t)].empty());
            CHECK(got[size_t(t)] == want[size_t(t)]);
        }
    }
    tessera_model_free(shared);
    tessera_model_free(m);
    std::remove(path.c_str());
}
