// See amx_check.h. Level-independent (baseline flags): it only calls into the amx levels' objects.
#include "backends/cpu/amx_check.h"

#ifdef TESSERA_CPU_HAVE_AMX
namespace tessera::cpu::amx {
std::string amx_self_check();
}
#endif
#ifdef TESSERA_CPU_HAVE_AMX_EMULATED
namespace tessera::cpu::amx_emulated {
std::string amx_self_check();
}
#endif

namespace tessera::cpu {

std::string amx_self_check(bool emulated) {
    if (emulated) {
#ifdef TESSERA_CPU_HAVE_AMX_EMULATED
        return amx_emulated::amx_self_check();
#else
        return "this build has no emulated amx kernels";
#endif
    }
#ifdef TESSERA_CPU_HAVE_AMX
    return amx::amx_self_check();
#else
    return "this build has no amx kernels";
#endif
}

}  // namespace tessera::cpu
