// Maps a kernel level to its table. Level-independent (baseline flags): it only takes addresses.
#include "backends/cpu/cpu_kernels.h"

#include "core/error.h"

// Each compiled level's table getter, defined in its own kernel_table.cpp build.
#define TESSERA_DECLARE_LEVEL(ns) \
    namespace tessera::cpu::ns {  \
    const CpuKernels& kernel_table(); \
    }
TESSERA_DECLARE_LEVEL(portable)
#ifdef TESSERA_CPU_HAVE_AVX2
TESSERA_DECLARE_LEVEL(avx2)
#endif
#ifdef TESSERA_CPU_HAVE_AVX512
TESSERA_DECLARE_LEVEL(avx512)
#endif
#ifdef TESSERA_CPU_HAVE_AMX
TESSERA_DECLARE_LEVEL(amx)
#endif
#ifdef TESSERA_CPU_HAVE_AVX512_EMULATED
TESSERA_DECLARE_LEVEL(avx512_emulated)
#endif
#ifdef TESSERA_CPU_HAVE_AMX_EMULATED
TESSERA_DECLARE_LEVEL(amx_emulated)
#endif
#ifdef TESSERA_CPU_HAVE_NEON
TESSERA_DECLARE_LEVEL(neon)
#endif
#ifdef TESSERA_CPU_HAVE_DOTPROD
TESSERA_DECLARE_LEVEL(dotprod)
#endif
#ifdef TESSERA_CPU_HAVE_I8MM
TESSERA_DECLARE_LEVEL(i8mm)
#endif
#undef TESSERA_DECLARE_LEVEL

namespace tessera::cpu {

const CpuKernels& kernels_for(CpuLevel level) {
    switch (level) {
        case CpuLevel::Portable: return portable::kernel_table();
#ifdef TESSERA_CPU_HAVE_AVX2
        case CpuLevel::Avx2: return avx2::kernel_table();
#endif
#ifdef TESSERA_CPU_HAVE_AVX512
        case CpuLevel::Avx512: return avx512::kernel_table();
#endif
#ifdef TESSERA_CPU_HAVE_AMX
        case CpuLevel::Amx: return amx::kernel_table();
#endif
#ifdef TESSERA_CPU_HAVE_NEON
        case CpuLevel::Neon: return neon::kernel_table();
#endif
#ifdef TESSERA_CPU_HAVE_DOTPROD
        case CpuLevel::Dotprod: return dotprod::kernel_table();
#endif
#ifdef TESSERA_CPU_HAVE_I8MM
        case CpuLevel::I8mm: return i8mm::kernel_table();
#endif
        default: break;
    }
    throw Error(format("cpu level %s: this build has no kernels for it", cpu_level_name(level)), Status::Unsupported);
}

const CpuKernels& kernels_for(KernelLevel level) {
    if (!level.emulated) return kernels_for(level.level);
    switch (level.level) {
#ifdef TESSERA_CPU_HAVE_AVX512_EMULATED
        case CpuLevel::Avx512: return avx512_emulated::kernel_table();
#endif
#ifdef TESSERA_CPU_HAVE_AMX_EMULATED
        case CpuLevel::Amx: return amx_emulated::kernel_table();
#endif
        default: break;
    }
    throw Error(format("cpu level %s: this build has no emulated kernels for it", cpu_level_name(level.level)),
                Status::Unsupported);
}

const CpuKernels& kernels_in_use(const std::string& requested) { return kernels_for(resolve_kernel_level(requested)); }

}  // namespace tessera::cpu
