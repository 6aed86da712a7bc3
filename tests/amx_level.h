// For the amx level's tests (test_amx_matmul, test_amx_matmul_k): which amx kernel level this machine runs,
// and a scope that forces a level through TESSERA_CPU as a user would.
#pragma once
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "backends/cpu/cpu_level.h"
#include "core/backend.h"
#include "core/error.h"

namespace tessera::testing {

// The amx kernel level this machine can run: the real one where the CPU has AMX (and the OS grants the tile
// state and the self-check passed), else its emulated twin (the same source over amx_emu.h), else none.
// Says once which it is, so a log shows plainly that the tile kernels ran only emulated here.
inline std::string amx_level_name() {
    static const std::string name = [] {
        const std::string missing = cpu::cpu_level_missing(cpu::CpuLevel::Amx);
        if (missing.empty()) {
            MESSAGE("amx level: native tiles");
            return std::string("amx");
        }
        try {
            BackendOptions o;
            o.cpu_level = "amx-emulated";
            create_backend("cpu", o);
            MESSAGE("amx level not native here (missing: " << missing << "): the tile kernels run EMULATED (amx-emulated)");
            return std::string("amx-emulated");
        } catch (const Error& e) {
            MESSAGE("amx level SKIPPED, its kernels were not run: " << missing << "; and no emulated twin: " << e.what());
            return std::string();
        }
    }();
    return name;
}

struct CpuLevelGuard {  // sets TESSERA_CPU for a scope and puts back what the caller's environment said
    const char* old = std::getenv("TESSERA_CPU");
    std::string saved = old ? old : "";
    explicit CpuLevelGuard(const std::string& level) { setenv("TESSERA_CPU", level.c_str(), 1); }
    ~CpuLevelGuard() { old ? setenv("TESSERA_CPU", saved.c_str(), 1) : unsetenv("TESSERA_CPU"); }
};

}  // namespace tessera::testing
