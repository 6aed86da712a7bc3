// The K-quant scale searches (core/quant_search.h): the batched forms, eight groups per vector, give the
// same bits as the single-group forms they replace in the quantizers, over random groups and the inputs
// that take the searches' side paths (flat groups, all-positive or all-negative groups, values on the
// level grid where rounding ties, tiny and huge magnitudes, zero weights, group counts that leave lanes
// empty). And `tessera quantize` writes the same bytes with 1 and 2 threads.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/quant_search.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::quant_detail;

namespace {

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

// `groups` groups of n values of one kind.
std::vector<float> make_groups(int kind, int groups, int n, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> x(size_t(groups * n));
    for (int g = 0; g < groups; ++g) {
        float* v = x.data() + g * n;
        const int sub = (kind + g) % 9;  // lanes of one batch take different paths
        for (int i = 0; i < n; ++i) {
            switch (sub) {
                case 0: v[i] = u(rng); break;                                      // plain
                case 1: v[i] = std::fabs(u(rng)) + 0.25f; break;                   // all positive: min clamps to 0
                case 2: v[i] = -std::fabs(u(rng)) - 0.5f; break;                   // all negative
                case 3: v[i] = -0.75f; break;                                      // flat
                case 4: v[i] = 0.0f; break;                                        // zeros
                case 5: v[i] = float(int(u(rng) * 8)) * 0.125f; break;             // on a grid: rounding ties
                case 6: v[i] = u(rng) * 1e-18f; break;                             // below the sym search's eps
                case 7: v[i] = (i == n / 2 ? 3e4f : u(rng)); break;                // one outlier
                default: v[i] = u(rng) * std::ldexp(1.0f, int(u(rng) * 20)); break;  // wide range
            }
        }
    }
    return x;
}

struct MinParams {
    int nmax;
    float rmin, rdelta;
    int nstep;
    bool use_mad;
    const char* used_by;
};

}  // namespace

TEST_CASE("search_scale_min_groups gives search_scale_min's bits, group by group") {
    const MinParams params[] = {
        {15, -1.0f, 0.1f, 20, false, "Q4_K"}, {31, -0.5f, 0.1f, 15, false, "Q5_K"},
        {3, -0.5f, 0.1f, 15, true, "Q2_K"},   {15, -1.0f, 0.1f, 0, false, "no steps"},
    };
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> uw(0.0f, 2.0f);
    int64_t groups_checked = 0;
    for (const MinParams& p : params)
        for (int n : {32, 16, 5, 1})
            for (int groups : {8, 16, 3, 13})
                for (int kind = 0; kind < 12; ++kind) {
                    const std::vector<float> x = make_groups(kind, groups, n, rng);
                    std::vector<float> w(x.size());
                    for (size_t i = 0; i < w.size(); ++i)
                        w[i] = kind % 3 == 0 ? std::fabs(x[i]) : kind % 3 == 1 ? uw(rng) : (i % 4 == 0 ? 0.0f : 1.0f);
                    std::vector<uint8_t> L(x.size(), 0xAA);
                    std::vector<float> scales(static_cast<size_t>(groups)), neg_mins(static_cast<size_t>(groups));
                    search_scale_min_groups(groups, n, p.nmax, x.data(), w.data(), L.data(), scales.data(),
                                            neg_mins.data(), p.rmin, p.rdelta, p.nstep, p.use_mad);
                    for (int g = 0; g < groups; ++g) {
                        std::vector<uint8_t> Lone(static_cast<size_t>(n)), Laux(static_cast<size_t>(n));
                        float neg_min = 0;
                        const float scale = search_scale_min(n, p.nmax, x.data() + g * n, w.data() + g * n,
                                                             Lone.data(), &neg_min, Laux.data(), p.rmin, p.rdelta,
                                                             p.nstep, p.use_mad);
                        INFO(p.used_by, ": n ", n, ", ", groups, " groups, kind ", kind, ", group ", g);
                        CHECK(bits(scales[size_t(g)]) == bits(scale));
                        CHECK(bits(neg_mins[size_t(g)]) == bits(neg_min));
                        CHECK(std::memcmp(L.data() + g * n, Lone.data(), size_t(n)) == 0);
                        ++groups_checked;
                    }
                }
    CHECK(groups_checked == 4 * 4 * (8 + 16 + 3 + 13) * 12);
}

TEST_CASE("search_scale_sym_groups gives search_scale_sym's bits, group by group") {
    std::mt19937 rng(11);
    for (int nmax : {32, 4})
        for (int n : {16, 32, 7})
            for (int groups : {16, 8, 5})
                for (int kind = 0; kind < 12; ++kind) {
                    const std::vector<float> x = make_groups(kind, groups, n, rng);
                    std::vector<int8_t> L(x.size(), int8_t(-99));
                    std::vector<float> scales(static_cast<size_t>(groups));
                    search_scale_sym_groups(groups, n, nmax, x.data(), L.data(), scales.data());
                    for (int g = 0; g < groups; ++g) {
                        std::vector<int8_t> Lone(static_cast<size_t>(n));
                        const float scale = search_scale_sym(n, nmax, x.data() + g * n, Lone.data());
                        INFO("nmax ", nmax, ", n ", n, ", ", groups, " groups, kind ", kind, ", group ", g);
                        CHECK(bits(scales[size_t(g)]) == bits(scale));
                        CHECK(std::memcmp(L.data() + g * n, Lone.data(), size_t(n)) == 0);
                    }
                }
}

TEST_CASE("the batched searches refuse groups longer than their lanes hold") {
    std::vector<float> x(64, 1.0f), w(64, 1.0f), s(1), m(1);
    std::vector<uint8_t> L(64);
    std::vector<int8_t> Ls(64);
    CHECK(testing::error_of([&] {
              search_scale_min_groups(1, 33, 15, x.data(), w.data(), L.data(), s.data(), m.data(), -1, 0.1f, 20, false);
          }).find("33") != std::string::npos);
    CHECK(testing::error_of([&] { search_scale_sym_groups(1, 0, 32, x.data(), Ls.data(), s.data()); }).find("0") !=
          std::string::npos);
}

TEST_CASE("tessera quantize writes the same bytes with 1 and 2 threads") {
    const std::string cli = TESSERA_CLI;
    if (access(cli.c_str(), X_OK) != 0) {
        FAIL_CHECK("the tessera CLI is not built at " << cli);
        return;
    }
    const std::string base = "/tmp/tessera_quant_threads_" + std::to_string(getpid());
    testing::make_small_llama(base + ".gguf", 64);
    for (const char* type : {"Q4_K_M", "Q5_K_M", "Q3_K_M", "Q4_0"}) {
        std::vector<std::vector<uint8_t>> outs;
        for (int threads : {1, 2}) {
            const std::string out = base + "-" + type + "-" + std::to_string(threads) + ".gguf";
            std::string log;
            const int rc = testing::run_command(cli + " quantize " + base + ".gguf " + out + " " + type + " -t " +
                                                    std::to_string(threads),
                                                &log);
            INFO(type, " with ", threads, " threads: ", log);
            REQUIRE(rc == 0);
            outs.push_back(testing::read_file(out));
            std::remove(out.c_str());
        }
        INFO(type);
        CHECK(outs[0].size() > 1000);
        CHECK(outs[0] == outs[1]);
    }
    std::remove((base + ".gguf").c_str());
}
