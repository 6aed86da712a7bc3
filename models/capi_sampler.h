// The C API's sampler: greedy, or penalties -> temperature -> top-k -> top-p -> min-p -> a seeded draw.
// (A stand-in until models/sampler.h, the sampler helper's, lands; the C API calls only this class.)
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace tessera::capi {

struct SamplerConfig {
    float temperature = 0.8f;  // <= 0: greedy
    int32_t top_k = 40;        // 0 = off
    float top_p = 0.95f;       // 1 = off
    float min_p = 0.05f;       // 0 = off
    float repeat_penalty = 1.0f, frequency_penalty = 0.0f, presence_penalty = 0.0f;
    int32_t penalty_last_n = 64;
    uint64_t seed = 0;
};

class Sampler {
public:
    Sampler(const SamplerConfig& config, int32_t n_vocab);
    // Picks from one row of n_vocab logits and records the pick.
    int32_t sample(const float* logits);
    void accept(int32_t token);

private:
    SamplerConfig c_;
    int32_t n_vocab_;
    std::mt19937_64 rng_;
    std::deque<int32_t> recent_;
    std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace tessera::capi
