// Token sampling: repetition/frequency/presence penalties over a window of recent tokens, then either
// greedy (argmax, ties to the lowest id) or top-k -> top-p -> min-p -> temperature -> a seeded draw
// (llama.cpp's default order). Same seed and inputs, same picks, on every platform: the RNG is
// std::mt19937_64 (fully specified by the standard) with our own uniform-double conversion.
// Also: StopMatcher, which finds stop strings across token boundaries.
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera {

struct SamplerParams {
    float temperature = 0.8f;  // <= 0: greedy
    int32_t top_k = 40;        // 0 = off
    float top_p = 0.95f;       // 1 = off
    float min_p = 0.05f;       // 0 = off
    float repeat_penalty = 1.0f;     // 1 = off; positive logits divided by it, negative ones multiplied
    float frequency_penalty = 0.0f;  // subtracted once per occurrence in the window
    float presence_penalty = 0.0f;   // subtracted once if present in the window
    int32_t penalty_last_n = 64;     // window size; 0 = no penalties
    uint64_t seed = 0;
};

// Uniform doubles in [0, 1) from the top 53 bits of std::mt19937_64.
class SamplerRng {
public:
    explicit SamplerRng(uint64_t seed) : gen_(seed) {}
    double uniform() { return double(gen_() >> 11) * 0x1.0p-53; }
    void reseed(uint64_t seed) { gen_.seed(seed); }

private:
    std::mt19937_64 gen_;
};

class Sampler {
public:
    // Throws tessera::Error for out-of-range parameters (naming the parameter and value).
    Sampler(const SamplerParams& params, int32_t n_vocab);

    // Picks a token from n_vocab logits and records it in the penalty window.
    int32_t sample(const float* logits);
    // Records a token chosen elsewhere (the prompt, a forced token). Throws on an id outside the vocabulary.
    void accept(int32_t token);
    // Forgets the window and restarts the RNG from the seed.
    void reset();

    // The tokens still eligible after penalties and the truncations, with their final probabilities (after
    // temperature), most likely first. Greedy gives the single argmax with probability 1. For tests and tools.
    std::vector<std::pair<int32_t, float>> candidates(const float* logits) const;

    const SamplerParams& params() const { return p_; }
    const std::deque<int32_t>& recent() const { return recent_; }

private:
    void build(const float* logits, std::vector<std::pair<float, int32_t>>& cand) const;

    SamplerParams p_;
    int32_t n_vocab_;
    SamplerRng rng_;
    std::deque<int32_t> recent_;
    std::vector<std::pair<float, int32_t>> cand_;  // scratch: (logit, id)
};

// Holds back generated text that could be the start of a stop string, so a stop string split across tokens
// is never printed. Feed complete UTF-8 text (e.g. from StreamDecoder); held-back text starts at a
// character boundary because stop strings do.
class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops);
    // Returns the text that can be printed now. Once a stop string is complete, returns the text before it
    // and stopped() becomes true; later pushes return "".
    std::string push(std::string_view text);
    // At the end of generation (no stop string seen): whatever is still held back.
    std::string flush();
    bool stopped() const { return stopped_; }
    void reset() {
        pending_.clear();
        stopped_ = false;
    }

private:
    std::vector<std::string> stops_;
    std::string pending_;
    bool stopped_ = false;
};

}  // namespace tessera
