// Sub-commands register themselves from their own files, so adding one never
// touches main.cpp. `tessera bench WHAT` has its own small registry.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace tessera::cli {

using CommandFn = int (*)(int argc, char** argv);  // argv[0] is the sub-command's name

struct Command {
    std::string name;
    std::string summary;
    CommandFn run;
};

std::vector<Command>& commands();
std::vector<Command>& bench_targets();  // "matmul", "attention", ... ; `bench -m MODEL` runs "model"

struct RegisterCommand {
    RegisterCommand(const char* name, const char* summary, CommandFn fn) { commands().push_back({name, summary, fn}); }
};
struct RegisterBench {
    RegisterBench(const char* name, const char* summary, CommandFn fn) {
        bench_targets().push_back({name, summary, fn});
    }
};

}  // namespace tessera::cli
