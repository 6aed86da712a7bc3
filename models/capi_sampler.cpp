#include "models/capi_sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/error.h"

namespace tessera::capi {

Sampler::Sampler(const SamplerConfig& config, int32_t n_vocab) : c_(config), n_vocab_(n_vocab), rng_(config.seed) {
    TESSERA_CHECK(n_vocab > 0, "sampler: vocabulary is empty");
    TESSERA_CHECK(c_.top_k >= 0, "sampler: top_k %d must be >= 0", c_.top_k);
    TESSERA_CHECK(c_.top_p > 0.0f && c_.top_p <= 1.0f, "sampler: top_p %g must be in (0, 1]", double(c_.top_p));
    TESSERA_CHECK(c_.min_p >= 0.0f && c_.min_p < 1.0f, "sampler: min_p %g must be in [0, 1)", double(c_.min_p));
    TESSERA_CHECK(c_.repeat_penalty > 0.0f, "sampler: repeat_penalty %g must be > 0", double(c_.repeat_penalty));
    TESSERA_CHECK(c_.penalty_last_n >= 0, "sampler: penalty_last_n %d must be >= 0", c_.penalty_last_n);
}

void Sampler::accept(int32_t token) {
    TESSERA_CHECK(token >= 0 && token < n_vocab_, "sampler: token %d is not in [0, %d)", token, n_vocab_);
    if (c_.penalty_last_n == 0) return;
    recent_.push_back(token);
    while (int32_t(recent_.size()) > c_.penalty_last_n) recent_.pop_front();
}

int32_t Sampler::sample(const float* logits) {
    cand_.resize(size_t(n_vocab_));
    for (int32_t i = 0; i < n_vocab_; ++i) cand_[size_t(i)] = {logits[i], i};

    // Penalties on recently seen tokens (llama.cpp's order: repeat, then frequency/presence).
    if (!recent_.empty()) {
        std::unordered_map<int32_t, int> count;
        for (int32_t t : recent_) ++count[t];
        for (auto [t, n] : count) {
            float& l = cand_[size_t(t)].first;
            l = l > 0 ? l / c_.repeat_penalty : l * c_.repeat_penalty;
            l -= float(n) * c_.frequency_penalty + c_.presence_penalty;
        }
    }

    int32_t pick;
    if (c_.temperature <= 0.0f) {
        // Greedy: the highest logit, ties to the lowest id.
        pick = std::max_element(cand_.begin(), cand_.end(), [](const auto& a, const auto& b) {
                   return a.first < b.first || (a.first == b.first && a.second > b.second);
               })->second;
    } else {
        auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
        size_t n = cand_.size();
        if (c_.top_k > 0 && size_t(c_.top_k) < n) {
            std::partial_sort(cand_.begin(), cand_.begin() + c_.top_k, cand_.end(), by_logit);
            n = size_t(c_.top_k);
        } else {
            std::sort(cand_.begin(), cand_.end(), by_logit);
        }
        // Softmax at the temperature over the survivors.
        std::vector<double> p(n);
        const double mx = cand_[0].first;
        double sum = 0;
        for (size_t i = 0; i < n; ++i) sum += p[i] = std::exp((double(cand_[i].first) - mx) / c_.temperature);
        for (double& x : p) x /= sum;
        // top-p: the smallest prefix whose mass reaches top_p; min-p: drop tokens below min_p * the top one.
        size_t keep = n;
        double cum = 0;
        for (size_t i = 0; i < n; ++i) {
            cum += p[i];
            if (cum >= c_.top_p) {
                keep = i + 1;
                break;
            }
        }
        while (keep > 1 && p[keep - 1] < c_.min_p * p[0]) --keep;
        std::discrete_distribution<size_t> dist(p.begin(), p.begin() + std::ptrdiff_t(keep));
        pick = cand_[dist(rng_)].second;
    }
    accept(pick);
    return pick;
}

}  // namespace tessera::capi
