// Included by every per-level kernel header: those declare names in tessera::cpu::<level> and hold inline
// SIMD code compiled for that level, so they may only be included by the kernel sources CMakeLists.txt
// compiles once per level (it defines TESSERA_CPU_LEVEL as the level's namespace: portable, avx2, ...).
// Anything else reaches the kernels through cpu_kernels.h's tables.
#pragma once
#ifndef TESSERA_CPU_LEVEL
#error "a per-level cpu kernel header was included outside a kernel-level source: use backends/cpu/cpu_kernels.h"
#endif
