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

#if TESSERA_X86_AMX
#include <cstdint>

namespace tessera::cpu::TESSERA_CPU_LEVEL {

// LDTILECFG's operand, palette 1.
struct alignas(64) TileConfig {
    uint8_t palette_id = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

// The tile intrinsics are asm statements that name only the address they read, not the memory behind it:
// without this compiler barrier, stores to a buffer a tile is about to load (the widened panel, the
// configuration) could legally be moved after the load.
inline void tile_memory_barrier() { __asm__ __volatile__("" ::: "memory"); }

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
#endif
