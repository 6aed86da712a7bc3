// CPU feature detection for the kernel levels (see cpu_level.h). Compiled with the build's baseline flags:
// nothing here may use an instruction the levels exist to guard.
//
// A feature counts only when the CPU reports it (cpuid) AND the OS saves its register state (xgetbv's XCR0):
// an OS that does not save the upper ZMM registers makes AVX-512 code corrupt silently. AMX tile data is
// more: Linux hands it out per process only on request (arch_prctl ARCH_REQ_XCOMP_PERM), and a tile
// instruction before that request faults.
#include "backends/cpu/cpu_level.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backends/cpu/amx_check.h"

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TESSERA_CPU_X86 1
#endif
#if defined(TESSERA_CPU_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include "backends/cpu/cpu_features_arm.h"

namespace tessera::cpu {

namespace {

struct Features {
    bool avx2 = false, fma = false, f16c = false, os_avx = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false,
         avx512bf16 = false, os_avx512 = false;
    bool amx_tile = false, amx_int8 = false, amx_bf16 = false, os_amx = false, amx_granted = false;
    std::string amx_check;  // what the amx self-check found wrong on this CPU ("" = passed or not run)
    bool amd_core = false;  // an AMD (or Hygon: the same cores) CPU
};

#if TESSERA_CPU_X86
bool bit(unsigned v, int i) { return (v >> i) & 1u; }

unsigned long long read_xcr0() {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<unsigned long long>(hi) << 32) | lo;
}

// Linux: ask for the AMX tile data state (XFEATURE 18) for this process. True when granted (or already).
bool request_amx_permission() {
#if defined(__linux__)
    constexpr long kArchReqXcompPerm = 0x1023;
    constexpr long kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return true;  // elsewhere the OS either enables it in XCR0 for everyone or not at all
#endif
}

Features detect() {
    Features f;
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
    const unsigned max_leaf = a;
    char vendor[13] = {};  // leaf 0: the vendor string in ebx, edx, ecx
    std::memcpy(vendor, &b, 4);
    std::memcpy(vendor + 4, &d, 4);
    std::memcpy(vendor + 8, &c, 4);
    f.amd_core = std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0;
    __get_cpuid(1, &a, &b, &c, &d);
    const bool osxsave = bit(c, 27);
    f.fma = bit(c, 12);
    f.f16c = bit(c, 29);
    const bool avx = bit(c, 28);
    const unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    f.os_avx = avx && (xcr0 & 0x6) == 0x6;                          // SSE + AVX state
    f.os_avx512 = f.os_avx && (xcr0 & 0xe0) == 0xe0;                // opmask, ZMM_Hi256, Hi16_ZMM
    f.os_amx = (xcr0 & 0x60000) == 0x60000;                         // XTILECFG, XTILEDATA
    if (max_leaf < 7) return f;
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    const unsigned sub_leaves = a;
    f.avx2 = bit(b, 5);
    f.avx512f = bit(b, 16);
    f.avx512dq = bit(b, 17);
    f.avx512bw = bit(b, 30);
    f.avx512vl = bit(b, 31);
    f.avx512vnni = bit(c, 11);
    f.amx_bf16 = bit(d, 22);
    f.amx_tile = bit(d, 24);
    f.amx_int8 = bit(d, 25);
    if (sub_leaves >= 1) {
        __get_cpuid_count(7, 1, &a, &b, &c, &d);
        f.avx512bf16 = bit(a, 5);
    }
    if (f.amx_tile && f.amx_int8 && f.amx_bf16 && f.os_amx) f.amx_granted = request_amx_permission();
#ifdef TESSERA_CPU_HAVE_AMX
    // Tile kernels were only ever run against a software model of AMX (amx_emu.h) where they were written:
    // before the level can be picked, a small tile product and a small repacked matmul must give here exactly
    // what scalar code gives, else the level stays off (one line says so) and the next one is used.
    if (f.amx_granted) {
        f.amx_check = amx_self_check(false);
        if (!f.amx_check.empty())
            std::fprintf(stderr, "tessera: AMX turned off, its self-check failed on this CPU (%s); using the next cpu level\n",
                         f.amx_check.c_str());
    }
#endif
    return f;
}
#else
Features detect() { return {}; }
#endif

// Detected once; immutable afterwards (a function-local static is initialised thread-safely).
const Features& features() {
    static const Features f = detect();
    return f;
}

void append(std::string& s, bool missing, const char* what) {
    if (!missing) return;
    if (!s.empty()) s += ", ";
    s += what;
}

#if defined(__aarch64__) || defined(_M_ARM64)
// What the CPU lacks for an aarch64 level ("" when usable); x86 levels are not compiled here.
std::string arm_level_missing(CpuLevel level) {
    static const arm::Features f = arm::detect();
    std::string m;
    if (level >= CpuLevel::Neon) append(m, !f.asimd, "Advanced SIMD (NEON)");
    if (level >= CpuLevel::Dotprod) {
        append(m, !f.dotprod, "the dot-product extension (SDOT/UDOT)");
        append(m, !f.atomics, "LSE atomics (ARMv8.1)");
    }
    if (level >= CpuLevel::I8mm) append(m, !f.i8mm, "i8mm (SMMLA)");
    return m;
}
#endif

}  // namespace

const FloatKernelTuning& float_kernel_tuning() {
    static const FloatKernelTuning tuning = [] {
        bool amd = features().amd_core;
        const char* forced = std::getenv("TESSERA_CPU_TUNING");
        if (forced && *forced) {
            if (std::strcmp(forced, "amd") == 0 || std::strcmp(forced, "intel") == 0)
                amd = forced[0] == 'a';
            else  // read inside the kernels, where an error cannot be thrown: say so once and go on
                std::fprintf(stderr, "tessera: TESSERA_CPU_TUNING='%s' is neither 'intel' nor 'amd'; ignored\n", forced);
        }
        FloatKernelTuning t;
        if (amd) t.decode_asks_ahead = t.half_prefill_widens = false;
        return t;
    }();
    return tuning;
}

const char* cpu_level_name(CpuLevel level) {
    switch (level) {
        case CpuLevel::Portable: return "portable";
        case CpuLevel::Avx2: return "avx2";
        case CpuLevel::Avx512: return "avx512";
        case CpuLevel::Amx: return "amx";
        case CpuLevel::Neon: return "neon";
        case CpuLevel::Dotprod: return "dotprod";
        case CpuLevel::I8mm: return "i8mm";
    }
    return "?";
}

std::vector<CpuLevel> all_cpu_levels() {
#if defined(__aarch64__) || defined(_M_ARM64)
    return {CpuLevel::Portable, CpuLevel::Neon, CpuLevel::Dotprod, CpuLevel::I8mm};
#else
    return {CpuLevel::Portable, CpuLevel::Avx2, CpuLevel::Avx512, CpuLevel::Amx};
#endif
}

bool cpu_level_compiled(CpuLevel level) {
    switch (level) {
        case CpuLevel::Portable: return true;
#ifdef TESSERA_CPU_HAVE_AVX2
        case CpuLevel::Avx2: return true;
#endif
#ifdef TESSERA_CPU_HAVE_AVX512
        case CpuLevel::Avx512: return true;
#endif
#ifdef TESSERA_CPU_HAVE_AMX
        case CpuLevel::Amx: return true;
#endif
#ifdef TESSERA_CPU_HAVE_NEON
        case CpuLevel::Neon: return true;
#endif
#ifdef TESSERA_CPU_HAVE_DOTPROD
        case CpuLevel::Dotprod: return true;
#endif
#ifdef TESSERA_CPU_HAVE_I8MM
        case CpuLevel::I8mm: return true;
#endif
        default: return false;
    }
}

std::string cpu_level_missing(CpuLevel level) {
    if (!cpu_level_compiled(level)) return std::string("this build has no ") + cpu_level_name(level) + " kernels";
#if defined(__aarch64__) || defined(_M_ARM64)
    return arm_level_missing(level);
#endif
    const Features& f = features();
    std::string m;
    if (level >= CpuLevel::Avx2) {
        append(m, !f.avx2, "AVX2");
        append(m, !f.fma, "FMA");
        append(m, !f.f16c, "F16C");
        append(m, f.avx2 && !f.os_avx, "OS support for AVX state");
    }
    if (level >= CpuLevel::Avx512) {
        append(m, !f.avx512f, "AVX-512F");
        append(m, !f.avx512bw, "AVX-512BW");
        append(m, !f.avx512vl, "AVX-512VL");
        append(m, !f.avx512dq, "AVX-512DQ");
        append(m, !f.avx512vnni, "AVX-512 VNNI");
        append(m, !f.avx512bf16, "AVX-512 BF16");
        append(m, f.avx512f && !f.os_avx512, "OS support for AVX-512 state");
    }
    if (level >= CpuLevel::Amx) {
        append(m, !f.amx_tile, "AMX-TILE");
        append(m, !f.amx_int8, "AMX-INT8");
        append(m, !f.amx_bf16, "AMX-BF16");
        append(m, f.amx_tile && !f.os_amx, "OS support for AMX state");
        append(m, f.amx_tile && f.os_amx && !f.amx_granted, "AMX tile permission (refused by the OS)");
        append(m, !f.amx_check.empty(), ("a passing AMX self-check (" + f.amx_check + ")").c_str());
    }
    return m;
}

bool cpu_level_usable(CpuLevel level) { return cpu_level_missing(level).empty(); }

CpuLevel best_cpu_level() {
    static const CpuLevel best = [] {
        CpuLevel b = CpuLevel::Portable;
        for (CpuLevel l : all_cpu_levels())
            if (cpu_level_usable(l)) b = l;
        return b;
    }();
    return best;
}

bool cpu_level_emulation_compiled(CpuLevel level) {
    switch (level) {
#ifdef TESSERA_CPU_HAVE_AVX512_EMULATED
        case CpuLevel::Avx512: return true;
#endif
#ifdef TESSERA_CPU_HAVE_AMX_EMULATED
        case CpuLevel::Amx: return true;
#endif
        default: return false;
    }
}

std::string cpu_level_emulation_missing(CpuLevel level) {
    if (!cpu_level_emulation_compiled(level))
        return std::string("this build has no emulated ") + cpu_level_name(level) + " kernels (SIMDe was not found)";
    return cpu_level_missing(CpuLevel::Avx2);  // every twin is compiled with the avx2 flags
}

std::string kernel_level_name(KernelLevel level) {
    return std::string(cpu_level_name(level.level)) + (level.emulated ? "-emulated" : "");
}

namespace {

// Resolves `requested` (or TESSERA_CPU, or the best level) to a kernel level; emulated names only when
// `allow_emulated`.
KernelLevel resolve(const std::string& requested, bool allow_emulated) {
    std::string want = requested;
    const char* source = "cpu level";
    if (want.empty()) {
        const char* env = std::getenv("TESSERA_CPU");
        if (!env || !*env) return {best_cpu_level(), false};
        want = env;
        source = "TESSERA_CPU";
    }
    std::string names;
    for (CpuLevel l : all_cpu_levels()) {
        if (want == cpu_level_name(l)) {
            const std::string missing = cpu_level_missing(l);
            TESSERA_CHECK_AS(Unsupported, missing.empty(), "%s=%s: not available on this machine (missing: %s); the best here is %s",
                          source, want.c_str(), missing.c_str(), cpu_level_name(best_cpu_level()));
            return {l, false};
        }
        const std::string twin = kernel_level_name({l, true});
        if (allow_emulated && want == twin) {
            const std::string missing = cpu_level_emulation_missing(l);
            TESSERA_CHECK_AS(Unsupported, missing.empty(), "%s=%s: not available (%s)", source, want.c_str(),
                             missing.c_str());
            return {l, true};
        }
        names += names.empty() ? "" : ", ";
        names += cpu_level_name(l);
        if (allow_emulated && cpu_level_emulation_compiled(l)) names += ", " + twin;
    }
    throw Error(format("%s=%s: unknown cpu level (known: %s)", source, want.c_str(), names.c_str()));
}

}  // namespace

CpuLevel resolve_cpu_level(const std::string& requested) { return resolve(requested, false).level; }

KernelLevel resolve_kernel_level(const std::string& requested) { return resolve(requested, true); }

}  // namespace tessera::cpu
