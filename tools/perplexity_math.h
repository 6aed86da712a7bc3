// The arithmetic of `tessera perplexity`, apart from the command so tests can check it:
// log-softmax of one logit row, the running negative log-likelihood with its standard error,
// and the statistics of a KL-divergence comparison against a base model's log-probabilities.
// Accumulation is in double, as llama.cpp's llama-perplexity does, so the figures are comparable.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tessera::cli::ppl {

// log p(token) under softmax(logits): (logit - max) - log(sum exp(logit_i - max)).
inline double log_prob(const float* logits, int n_vocab, int token) {
    float max_logit = logits[0];
    for (int i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
    double sum = 0.0;
    for (int i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - max_logit);
    return double(logits[token]) - max_logit - std::log(sum);
}

// The whole log-softmax row, written to out (n_vocab values).
inline void log_softmax(const float* logits, int n_vocab, float* out) {
    float max_logit = logits[0];
    for (int i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
    double sum = 0.0;
    for (int i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - max_logit);
    const double log_sum = std::log(sum);
    for (int i = 0; i < n_vocab; ++i) out[i] = float(double(logits[i]) - max_logit - log_sum);
}

// Mean of a sample and the standard error of that mean (0 with fewer than two values).
struct MeanError {
    double sum = 0.0, sum_sq = 0.0;
    int64_t count = 0;
    void add(double v) {
        sum += v;
        sum_sq += v * v;
        ++count;
    }
    double mean() const { return count ? sum / double(count) : 0.0; }
    double error() const {
        if (count < 2) return 0.0;
        const double m = mean();
        const double var = sum_sq / double(count) - m * m;
        return var > 0.0 ? std::sqrt(var / double(count - 1)) : 0.0;
    }
};

// Perplexity from the negative log-likelihoods of the scored tokens: exp(mean NLL), and its error
// propagated from the NLL's standard error (d exp(x) = exp(x) dx).
struct Perplexity {
    MeanError nll;
    void add_token(double log_p) { nll.add(-log_p); }
    double value() const { return std::exp(nll.mean()); }
    double error() const { return value() * nll.error(); }
};

// One scored position compared with the base model: KL(base || other), the probability the two give the
// token that actually came next (delta p = other - base), and whether their most likely tokens agree.
struct KlPosition {
    double kl = 0.0;
    double delta_p = 0.0;
    bool same_top = false;
};
inline KlPosition compare_position(const float* base_log_probs, const float* other_log_probs, int n_vocab,
                                   int next_token) {
    KlPosition r;
    int base_top = 0, other_top = 0;
    for (int i = 0; i < n_vocab; ++i) {
        const double lp = base_log_probs[i];
        r.kl += std::exp(lp) * (lp - double(other_log_probs[i]));
        if (base_log_probs[i] > base_log_probs[base_top]) base_top = i;
        if (other_log_probs[i] > other_log_probs[other_top]) other_top = i;
    }
    r.kl = std::max(0.0, r.kl);  // rounding can leave a hair below zero for identical rows
    r.delta_p = std::exp(double(other_log_probs[next_token])) - std::exp(double(base_log_probs[next_token]));
    r.same_top = base_top == other_top;
    return r;
}

// The value below which a fraction q (0..1) of the sorted values lie, interpolated linearly.
inline double percentile(const std::vector<double>& sorted, double q) {
    if (sorted.empty()) return 0.0;
    const double pos = q * double(sorted.size() - 1);
    const size_t lo = size_t(pos);
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace tessera::cli::ppl
