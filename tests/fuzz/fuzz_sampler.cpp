// libFuzzer target for the sampler's inputs: parameters, logits (NaN, infinities, huge and tiny values,
// all equal) and accepted tokens taken from the fuzzer's bytes. A crash, sanitizer report, an exception
// other than tessera::Error, or a broken promise below is a finding.
// Promises checked:
//  - out-of-range parameters and ids throw tessera::Error (naming them), nothing else;
//  - sample() returns an id inside the vocabulary for any finite or non-finite logits;
//  - candidates() are in the vocabulary, have probabilities in [0, 1] summing to about 1, most likely first;
//  - the same seed and inputs pick the same tokens.
// Built and run by tests/fuzz/run.sh (`make fuzz FUZZ_TARGET=sampler`).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/sampler.h"

using namespace tessera;

namespace {

[[noreturn]] void broken(const std::string& what) {
    std::fprintf(stderr, "fuzz_sampler: promise broken: %s\n", what.c_str());
    std::abort();
}

struct Reader {
    const uint8_t* p;
    size_t n;
    uint8_t byte() { return n ? (--n, *p++) : 0; }
    float f32() {
        float x = 0;
        if (n >= 4) std::memcpy(&x, p, 4), p += 4, n -= 4;
        return x;
    }
    // Mostly ordinary values, with the special ones common enough to matter.
    float logit() {
        switch (byte() % 8) {
            case 0: return std::numeric_limits<float>::quiet_NaN();
            case 1: return std::numeric_limits<float>::infinity();
            case 2: return -std::numeric_limits<float>::infinity();
            case 3: return f32();
            default: return float(int8_t(byte())) / 8.0f;
        }
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Reader r{data, size};
    SamplerParams p;
    p.temperature = r.byte() % 4 == 0 ? r.f32() : float(r.byte()) / 64.0f;
    p.top_k = int32_t(int8_t(r.byte()));
    p.top_p = r.byte() % 4 == 0 ? r.f32() : float(r.byte()) / 255.0f;
    p.min_p = r.byte() % 4 == 0 ? r.f32() : float(r.byte()) / 255.0f;
    p.repeat_penalty = r.byte() % 4 == 0 ? r.f32() : 1.0f + float(r.byte()) / 64.0f;
    p.frequency_penalty = float(int8_t(r.byte())) / 16.0f;
    p.presence_penalty = float(int8_t(r.byte())) / 16.0f;
    p.penalty_last_n = int32_t(int8_t(r.byte()));
    p.seed = r.byte();
    const int32_t n_vocab = int32_t(r.byte() % 64);  // 0 included: must be refused, not crash

    std::vector<float> logits(size_t(std::max(n_vocab, 1)));
    for (auto& x : logits) x = r.logit();
    std::vector<int32_t> accepted;
    for (int i = r.byte() % 8; i > 0; --i) accepted.push_back(int32_t(int8_t(r.byte())));

    auto run = [&](std::vector<int32_t>* picks) {
        try {
            Sampler s(p, n_vocab);
            for (int32_t t : accepted) {
                try {
                    s.accept(t);
                } catch (const Error&) {
                    if (t >= 0 && t < n_vocab) broken("accept refused an id inside the vocabulary");
                }
            }
            const auto cand = s.candidates(logits.data());
            double sum = 0, prev = 2;
            for (const auto& [id, prob] : cand) {
                if (id < 0 || id >= n_vocab) broken("candidate id outside the vocabulary");
                if (!(prob >= 0 && prob <= 1.0001f)) broken("candidate probability outside [0, 1]");
                if (prob > prev + 1e-6) broken("candidates not most likely first");
                prev = prob;
                sum += prob;
            }
            if (!cand.empty() && std::fabs(sum - 1.0) > 1e-3) broken("candidate probabilities do not sum to 1");
            for (int i = 0; i < 3; ++i) {
                const int32_t t = s.sample(logits.data());
                if (t < 0 || t >= n_vocab) broken("sampled id outside the vocabulary");
                picks->push_back(t);
            }
        } catch (const Error&) {
            // refused parameters: allowed, and then refused both times
            picks->push_back(-1);
        }
    };
    std::vector<int32_t> a, b;
    run(&a);
    run(&b);
    if (a != b) broken("same seed and inputs, different picks");
    return 0;
}
