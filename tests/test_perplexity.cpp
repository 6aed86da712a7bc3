// `tessera perplexity`: its arithmetic (tools/perplexity_math.h) against values worked out by hand, and the
// command against llama.cpp's llama-perplexity on the same model and text, plus its KL-divergence mode and
// its errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "testing.h"
#include "tools/perplexity_math.h"

using namespace tessera::testing;
namespace ppl = tessera::cli::ppl;

TEST_CASE("perplexity math: log-softmax, mean and error, KL divergence, percentiles") {
    const float logits[3] = {1.0f, 2.0f, 3.0f};
    const double denom = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
    CHECK(ppl::log_prob(logits, 3, 1) == doctest::Approx(2.0 - std::log(denom)).epsilon(1e-12));
    float row[3];
    ppl::log_softmax(logits, 3, row);
    for (int i = 0; i < 3; ++i) CHECK(row[i] == doctest::Approx(ppl::log_prob(logits, 3, i)).epsilon(1e-6));

    // Values 1, 2, 3, 4: mean 2.5, sample standard deviation sqrt(5/3), error of the mean that over sqrt(4)
    // computed as llama.cpp does (population variance over n - 1).
    ppl::MeanError m;
    for (double v : {1.0, 2.0, 3.0, 4.0}) m.add(v);
    CHECK(m.mean() == doctest::Approx(2.5));
    CHECK(m.error() == doctest::Approx(std::sqrt(1.25 / 3.0)));

    // Perplexity of tokens each given probability 1/4 is 4, whatever the count.
    ppl::Perplexity p;
    for (int i = 0; i < 10; ++i) p.add_token(std::log(0.25));
    CHECK(p.value() == doctest::Approx(4.0));
    CHECK(p.error() == doctest::Approx(0.0));

    // KL([0.5, 0.5] || [0.25, 0.75]) = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75).
    const float base[2] = {float(std::log(0.5)), float(std::log(0.5))};
    const float other[2] = {float(std::log(0.25)), float(std::log(0.75))};
    const ppl::KlPosition r = ppl::compare_position(base, other, 2, 1);
    CHECK(r.kl == doctest::Approx(0.5 * std::log(2.0) + 0.5 * std::log(0.5 / 0.75)).epsilon(1e-6));
    CHECK(r.delta_p == doctest::Approx(0.25).epsilon(1e-6));
    CHECK_FALSE(r.same_top);  // the base's tie goes to index 0; the other's top is index 1
    const ppl::KlPosition same = ppl::compare_position(other, other, 2, 0);
    CHECK(same.kl == doctest::Approx(0.0));
    CHECK(same.same_top);

    const std::vector<double> sorted = {0.0, 1.0, 2.0, 3.0, 4.0};
    CHECK(ppl::percentile(sorted, 0.0) == 0.0);
    CHECK(ppl::percentile(sorted, 1.0) == 4.0);
    CHECK(ppl::percentile(sorted, 0.5) == 2.0);
    CHECK(ppl::percentile(sorted, 0.9) == doctest::Approx(3.6));
}

namespace {

const char* kLicence = "/usr/share/common-licenses/GPL-3";

double final_ppl(const std::string& out) {
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(out, m, std::regex("Final estimate: PPL = ([0-9.]+) \\+/- ([0-9.]+)")), out);
    return std::stod(m[1]);
}

double stat_line(const std::string& out, const std::string& label) {
    std::smatch m;
    REQUIRE_MESSAGE(std::regex_search(out, m, std::regex(label + " +(-?[0-9.]+)")), out);
    return std::stod(m[1]);
}

// run_command appends to the string it is given; each command here gets its output alone.
int run(const std::string& cmd, std::string* out) {
    out->clear();
    return run_command(cmd, out);
}

bool have_inputs() {
    if (!shared_available()) return false;
    std::ifstream licence(kLicence);
    if (!licence) {
        MESSAGE("skipped: " << kLicence << " is missing (Debian's base-files ships it)");
        return false;
    }
    return true;
}

}  // namespace

TEST_CASE("tessera perplexity agrees with llama.cpp's llama-perplexity on stories260K") {
    if (!have_inputs()) return;
    // llama.cpp (llama-perplexity -m stories260K.gguf -f GPL-3 -c 128) prints
    // "Final estimate: PPL = 105.3190 +/- 3.53020"; the figure must agree within 0.1 %.
    std::string out;
    const std::string cmd = cli_path() + " perplexity -m " + shared_path("models/stories260K.gguf") + " -f " +
                            kLicence + " -c 128 -t 2";
    REQUIRE_MESSAGE(run(cmd, &out) == 0, out);
    CHECK(final_ppl(out) == doctest::Approx(105.3190).epsilon(1e-3));
    CHECK(out.find("173 chunks of 128") != std::string::npos);
}

TEST_CASE("tessera perplexity --kl-divergence: zero against itself, small and positive against Q8_0") {
    if (!have_inputs()) return;
    const std::string model = shared_path("models/stories260K.gguf");
    const std::string base = "test_perplexity_base.kld", q8 = "test_perplexity_q8_0.gguf";
    const std::string cli = cli_path();
    std::string out;
    REQUIRE_MESSAGE(run(cli + " perplexity -m " + model + " -f " + kLicence +
                                    " -c 64 --chunks 6 --kl-divergence-base " + base,
                                &out) == 0,
                    out);
    const double base_ppl = final_ppl(out);

    REQUIRE_MESSAGE(run(cli + " perplexity -m " + model + " --kl-divergence-base " + base + " --kl-divergence",
                                &out) == 0,
                    out);
    CHECK(final_ppl(out) == doctest::Approx(base_ppl).epsilon(1e-6));
    CHECK(stat_line(out, "Mean    KLD") < 1e-6);
    CHECK(stat_line(out, "Same top token") == doctest::Approx(100.0));

    REQUIRE_MESSAGE(run(cli + " quantize " + model + " " + q8 + " q8_0", &out) == 0, out);
    REQUIRE_MESSAGE(run(cli + " perplexity -m " + q8 + " --kl-divergence-base " + base + " --kl-divergence",
                                &out) == 0,
                    out);
    const double kld = stat_line(out, "Mean    KLD");
    CHECK(kld > 1e-5);  // quantization changes the distributions...
    CHECK(kld < 0.05);  // ...but Q8_0 only a little
    CHECK(stat_line(out, "Same top token") > 80.0);
    CHECK(stat_line(out, "PPL\\(base\\)") == doctest::Approx(base_ppl).epsilon(1e-4));
    std::remove(base.c_str());
    std::remove(q8.c_str());
}

TEST_CASE("tessera perplexity: bad input is a clear error") {
    if (!have_inputs()) return;
    const std::string cli = cli_path() + " perplexity ";
    const std::string model = shared_path("models/stories260K.gguf");
    std::string out;
    CHECK(run(cli + "-m " + model, &out) == 2);
    CHECK(out.find("-f TEXT is required") != std::string::npos);
    CHECK(run(cli + "-m " + model + " -f /nonexistent/text.txt", &out) == 1);
    CHECK(out.find("cannot read /nonexistent/text.txt") != std::string::npos);
    CHECK(run(cli + "-m " + model + " --kl-divergence", &out) == 2);
    CHECK(out.find("--kl-divergence needs --kl-divergence-base") != std::string::npos);

    {
        std::ofstream junk("test_perplexity_junk.kld", std::ios::binary);
        junk << "this is not a base file at all";
    }
    CHECK(run(cli + "-m " + model + " --kl-divergence-base test_perplexity_junk.kld --kl-divergence", &out) ==
          1);
    CHECK(out.find("not a file written by") != std::string::npos);
    std::remove("test_perplexity_junk.kld");

    {  // a header that promises 65536 chunks of 4096 tokens (1 GiB of ids alone) in a file of 24 bytes
        std::ofstream big("test_perplexity_big.kld", std::ios::binary);
        const uint32_t fields[4] = {1, 512, 4096, 65536};  // version, n_vocab, n_ctx, n_chunks
        big.write("TSRKLDB", 8);
        big.write(reinterpret_cast<const char*>(fields), sizeof fields);
    }
    CHECK(run(cli + "-m " + model + " --kl-divergence-base test_perplexity_big.kld --kl-divergence", &out) == 1);
    INFO(out);
    CHECK(out.find("test_perplexity_big.kld: 24 bytes, but its header (65536 chunks of 4096, 512 tokens in the "
                   "vocabulary) promises") != std::string::npos);
    std::remove("test_perplexity_big.kld");

    {
        std::ofstream shorttext("test_perplexity_short.txt");
        shorttext << "Once upon a time.";
    }
    CHECK(run(cli + "-m " + model + " -f test_perplexity_short.txt -c 128", &out) == 1);
    CHECK(out.find("needs at least 256") != std::string::npos);
    std::remove("test_perplexity_short.txt");

    CHECK(run(cli + "-m " + model + " -f " + kLicence + " --kl-divergence-base /nonexistent/dir/base.kld",
                      &out) == 1);
    CHECK(out.find("cannot write /nonexistent/dir/base.kld") != std::string::npos);
}
