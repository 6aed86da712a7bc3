// How the decode kernels walk a work item's weights when they read several panels (amx) or strips (rows8)
// side by side. Decode reads each weight byte once, so what bounds it is how many lines are in flight:
// several streams per core, each followed by the hardware prefetcher and by the kernel's own prefetch some
// records ahead in the same stream. Reading *adjacent* panels side by side restarted every stream cold at
// each step (and each prefetch ran into the panel the next stream was about to read); an item's whole
// units cut into `side` runs of equal length, with step i taking unit i of every run, keep `side` long
// contiguous streams whose prefetches carry across unit boundaries (tg32 Q4_K_M, TinyLlama-1.1B shape,
// 2 threads, amx: 37.7-39.0 tok/s adjacent, 40.2-42.1 in runs; rows8 Q4_0 avx512 41.9-46.0 -> 48.9-49.0).
// Private to backends/cpu.
#pragma once
#include <cstdint>

namespace tessera::cpu {

// Calls step(i, run) for i in [0, run), run = units / side: step i reads units i, run + i, .., (side - 1) run + i.
// Returns side * run, the units so taken; the ones after them are left to the caller.
template <class Step>
int64_t decode_in_runs(int64_t units, int side, Step&& step) {
    const int64_t run = side > 1 ? units / side : 0;
    for (int64_t i = 0; i < run; ++i) step(i, run);
    return int64_t(side) * run;
}

}  // namespace tessera::cpu
