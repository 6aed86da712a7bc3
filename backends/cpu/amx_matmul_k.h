// The amx level's matmul on K-quant weights (Q4_K, Q5_K, Q6_K) repacked at load (amx_repack_k.h), with
// activations quantized to Q8_K rows. amx_matmul.cpp's amx_panel hands K-quant jobs here. Declared at every
// level; only a level with tiles (TESSERA_X86_AMX) computes. Private to backends/cpu.
#pragma once
#include "backends/cpu/kernel_level.h"
#include <cstddef>
#include <cstdint>
#include <string>

#include "backends/cpu/cpu_ops.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

// Floats of per-thread scratch amx_panel_k needs for `job`.
size_t amx_k_scratch_floats(const MatmulJob& job);
// out for weight rows [r0, r1) (r0 a multiple of 16) of a job whose K-quant weights are repacked;
// activations already quantized to Q8_K, row j at qact + j * qstride.
void amx_panel_k(const MatmulJob& job, int64_t r0, int64_t r1, const char* qact, size_t qstride, float* scratch);
// Decode: the dots of `panels` panels (panel p at panel0 + p * panel_bytes: 16 rows, nsb super-blocks each)
// with Q8_K activation rows j (of m, 1 .. kAmxDecodeMaxRows, at act + j * astride), read side by side:
// out[16 (j panels + p) + n] for row n of panel p. With AVX-512 VNNI on the packed bytes (amx_gemv_k.cpp),
// each weight unpacked once for all m rows; the same bits as the tile path gives each row. `panels` is 1 or
// amx_gemv_k_side_by_side(m).
int amx_gemv_k_side_by_side(int m);
void amx_gemv_k(DType t, const uint8_t* panel0, size_t panel_bytes, int64_t nsb, const char* act, size_t astride,
                int m, int panels, float* out);
// Small repacked Q4_K, Q5_K and Q6_K matmuls (a partial panel, a partial activation group, one row) through
// amx_panel_k, compared with scalar code doing the same arithmetic on the unpacked blocks: "" when every
// output agrees exactly, else what differed.
std::string amx_k_self_check();

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
