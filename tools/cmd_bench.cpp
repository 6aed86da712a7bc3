// `tessera bench WHAT ...`: dispatches to the registered benchmark targets.
// `tessera bench -m MODEL ...` is the model benchmark ("model").
#include <cstdio>
#include <cstring>
#include <string>

#include "tools/command.h"

namespace tessera::cli {

namespace {

void print_bench_help(FILE* out) {
    std::fprintf(out, "usage: tessera bench TARGET [options]   (tessera bench TARGET --help for each)\n\ntargets:\n");
    for (const auto& b : bench_targets()) std::fprintf(out, "  %-12s %s\n", b.name.c_str(), b.summary.c_str());
}

int cmd_bench(int argc, char** argv) {
    if (argc < 2) {
        print_bench_help(stderr);
        return 2;
    }
    std::string target = argv[1];
    if (target == "--help" || target == "-h") {
        print_bench_help(stdout);
        return 0;
    }
    if (target == "-m" || target.rfind("--model", 0) == 0) {
        for (const auto& b : bench_targets())
            if (b.name == "model") return b.run(argc, argv);  // argv[0] = "bench", flags follow
    }
    for (const auto& b : bench_targets())
        if (b.name == target) return b.run(argc - 1, argv + 1);
    std::fprintf(stderr, "tessera bench: unknown target '%s' (see 'tessera bench --help')\n", target.c_str());
    return 2;
}

RegisterCommand reg("bench", "benchmarks: matmul, attention, or a model (-m MODEL)", cmd_bench);

}  // namespace

}  // namespace tessera::cli
