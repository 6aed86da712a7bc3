// Sampler tests: greedy, the truncations (top-k, top-p, min-p), temperature as a distribution check with
// fixed seeds, penalties, determinism, and stop strings split across tokens.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "models/sampler.h"

using namespace tessera;

namespace {

SamplerParams plain(float temp) {
    SamplerParams p;
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    return p;
}

// Logits whose softmax is exactly `probs`.
std::vector<float> logits_for(const std::vector<double>& probs) {
    std::vector<float> l;
    for (double p : probs) l.push_back(float(std::log(p)));
    return l;
}

std::map<int32_t, int> histogram(Sampler& s, const std::vector<float>& logits, int n) {
    std::map<int32_t, int> h;
    for (int i = 0; i < n; ++i) ++h[s.sample(logits.data())];
    return h;
}

}  // namespace

TEST_CASE("sampler: greedy takes the argmax, ties to the lowest id") {
    Sampler s(plain(0.0f), 6);
    std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f, 2.9f, 3.0f};
    for (int i = 0; i < 5; ++i) CHECK(s.sample(l.data()) == 1);
    std::vector<float> l2 = {-5, -4, -3, -2, -1, -0.5f};
    CHECK(s.sample(l2.data()) == 5);
    // Negative temperature is greedy too.
    Sampler neg(plain(-1.0f), 6);
    CHECK(neg.sample(l.data()) == 1);
}

TEST_CASE("sampler: same seed gives the same picks, another seed different ones") {
    std::vector<float> l(50);
    for (int i = 0; i < 50; ++i) l[i] = float(std::sin(i * 0.7));
    auto run = [&](uint64_t seed) {
        SamplerParams p = plain(1.0f);
        p.seed = seed;
        Sampler s(p, 50);
        std::vector<int32_t> out;
        for (int i = 0; i < 200; ++i) out.push_back(s.sample(l.data()));
        return out;
    };
    CHECK(run(42) == run(42));
    CHECK(run(42) != run(43));
    // reset() restarts the sequence.
    SamplerParams p = plain(1.0f);
    p.seed = 7;
    Sampler s(p, 50);
    std::vector<int32_t> a, b;
    for (int i = 0; i < 20; ++i) a.push_back(s.sample(l.data()));
    s.reset();
    for (int i = 0; i < 20; ++i) b.push_back(s.sample(l.data()));
    CHECK(a == b);
}

TEST_CASE("sampler: temperature 1 follows the softmax; lower temperature sharpens it") {
    const std::vector<double> probs = {0.4, 0.3, 0.2, 0.1};
    auto l = logits_for(probs);
    const int N = 20000;
    SamplerParams p = plain(1.0f);
    p.seed = 1;
    Sampler s(p, 4);
    auto h = histogram(s, l, N);
    for (int i = 0; i < 4; ++i) {
        double f = double(h[i]) / N;
        // 5 standard deviations of a binomial proportion with N = 20000 (<= 0.0035 * 5 ~ 0.018).
        double sd = std::sqrt(probs[i] * (1 - probs[i]) / N);
        CHECK_MESSAGE(std::fabs(f - probs[i]) < 5 * sd, "id " << i << " freq " << f << " want " << probs[i]);
    }
    // T = 0.5 squares the probabilities (then renormalizes): 0.16, 0.09, 0.04, 0.01 over 0.30.
    p.temperature = 0.5f;
    Sampler s2(p, 4);
    auto h2 = histogram(s2, l, N);
    const double z = 0.16 + 0.09 + 0.04 + 0.01;
    for (int i = 0; i < 4; ++i) {
        double want = probs[i] * probs[i] / z;
        double f = double(h2[i]) / N;
        double sd = std::sqrt(want * (1 - want) / N);
        CHECK_MESSAGE(std::fabs(f - want) < 5 * sd, "T=0.5 id " << i << " freq " << f << " want " << want);
    }
    auto cand = s2.candidates(l.data());
    REQUIRE(cand.size() == 4);
    CHECK(cand[0].first == 0);
    CHECK(cand[0].second == doctest::Approx(0.16 / z).epsilon(1e-5));
}

TEST_CASE("sampler: top-k never picks outside the k best") {
    std::vector<float> l(100);
    for (int i = 0; i < 100; ++i) l[i] = float((i * 37) % 100) * 0.01f;  // a permutation of 0 .. 0.99
    // The 5 best are the ids whose (i*37)%100 is 95..99.
    std::set<int32_t> best;
    for (int i = 0; i < 100; ++i)
        if ((i * 37) % 100 >= 95) best.insert(i);
    REQUIRE(best.size() == 5);
    SamplerParams p = plain(1.0f);
    p.top_k = 5;
    p.seed = 3;
    Sampler s(p, 100);
    auto h = histogram(s, l, 5000);
    for (auto [id, n] : h) CHECK_MESSAGE(best.count(id), "picked id " << id << " outside the top 5");
    CHECK(h.size() == 5);  // near-equal logits: all five turn up in 5000 draws
}

TEST_CASE("sampler: top-p keeps the smallest set reaching the mass") {
    auto l = logits_for({0.05, 0.5, 0.15, 0.3});
    SamplerParams p = plain(1.0f);
    p.top_p = 0.7f;  // 0.5 + 0.3 = 0.8 >= 0.7: ids 1 and 3 only
    p.seed = 11;
    Sampler s(p, 4);
    const int N = 8000;
    auto h = histogram(s, l, N);
    CHECK(h.count(0) == 0);
    CHECK(h.count(2) == 0);
    double f1 = double(h[1]) / N;
    // Renormalized: 0.5 / 0.8 = 0.625; 5 sd of a proportion over 8000 draws is about 0.027.
    CHECK(std::fabs(f1 - 0.625) < 5 * std::sqrt(0.625 * 0.375 / N));
    p.top_p = 0.5f;  // the top token alone reaches 0.5
    Sampler s2(p, 4);
    for (int i = 0; i < 100; ++i) CHECK(s2.sample(l.data()) == 1);
}

TEST_CASE("sampler: min-p drops tokens below min_p times the best") {
    auto l = logits_for({0.5, 0.3, 0.15, 0.05});
    SamplerParams p = plain(1.0f);
    p.min_p = 0.2f;  // threshold 0.1: 0.05 goes, 0.15 stays
    p.seed = 5;
    Sampler s(p, 4);
    auto h = histogram(s, l, 5000);
    CHECK(h.count(3) == 0);
    CHECK(h.count(2) == 1);
    auto cand = s.candidates(l.data());
    CHECK(cand.size() == 3);
}

TEST_CASE("sampler: repetition, frequency and presence penalties over the window") {
    SamplerParams p = plain(0.0f);
    p.repeat_penalty = 1.5f;
    p.penalty_last_n = 2;
    Sampler s(p, 3);
    std::vector<float> l = {2.0f, 1.9f, -5.0f};
    CHECK(s.sample(l.data()) == 0);  // nothing seen yet; the pick is recorded
    // 0 was seen: 2.0 / 1.5 = 1.33 < 1.9
    CHECK(s.sample(l.data()) == 1);
    // Both seen: 1.33 vs 1.27 -> 0
    CHECK(s.sample(l.data()) == 0);
    // Window of 2 now holds {1, 0}; push 1 twice: 0 leaves the window and is unpenalized again.
    s.accept(1);
    s.accept(1);
    CHECK(s.sample(l.data()) == 0);

    // Negative logits are multiplied, so they go down too.
    Sampler s2(p, 2);
    std::vector<float> neg = {-1.0f, -1.2f};
    s2.accept(0);
    CHECK(s2.sample(neg.data()) == 1);  // -1.5 < -1.2

    SamplerParams f = plain(0.0f);
    f.frequency_penalty = 0.1f;
    f.penalty_last_n = 10;
    Sampler s3(f, 2);
    std::vector<float> l3 = {1.0f, 0.85f};
    s3.accept(0);
    CHECK(s3.sample(l3.data()) == 0);  // 1.0 - 0.1 = 0.9 > 0.85 (the pick is 0 again: now seen twice)
    CHECK(s3.sample(l3.data()) == 1);  // 1.0 - 0.3 = 0.7 < 0.85 (three times in the window)

    SamplerParams pr = plain(0.0f);
    pr.presence_penalty = 0.5f;
    Sampler s4(pr, 2);
    std::vector<float> l4 = {1.0f, 0.6f};
    s4.accept(0);
    s4.accept(0);
    CHECK(s4.sample(l4.data()) == 1);  // 1.0 - 0.5 = 0.5 < 0.6, however often 0 was seen
}

TEST_CASE("sampler: bad parameters and ids are errors") {
    SamplerParams p;
    p.top_p = 0.0f;
    CHECK_THROWS_AS(Sampler(p, 10), Error);
    p = SamplerParams();
    p.min_p = 1.0f;
    CHECK_THROWS_AS(Sampler(p, 10), Error);
    p = SamplerParams();
    CHECK_THROWS_AS(Sampler(p, 0), Error);
    Sampler s(SamplerParams(), 10);
    CHECK_THROWS_WITH_AS(s.accept(10), doctest::Contains("10"), Error);
    CHECK_THROWS_AS(s.accept(-1), Error);
    std::vector<float> nan(10, std::nanf(""));
    CHECK_THROWS_AS(s.sample(nan.data()), Error);
    nan[4] = 0.0f;
    CHECK(s.sample(nan.data()) == 4);
}

TEST_CASE("stop strings: split across tokens, never printed") {
    StopMatcher m({"<|end|>", "STOP"});
    std::string out;
    out += m.push("Hello <");
    CHECK(out == "Hello ");  // "<" could start "<|end|>"
    out += m.push("|en");
    CHECK(out == "Hello ");
    out += m.push("d|> and more");
    CHECK(m.stopped());
    CHECK(out == "Hello ");
    CHECK(m.push("x") == "");
    CHECK(m.flush() == "");

    StopMatcher f({"<|end|>"});
    std::string o2 = f.push("a <|e");
    o2 += f.push("x");  // not a stop after all: released
    CHECK(o2 == "a <|ex");
    CHECK(!f.stopped());
    CHECK(f.push("<|") == "");
    CHECK(f.flush() == "<|");

    // The earliest stop string wins; text before it in the same push is kept.
    StopMatcher e({"bb", "a"});
    CHECK(e.push("xxbba") == "xx");
    // Overlapping prefixes: "aab" with stop "ab" after "aa".
    StopMatcher o({"ab"});
    std::string t = o.push("aa");
    CHECK(t == "a");
    t += o.push("b");
    CHECK(t == "a");
    CHECK(o.stopped());
    // No stops: everything passes straight through.
    StopMatcher none({});
    CHECK(none.push("abc") == "abc");
}
