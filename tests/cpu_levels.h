// The cpu kernel levels a test iterates over: every level this build has and this CPU runs, each forced as
// TESSERA_CPU would force it. A level the CPU lacks runs as its emulated twin instead when the build has one
// (cpu_level.h: "avx512-emulated", the same kernel source over SIMDe), so its kernels are still checked
// against the reference, only slowly. What was emulated or left out (CPU lacks it, build has none) is
// reported once per test binary, so a run on an AVX2 machine says plainly that the AVX-512 kernels ran only
// emulated.
#pragma once
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "backends/cpu/cpu_kernels.h"

namespace tessera::testing {

inline std::vector<const cpu::CpuKernels*> cpu_level_tables() {
    std::vector<const cpu::CpuKernels*> tables;
    std::string report;
    for (cpu::CpuLevel l : cpu::all_cpu_levels()) {
        const std::string missing = cpu::cpu_level_missing(l);
        if (missing.empty()) {
            tables.push_back(&cpu::kernels_for(l));
        } else if (cpu::cpu_level_emulation_missing(l).empty()) {
            tables.push_back(&cpu::kernels_for(cpu::KernelLevel{l, true}));
            report += std::string("\ncpu level ") + cpu::cpu_level_name(l) + " not native here (missing: " + missing +
                      "): its kernels run EMULATED (" + cpu::kernel_level_name({l, true}) + ", SIMDe)";
        } else {
            report += std::string("\ncpu level ") + cpu::cpu_level_name(l) + " skipped: " + missing;
        }
    }
    static const bool reported = [&] {
        if (!report.empty()) MESSAGE(report.substr(1));
        return true;
    }();
    (void)reported;
    return tables;
}

}  // namespace tessera::testing
