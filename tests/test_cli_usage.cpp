// Every sub-command (and bench target), listed from the CLI's own help so a new one is covered without
// editing this file, answers a usage error with its usage line and exit status 2: never an uncaught
// exception (std::terminate's abort, exit 134).
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing.h"

using namespace tessera::testing;

namespace {

// The names listed under `header` in a help text: the first word of each indented line that follows.
std::vector<std::string> listed(const std::string& help, const std::string& header) {
    std::vector<std::string> names;
    std::istringstream in(help.substr(help.find(header) + header.size()));
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("  ", 0) != 0) {
            if (names.empty()) continue;
            break;
        }
        std::istringstream words(line);
        std::string name;
        words >> name;
        if (name.rfind("-", 0) == 0) break;  // the top-level options after the commands
        names.push_back(name);
    }
    return names;
}

void check_usage_error(const std::string& args) {
    std::string out;
    const int status = run_command(cli_path() + " " + args, &out);
    INFO("tessera " << args << "\n" << out);
    CHECK(status == 2);
    CHECK(out.find("usage: tessera") != std::string::npos);
    CHECK(out.find("terminate") == std::string::npos);
}

}  // namespace

TEST_CASE("cli: every sub-command and bench target answers a bad flag with its usage and exit 2") {
    std::string help, bench_help;
    REQUIRE(run_command(cli_path() + " --help", &help) == 0);
    REQUIRE(run_command(cli_path() + " bench --help", &bench_help) == 0);
    const auto commands = listed(help, "commands:"), targets = listed(bench_help, "targets:");
    REQUIRE(commands.size() >= 9);
    REQUIRE(targets.size() >= 3);
    for (const auto& c : commands) {
        if (c == "bench") continue;
        check_usage_error(c + " --bogus");
        check_usage_error(c + " --threads");  // a value missing at the end
    }
    for (const auto& t : targets) {
        if (t == "model") continue;  // reached as `bench -m`
        check_usage_error("bench " + t + " --bogus");
        check_usage_error("bench " + t + " unexpected-extra-argument");
    }
    check_usage_error("bench -m");
}

TEST_CASE("cli: bench quant's --n takes a whole number >= 1") {
    for (const char* bad : {"--n 0.1", "--n 0", "--n -3", "--n abc"}) check_usage_error(std::string("bench quant ") + bad);
}

TEST_CASE("cli: help texts say each thing once") {
    auto help_of = [](const std::string& args) {
        std::string out;
        REQUIRE(run_command(cli_path() + " " + args + " --help", &out) == 0);
        return out;
    };
    CHECK(help_of("inspect").find("usage: tessera inspect FILE") != std::string::npos);
    CHECK(help_of("bench attention").find("usage: tessera bench attention [") != std::string::npos);
    CHECK(help_of("run").find("(may be repeated) (may be repeated)") == std::string::npos);
}

TEST_CASE("cli: quantize's usage line names --allow-requantize") {
    std::string out;
    REQUIRE(run_command(cli_path() + " quantize --help", &out) == 0);
    CHECK(out.find("usage: tessera quantize IN OUT TYPE [--threads N] [--pure] [--allow-requantize]") !=
          std::string::npos);
}

TEST_CASE("README: the command table has a row for every sub-command the CLI lists") {
    std::string help;
    REQUIRE(run_command(cli_path() + " --help", &help) == 0);
    std::ifstream in(std::string(TESSERA_TESTS_DIR) + "/../README.md");
    REQUIRE(in);
    std::stringstream readme;
    readme << in.rdbuf();
    for (const auto& c : listed(help, "commands:")) {
        INFO("command: " << c);
        CHECK(readme.str().find("| `" + c + "` |") != std::string::npos);
    }
}
