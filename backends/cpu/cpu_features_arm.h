// What an aarch64 CPU reports for the ARM kernel levels (see cpu_level.h), included by cpu_level.cpp only.
// Compiled with the baseline flags: nothing here may use an instruction the levels exist to guard.
//
// Linux reports features through the auxiliary vector (getauxval's HWCAP/HWCAP2 bits, stable kernel ABI:
// arch/arm64/include/uapi/asm/hwcap.h); macOS through sysctl's hw.optional.arm.FEAT_* keys. Each bit means
// the CPU has it AND the kernel lets user space use it.
#pragma once
#if defined(__aarch64__) || defined(_M_ARM64)

#if defined(__linux__)
#include <sys/auxv.h>
#elif defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace tessera::cpu::arm {

struct Features {
    bool asimd = false;    // Advanced SIMD (NEON): architecturally present on every aarch64 CPU
    bool atomics = false;  // LSE (ARMv8.1): the dotprod level is compiled for ARMv8.2-A, which includes it
    bool dotprod = false;  // SDOT/UDOT (ARMv8.2 optional, 8.4 mandatory)
    bool i8mm = false;     // SMMLA/UMMLA/USDOT (ARMv8.2 optional, 8.6 mandatory)
};

#if defined(__linux__)
inline Features detect() {
    // Bit numbers from the kernel's uapi hwcap.h (defined here too: older libc headers lack HWCAP2_I8MM).
    constexpr unsigned long kHwcapAsimd = 1ul << 1, kHwcapAtomics = 1ul << 8, kHwcapAsimdDp = 1ul << 20;
    constexpr unsigned long kHwcap2I8mm = 1ul << 13;
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    Features f;
    f.asimd = hw & kHwcapAsimd;
    f.atomics = hw & kHwcapAtomics;
    f.dotprod = hw & kHwcapAsimdDp;
    f.i8mm = hw2 & kHwcap2I8mm;
    return f;
}
#elif defined(__APPLE__)
inline bool sysctl_flag(const char* name) {
    int v = 0;
    size_t size = sizeof(v);
    return sysctlbyname(name, &v, &size, nullptr, 0) == 0 && v != 0;
}
inline Features detect() {
    Features f;
    f.asimd = true;  // every Apple silicon CPU
    f.atomics = sysctl_flag("hw.optional.arm.FEAT_LSE") || sysctl_flag("hw.optional.armv8_1_atomics");
    f.dotprod = sysctl_flag("hw.optional.arm.FEAT_DotProd");
    f.i8mm = sysctl_flag("hw.optional.arm.FEAT_I8MM");
    return f;
}
#else
inline Features detect() {
    Features f;
    f.asimd = true;  // elsewhere (e.g. Windows on ARM) only the baseline is assumed
    return f;
}
#endif

}  // namespace tessera::cpu::arm

#endif
