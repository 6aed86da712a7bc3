// The tile instructions of this kernel level: the real ones on the amx level (compiled with -mamx-tile
// -mamx-int8 -mamx-bf16), the software model of amx_emu.h on its emulated twin (TESSERA_CPU_EMULATE_AMX),
// none elsewhere. Kernel code tests TESSERA_X86_AMX and spells the intrinsics as usual (_tile_loadd, ...);
// the twin thereby runs the very source the amx level runs.
#pragma once
#include "backends/cpu/kernel_level.h"

#if defined(TESSERA_CPU_EMULATE_AMX)
#include "backends/cpu/x86_isa.h"  // the twin's AVX-512 intrinsics: SIMDe's
#include "backends/cpu/amx_emu.h"
#define TESSERA_X86_AMX 1
#else
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__AMX_TILE__) && defined(__AMX_INT8__) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512VNNI__)
#define TESSERA_X86_AMX 1
#endif
#endif
