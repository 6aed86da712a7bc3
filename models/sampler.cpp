#include "models/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/error.h"

namespace tessera {

namespace {

// Most likely first; equal logits ordered by id so results never depend on sort stability.
bool by_logit_desc(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
}

}  // namespace

Sampler::Sampler(const SamplerParams& params, int32_t n_vocab) : p_(params), n_vocab_(n_vocab), rng_(params.seed) {
    TESSERA_CHECK(n_vocab > 0, "sampler: the vocabulary is empty");
    TESSERA_CHECK(std::isfinite(p_.temperature), "sampler: temperature %g is not finite", double(p_.temperature));
    TESSERA_CHECK(p_.top_k >= 0, "sampler: top_k %d must be >= 0", p_.top_k);
    TESSERA_CHECK(p_.top_p > 0.0f && p_.top_p <= 1.0f, "sampler: top_p %g must be in (0, 1]", double(p_.top_p));
    TESSERA_CHECK(p_.min_p >= 0.0f && p_.min_p < 1.0f, "sampler: min_p %g must be in [0, 1)", double(p_.min_p));
    TESSERA_CHECK(p_.repeat_penalty > 0.0f && std::isfinite(p_.repeat_penalty),
                  "sampler: repeat_penalty %g must be > 0", double(p_.repeat_penalty));
    TESSERA_CHECK(std::isfinite(p_.frequency_penalty) && std::isfinite(p_.presence_penalty),
                  "sampler: frequency/presence penalties must be finite");
    TESSERA_CHECK(p_.penalty_last_n >= 0, "sampler: penalty_last_n %d must be >= 0", p_.penalty_last_n);
}

void Sampler::accept(int32_t token) {
    TESSERA_CHECK(token >= 0 && token < n_vocab_, "sampler: token id %d is out of range (vocabulary has %d tokens)",
                  token, n_vocab_);
    if (p_.penalty_last_n == 0) return;
    recent_.push_back(token);
    while (int32_t(recent_.size()) > p_.penalty_last_n) recent_.pop_front();
}

void Sampler::reset() {
    recent_.clear();
    rng_.reseed(p_.seed);
}

// Fills `cand` with the eligible (logit, id) pairs, most likely first, temperature not yet applied.
void Sampler::build(const float* logits, std::vector<std::pair<float, int32_t>>& cand) const {
    TESSERA_CHECK(logits != nullptr, "sampler: no logits");
    cand.resize(size_t(n_vocab_));
    for (int32_t i = 0; i < n_vocab_; ++i) cand[size_t(i)] = {logits[i], i};

    const bool penalize = p_.repeat_penalty != 1.0f || p_.frequency_penalty != 0.0f || p_.presence_penalty != 0.0f;
    if (penalize && !recent_.empty()) {
        std::unordered_map<int32_t, int> count;
        for (int32_t t : recent_) ++count[t];
        for (auto [t, n] : count) {
            float& l = cand[size_t(t)].first;
            l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
            l -= float(n) * p_.frequency_penalty + p_.presence_penalty;
        }
    }
    // NaN logits can never be picked (they would break every comparison below).
    cand.erase(std::remove_if(cand.begin(), cand.end(), [](const auto& c) { return std::isnan(c.first); }),
               cand.end());
    TESSERA_CHECK(!cand.empty(), "sampler: every logit is NaN");

    if (p_.temperature <= 0.0f) {
        auto best = *std::min_element(cand.begin(), cand.end(), by_logit_desc);
        cand.assign(1, best);
        return;
    }
    if (p_.top_k > 0 && size_t(p_.top_k) < cand.size()) {
        std::partial_sort(cand.begin(), cand.begin() + p_.top_k, cand.end(), by_logit_desc);
        cand.resize(size_t(p_.top_k));
    } else {
        std::sort(cand.begin(), cand.end(), by_logit_desc);
    }
    const double max_l = cand[0].first;
    if (!std::isfinite(max_l)) {  // +inf dominates; -inf everywhere means "anything": keep the first
        cand.resize(1);
        return;
    }
    if (p_.top_p < 1.0f) {
        // The smallest prefix whose probability mass reaches top_p.
        double sum = 0;
        for (const auto& c : cand) sum += std::exp(double(c.first) - max_l);
        double cum = 0;
        size_t keep = cand.size();
        for (size_t i = 0; i < cand.size(); ++i) {
            cum += std::exp(double(cand[i].first) - max_l) / sum;
            if (cum >= double(p_.top_p)) {
                keep = i + 1;
                break;
            }
        }
        cand.resize(keep);
    }
    if (p_.min_p > 0.0f) {
        // p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p)
        const double cut = max_l + std::log(double(p_.min_p));
        size_t keep = 1;
        while (keep < cand.size() && double(cand[keep].first) >= cut) ++keep;
        cand.resize(keep);
    }
}

std::vector<std::pair<int32_t, float>> Sampler::candidates(const float* logits) const {
    std::vector<std::pair<float, int32_t>> cand;
    build(logits, cand);
    std::vector<std::pair<int32_t, float>> out;
    if (cand.size() == 1) {
        out.push_back({cand[0].second, 1.0f});
        return out;
    }
    const double max_l = cand[0].first;
    double sum = 0;
    std::vector<double> w(cand.size());
    for (size_t i = 0; i < cand.size(); ++i) sum += w[i] = std::exp((double(cand[i].first) - max_l) / p_.temperature);
    for (size_t i = 0; i < cand.size(); ++i) out.push_back({cand[i].second, float(w[i] / sum)});
    return out;
}

int32_t Sampler::sample(const float* logits) {
    build(logits, cand_);
    int32_t pick = cand_[0].second;
    if (cand_.size() > 1) {
        const double max_l = cand_[0].first;
        double sum = 0;
        for (auto& c : cand_) sum += std::exp((double(c.first) - max_l) / p_.temperature);
        // Inverse CDF over the candidates in their fixed order.
        double u = rng_.uniform() * sum, cum = 0;
        pick = cand_.back().second;  // rounding can leave u just above the last partial sum
        for (const auto& c : cand_) {
            cum += std::exp((double(c.first) - max_l) / p_.temperature);
            if (u < cum) {
                pick = c.second;
                break;
            }
        }
    }
    accept(pick);
    return pick;
}

// ---------------------------------------------------------------- stop strings

StopMatcher::StopMatcher(std::vector<std::string> stops) {
    for (auto& s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopMatcher::push(std::string_view text) {
    if (stopped_) return {};
    pending_.append(text);
    // A complete stop string: print what precedes the earliest one.
    size_t first = std::string::npos;
    for (const auto& s : stops_) first = std::min(first, pending_.find(s));
    if (first != std::string::npos) {
        std::string out = pending_.substr(0, first);
        pending_.clear();
        stopped_ = true;
        return out;
    }
    // Hold back the longest tail that is a proper prefix of some stop string.
    size_t hold = 0;
    for (const auto& s : stops_) {
        size_t max_k = std::min(s.size() - 1, pending_.size());
        for (size_t k = max_k; k > hold; --k) {
            if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
                hold = k;
                break;
            }
        }
    }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string StopMatcher::flush() {
    std::string out = stopped_ ? std::string() : pending_;
    pending_.clear();
    return out;
}

}  // namespace tessera
