// The amx level's matmul on repacked weights (amx_repack.h's layout): tile products per quant block,
// scaled to fp32. Declared at every level so the matmul dispatch compiles everywhere; only a level with
// tiles (TESSERA_X86_AMX: amx and its emulated twin) computes with them, and mul_mat_fast_ok takes repacked
// weights only there. Private to backends/cpu.
#pragma once
#include "backends/cpu/kernel_level.h"
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cpu/amx_repack.h"
#include "backends/cpu/cpu_ops.h"
#include "backends/cpu/decode_runs.h"

namespace tessera::cpu::TESSERA_CPU_LEVEL {

// Whether this level's kernels read AMX-repacked weights.
bool amx_tiles_compiled();
// Quantized weights with at most this many activation rows (decode, of up to eight sequences at once) take
// the VNNI decode path rather than the tiles: a tile product for so few rows wastes most of it, and widening
// each panel for them cost more than the rows' dots (4 streams decoded at 1.55x one). Each block of weights
// is unpacked once for all the rows.
constexpr int64_t kAmxDecodeMaxRows = 8;
// Weight rows per work item of a repacked job (a multiple of the 16-row panel): two panels for the tiles'
// two-by-two blocking, four for quantized decode, which reads four panels side by side. (Decode-sized
// products hand out several such units per item: cpu_matmul.cpp's work_items.)
constexpr int64_t kAmxItemRows = 32;
inline int64_t amx_item_rows(const MatmulJob& job) {
    return job.m <= kAmxDecodeMaxRows && job.wtype != DType::F16 && job.wtype != DType::BF16 ? 2 * kAmxItemRows
                                                                                             : kAmxItemRows;
}
// Decode over the panels of weight rows [r0, end) (r0 a multiple of the panel; the last may be partial) of a
// job whose panels lie `panel_bytes` apart from `packed`, `side` of them read side by side from runs far
// apart (decode_runs.h says why); the panels left over are taken one at a time.
// gemv(first, stride, panels, out): the products of `panels` panels (panel p at first + p * stride) with the
// job's activation rows, row j's 16 dots with panel p at out + 16 (j panels + p).
template <class Gemv>
void amx_decode_panels(const MatmulJob& job, int64_t r0, int64_t end, const uint8_t* packed, size_t panel_bytes,
                       int side, float* out_scratch, Gemv&& gemv) {
    constexpr int64_t kPanel = amx_layout::kPanelRows;
    const int64_t first = r0 / kPanel;
    const int64_t panels = (end - r0 + kPanel - 1) / kPanel;
    const auto write = [&](int64_t panel, const float* from, int stride_floats) {
        const int64_t row0 = panel * kPanel;
        const size_t valid = size_t(std::min<int64_t>(kPanel, end - row0));
        for (int64_t j = 0; j < job.m; ++j)
            std::memcpy(job.out + j * int64_t(job.out_stride) + row0, from + j * stride_floats, valid * sizeof(float));
    };
    const int64_t in_runs = decode_in_runs(panels, side, [&](int64_t i, int64_t run) {
        gemv(packed + size_t(first + i) * panel_bytes, size_t(run) * panel_bytes, side, out_scratch);
        for (int p = 0; p < side; ++p) write(first + p * run + i, out_scratch + 16 * p, 16 * side);
    });
    for (int64_t p = in_runs; p < panels; ++p) {
        gemv(packed + size_t(first + p) * panel_bytes, panel_bytes, 1, out_scratch);
        write(first + p, out_scratch, 16);
    }
}

// Activation rows as amx_panel takes them. Q4_0 / Q8_0 weights: the row quantized to Q8_0, taken apart into
// its blocks' int8 values back to back, each block's scale as a float and the sum of its 32 values as an int32
// (the tile kernel scales 16 rows per block product, decode subtracts the weights' offset times the sum; made
// once per row here rather than once per weight panel), padded to 64 bytes. K-quants: the Q8_K row as it is
// (its scales are floats, its sums bsums).
size_t amx_act_row_bytes(DType wtype, int64_t k);
void amx_prepare_activation_row(DType wtype, const float* x, char* dst, int64_t k);
// Floats of per-thread scratch amx_panel needs for `job`.
size_t amx_scratch_floats(const MatmulJob& job);
// out for weight rows [r0, r1) (r0 a multiple of 16) of a job whose weights are repacked; activations
// already prepared (amx_prepare_activation_row), row j at qact + j * qstride.
void amx_panel(const MatmulJob& job, int64_t r0, int64_t r1, const char* qact, size_t qstride, float* scratch);
// A small tile product and a small repacked matmul on this level's tiles, compared with scalar code doing
// the same arithmetic: "" when both agree exactly, else what differed. Run once before the amx level is used.
std::string amx_self_check();
// The self-checks' shared step (amx_self_check, amx_k_self_check): n weight rows `wf` of k values quantized to
// t and repacked, the m rows of `xf` quantized as activations, one `panel` pass over all n rows, and every
// output compared exactly with `scalar`, the same arithmetic in scalar code (`blocks`: t's blocks per row).
// "" when all agree, else what differed.
using AmxPanelFn = void (*)(const MatmulJob& job, int64_t r0, int64_t r1, const char* qact, size_t qstride, float* scratch);
using AmxScratchFn = size_t (*)(const MatmulJob& job);
using AmxScalarFn = float (*)(DType t, const uint8_t* packed, int64_t blocks, int64_t row, const char* act);
std::string amx_check_repacked_panel(DType t, int64_t n, int64_t k, int64_t m, const std::vector<float>& wf,
                                     const std::vector<float>& xf, AmxPanelFn panel, AmxScratchFn scratch_floats,
                                     AmxScalarFn scalar);

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
