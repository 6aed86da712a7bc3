// The cpu kernel levels a test iterates over: every level this build has and this CPU runs, each forced as
// TESSERA_CPU would force it. The levels left out (CPU lacks them, or the build has none) are reported once
// per test binary, so a run on an AVX2 machine says plainly that the AVX-512 kernels were not exercised.
#pragma once
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "backends/cpu/cpu_kernels.h"

namespace tessera::testing {

inline std::vector<const cpu::CpuKernels*> cpu_level_tables() {
    static const bool reported = [] {
        for (cpu::CpuLevel l : cpu::all_cpu_levels())
            if (!cpu::cpu_level_usable(l))
                MESSAGE("cpu level " << std::string(cpu::cpu_level_name(l)) << " skipped: " << cpu::cpu_level_missing(l));
        return true;
    }();
    (void)reported;
    std::vector<const cpu::CpuKernels*> tables;
    for (cpu::CpuLevel l : cpu::all_cpu_levels())
        if (cpu::cpu_level_usable(l)) tables.push_back(&cpu::kernels_for(l));
    return tables;
}

}  // namespace tessera::testing
