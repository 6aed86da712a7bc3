// The amx level's matmul on F16 and BF16 weights repacked at load (amx_repack_f16.h). Declared at every level
// so the matmul dispatch compiles everywhere; only a level with tiles (TESSERA_X86_AMX) computes with them.
// Private to backends/cpu; amx_matmul_f16.cpp says how it computes and why.
#pragma once
#include "backends/cpu/kernel_level.h"
#include <cstddef>
#include <cstdint>
#include <string>

#include "backends/cpu/cpu_ops.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

// Activation rows from which a repacked F16 / BF16 product runs on the tiles; fewer take AVX-512 in fp32.
constexpr int64_t kAmxF16TileMinRows = 8;
// Whether `job` (repacked F16 / BF16 weights) runs on the tiles, and so wants its activations split first.
inline bool amx_f16_uses_tiles(const MatmulJob& job) { return job.m >= kAmxF16TileMinRows; }
// Bytes of one activation row split for the tiles: k values' BF16 high parts, then their low parts, each
// zero-padded to a whole 32-value block.
size_t amx_f16_act_row_bytes(int64_t k);
// x (k floats) -> one such row at dst.
void amx_f16_split_activations(const float* x, int64_t k, void* dst);
size_t amx_f16_scratch_floats(const MatmulJob& job);
// out for weight rows [r0, r1) (r0 a multiple of 16). When amx_f16_uses_tiles(job), `split` holds the
// activation rows split (row j at split + j * sstride); else the fp32 activations are read from job.act.
void amx_panel_f16(const MatmulJob& job, int64_t r0, int64_t r1, const char* split, size_t sstride, float* scratch);
// The F16 and BF16 tile products and the small-batch path on this level, against a double-precision
// reference within the fp32 summation bound: "" when they agree, else what differed.
std::string amx_f16_self_check();

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
