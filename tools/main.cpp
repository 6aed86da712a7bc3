// The tessera command: finds the sub-command and hands it the rest of argv.
#include <cstdio>
#include <cstring>
#include <string>

#include "tessera.h"
#include "tools/args.h"
#include "tools/command.h"

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "dev"
#endif

namespace tessera::cli {

std::vector<Command>& commands() {
    static std::vector<Command> list;
    return list;
}

std::vector<Command>& bench_targets() {
    static std::vector<Command> list;
    return list;
}

}  // namespace tessera::cli

namespace {

void print_help(FILE* out) {
    std::fprintf(out,
                 "tessera %s: a small tensor runtime for GGUF models\n\n"
                 "usage: tessera COMMAND [options]   (tessera COMMAND --help for each)\n\ncommands:\n",
                 TESSERA_VERSION);
    for (const auto& c : tessera::cli::commands())
        std::fprintf(out, "  %-12s %s\n", c.name.c_str(), c.summary.c_str());
    std::fprintf(out, "\n  --help       this text\n  --version    print the version\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    const std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
        print_help(stdout);
        return 0;
    }
    if (cmd == "--version" || cmd == "-v") {
        const char* level = tessera_cpu_level();
        std::printf("tessera %s\ncpu kernels: %s\n", TESSERA_VERSION, level ? level : tessera_last_error());
        return level ? 0 : 1;
    }
    for (const auto& c : tessera::cli::commands())
        if (c.name == cmd) {
            // Each command guards its own body (run_guarded); this one catches whatever escapes it, so no
            // input ever ends in std::terminate's abort.
            return tessera::cli::run_guarded(c.name.c_str(), [&] { return c.run(argc - 1, argv + 1); });
        }
    std::fprintf(stderr, "tessera: unknown command '%s' (see 'tessera --help')\n", cmd.c_str());
    return 2;
}
