// The cpu backend's kernel levels: which instruction set its kernels were compiled for, what the CPU we
// run on supports, and which level a backend uses. The default build compiles the kernel sources once per
// level (CMakeLists.txt: TESSERA_CPU_LEVELS) and picks at run time, so one binary serves every x86-64 CPU.
// Level-independent: included by the backend, tests and tools alike.
#pragma once
#include <string>
#include <vector>

namespace tessera::cpu {

// Ordered: each level's CPU requirements include the previous one's.
enum class CpuLevel {
    Portable,  // the build's baseline (x86-64: SSE2), no assumption about the CPU
    Avx2,      // AVX2 + FMA + F16C
    Avx512,    // AVX-512 F, BW, VL, DQ, VNNI, BF16
    Amx,       // AVX-512 as above + AMX tiles (INT8, BF16), tile state granted by the OS
    // aarch64 (after Portable, which there is the generic code compiled for ARMv8-A):
    Neon,      // Advanced SIMD int8 kernels (every aarch64 CPU)
    Dotprod,   // + SDOT/UDOT (ARMv8.2-A dotprod), compiled for ARMv8.2-A
    I8mm,      // + SMMLA (i8mm)
};

const char* cpu_level_name(CpuLevel level);  // "portable", "avx2", "avx512", "amx", "neon", "dotprod", "i8mm"

// Every level of this build's architecture, lowest first (whether or not compiled in or supported here).
std::vector<CpuLevel> all_cpu_levels();
// Whether this build compiled kernels for `level` (x86-64 and aarch64 builds have their own levels; others
// only Portable).
bool cpu_level_compiled(CpuLevel level);
// The best level this CPU (and OS: AVX-512 register state, AMX tile permission) supports and this build
// has. Detected once per process; the result never changes.
CpuLevel best_cpu_level();
// Whether `level` can run here: compiled in and not above best_cpu_level().
bool cpu_level_usable(CpuLevel level);
// What the CPU lacks for `level` ("AVX-512 VNNI, BF16", "AMX tile permission refused by the OS", ...),
// or "" when it is usable.
std::string cpu_level_missing(CpuLevel level);

// How the float-weight kernels (cpu_matmul.cpp, cpu_matmul_kernel.h) suit the CPU family they run on, each
// choice measured; the results agree with the reference either way, only the speed differs.
struct FloatKernelTuning {
    // Decode (one activation row streaming a few weight rows side by side) asks for each row's lines ahead
    // of use. Yes on Intel, where the hardware prefetch alone kept too few lines in flight; no on AMD, whose
    // prefetchers follow the rows on their own and where the requests only cost (Zen 4, TinyLlama-1.1B F16
    // tg32, weights on huge pages: 1 thread 9.3-9.8 tok/s with them, 9.9-10.8 without; 2 threads 14.1-17.7
    // vs 14.8-19.2).
    bool decode_asks_ahead = true;
    // Prefill on F16 / BF16 weights first widens a panel of weight rows to f32 (once per thread, reused by
    // every activation row from L2), rather than widening each weight vector as it is loaded. Kept on Intel,
    // where it was designed; on AMD converting on load is faster: the kernel then reads half the bytes from
    // L2 (Zen 4, TinyLlama-1.1B F16 pp128 at 2 threads, alternated: avx512 75-86 tok/s widened, 87-100
    // converting on load; avx2 75-77 vs 92-93).
    bool half_prefill_widens = true;
};
// The choices for this CPU's family, or for the one TESSERA_CPU_TUNING=intel|amd names (read once), so that
// the tests check both families' paths on either machine.
const FloatKernelTuning& float_kernel_tuning();

// Emulated twins. A build with SIMDe compiles some levels' kernels a second time for an AVX2 CPU, their
// missing instructions taken from SIMDe's portable implementations (CMakeLists.txt:
// TESSERA_CPU_EMULATED_LEVELS): same source, same results bit for bit, many times slower. They exist so the
// tests check those kernels on a machine without the instructions; they are never picked at run time, only
// by name ("avx512-emulated").
bool cpu_level_emulation_compiled(CpuLevel level);
// What this CPU lacks to run `level`'s emulated twin (its host level, AVX2), or "" when it can.
std::string cpu_level_emulation_missing(CpuLevel level);

// A kernel level as a backend uses it: a real level, or a level's emulated twin.
struct KernelLevel {
    CpuLevel level = CpuLevel::Portable;
    bool emulated = false;
};
// "avx2", "avx512-emulated", ...: the name TESSERA_CPU and BackendOptions::cpu_level take.
std::string kernel_level_name(KernelLevel level);

// The level a backend created now uses: `requested` ("" = the TESSERA_CPU environment variable, and
// when that is unset or empty, best_cpu_level()). Throws tessera::Error naming the value when it is not a
// level name or the CPU lacks that level.
CpuLevel resolve_cpu_level(const std::string& requested = "");
// As resolve_cpu_level, and "<level>-emulated" names an emulated twin (an error when this build has none or
// this CPU lacks its host level).
KernelLevel resolve_kernel_level(const std::string& requested = "");

}  // namespace tessera::cpu
