// The amx level's quantized matmul: weights repacked at load (amx_repack.h), activations quantized to Q8_0
// and prepared once per row (amx_prepare_activation_row), and per 32-value block one tile product
//     C (up to 16 activation rows x 16 weight rows, int32) = A (those rows' int8 block) x B (the panel's block)
// scaled to fp32 with the two blocks' scales and summed over the blocks. The integer part is exact, so the
// only rounding is the fp32 accumulation (one fused multiply-add per block), as in the other levels' tiles.
//
// Q4_0 panels are widened to int8 (value - 8) once per panel, into per-thread scratch, and reused for every
// group of 16 activation rows; Q8_0 panels are loaded in place. Edges: a group of fewer than 16 activation
// rows gets tiles configured with that many rows (nothing is read past the activations), and the padding rows
// of a last partial panel (scale 0) are computed and not written. Up to kAmxDecodeMaxRows activation rows
// take VNNI dot products instead (panels_gemv), with the same integers and float steps.
//
// Compiled at every level; only where tiles exist (amx_tiles.h) does it do anything.
#include "backends/cpu/amx_matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <random>
#include <vector>

#include "backends/cpu/amx_matmul_f16.h"
#include "backends/cpu/amx_k_simd.h"
#include "backends/cpu/amx_matmul_k.h"
#include "backends/cpu/amx_repack.h"
#include "backends/cpu/amx_repack_k.h"
#include "backends/cpu/amx_tiles.h"
#include "backends/cpu/cpu_act_quant.h"
#include "backends/cpu/quant_dot.h"
#include "backends/cpu/quant_dot_kernels.h"
#include "core/error.h"
#include "core/half.h"
#include "core/quant.h"

// GCC 12 reports _mm512_cvtepi32_ps's deliberately undefined pass-through operand as maybe-uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace tessera::cpu::TESSERA_CPU_LEVEL {

#if TESSERA_X86_AMX

namespace {

namespace L = amx_layout;
constexpr int kRows = 16;                              // activation rows per tile product (M)
constexpr int kVnniBytes = L::kPanelRows * L::kBlockValues;  // one B tile: 8 rows of 64 bytes
// A prepared activation row (amx_matmul.h): its blocks' 32 int8 values back to back (a tile row of a block
// never straddles two cache lines, as a 34-byte GGUF block's values do half the time), then the blocks'
// scales as floats, then their sums as int32; rows padded to 64 bytes.
size_t act_tables_offset(int64_t nb) { return size_t(nb) * L::kBlockValues; }

// Up to two groups of 16 activation rows against up to two panels per block: tiles 0, 1 hold the groups'
// blocks (A: rows x 32 int8), tiles 2, 3 the panels' blocks (B: 8 x 64, VNNI), tile 4 + 2 * group + panel
// their product (C: rows x 16 int32). Four products per four loads rather than one per two, and four
// independent products the tile unit can overlap. A group of 0 rows leaves its tiles unconfigured (unused).
void configure(int rows0, int rows1) {
    TileConfig c;
    const int rows[2] = {rows0, rows1};
    for (int g = 0; g < 2; ++g) {
        if (rows[g] == 0) continue;
        c.rows[g] = uint8_t(rows[g]);
        c.colsb[g] = L::kBlockValues;
        for (int p = 0; p < 2; ++p) {
            c.rows[4 + 2 * g + p] = uint8_t(rows[g]);
            c.colsb[4 + 2 * g + p] = 4 * L::kPanelRows;
        }
    }
    for (int p = 0; p < 2; ++p) {
        c.rows[2 + p] = L::kBlockValues / 4;
        c.colsb[2 + p] = 4 * L::kPanelRows;
    }
    tile_memory_barrier();
    _tile_loadconfig(&c);
}

// One panel's weights as the tiles take them.
struct Panel {
    const int8_t* vnni;   // block b's B tile at vnni + b * stride
    size_t stride;
    const float* scale;   // block b, row n: scale[b * 16 + n]
};

Panel prepare_panel(DType t, const uint8_t* panel, int64_t nb, int8_t* widened, float* scale) {
    const size_t rec = L::record_bytes(t);
    for (int64_t b = 0; b < nb; ++b) _mm512_storeu_ps(scale + b * L::kPanelRows, amx_k::halves(panel + size_t(b) * rec));
    if (t == DType::Q8_0) return {reinterpret_cast<const int8_t*>(panel + L::kScaleBytes), rec, scale};
    // Q4_0: nibble byte j holds VNNI byte j (low) and j + 256 (high), unsigned; the tile takes value - 8.
    const __m512i nibble = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* q = panel + size_t(b) * rec + L::kScaleBytes;
        int8_t* o = widened + b * kVnniBytes;
        for (int j = 0; j < kVnniBytes / 2; j += 64) {
            const __m512i v = _mm512_loadu_si512(q + j);
            _mm512_storeu_si512(o + j, _mm512_sub_epi8(_mm512_and_si512(v, nibble), eight));
            _mm512_storeu_si512(o + j + kVnniBytes / 2, _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), nibble), eight));
        }
    }
    return {widened, size_t(kVnniBytes), scale};
}

// Block b's tile products of G groups (the first at act, the second 16 rows below) and P panels, stored as
// int32 at c + 256 * (2 * group + panel), row m at + 16 m. (The tile intrinsics take literal tile numbers.)
template <int G, int P>
void tile_products(const Panel* w, int64_t b, const char* act, size_t astride, int32_t* c) {
    const char* a = act + size_t(b) * L::kBlockValues;
    _tile_loadd(2, w[0].vnni + size_t(b) * w[0].stride, 4 * L::kPanelRows);
    if constexpr (P > 1) _tile_loadd(3, w[1].vnni + size_t(b) * w[1].stride, 4 * L::kPanelRows);
    _tile_loadd(0, a, long(astride));
    if constexpr (G > 1) _tile_loadd(1, a + kRows * astride, long(astride));
    _tile_zero(4);
    _tile_dpbssd(4, 0, 2);
    if constexpr (P > 1) {
        _tile_zero(5);
        _tile_dpbssd(5, 0, 3);
    }
    if constexpr (G > 1) {
        _tile_zero(6);
        _tile_dpbssd(6, 1, 2);
    }
    if constexpr (G > 1 && P > 1) {
        _tile_zero(7);
        _tile_dpbssd(7, 1, 3);
    }
    _tile_stored(4, c, 4 * L::kPanelRows);
    if constexpr (P > 1) _tile_stored(5, c + 256, 4 * L::kPanelRows);
    if constexpr (G > 1) _tile_stored(6, c + 512, 4 * L::kPanelRows);
    if constexpr (G > 1 && P > 1) _tile_stored(7, c + 768, 4 * L::kPanelRows);
    tile_memory_barrier();  // the loads of c that follow read what the tile stores wrote
}

// acc (row i of the G * 16 activation rows at acc + i * 32, panel p's 16 values at + 16 p) = the dots of the
// `rows[g]` prepared activation rows of each group with the P panels: per block the tile products, then per
// row m and panel p, in 16 lanes,
//     acc = fma(float(C), weight scales * activation scale, acc)
// the rounding steps of scalar_product, lane by lane. Tiles configured for `rows`.
template <int G, int P>
void block_product(const Panel* w, int64_t nb, const char* act, size_t astride, const int* rows, int32_t* c,
                   float* acc) {
    const size_t tables = act_tables_offset(nb);
    const float* da[2 * kRows];
    for (int g = 0; g < G; ++g)
        for (int m = 0; m < rows[g]; ++m) {
            const int i = g * kRows + m;
            da[i] = reinterpret_cast<const float*>(act + size_t(i) * astride + tables);
            for (int p = 0; p < P; ++p) _mm512_storeu_ps(acc + i * 32 + 16 * p, _mm512_setzero_ps());
        }
    tile_memory_barrier();
    for (int64_t b = 0; b < nb; ++b) {
        tile_products<G, P>(w, b, act, astride, c);
        __m512 ws[P];
        for (int p = 0; p < P; ++p) ws[p] = _mm512_loadu_ps(w[p].scale + b * L::kPanelRows);
        for (int g = 0; g < G; ++g)
            for (int m = 0; m < rows[g]; ++m) {
                const int i = g * kRows + m;
                const __m512 sa = _mm512_set1_ps(da[i][b]);
                for (int p = 0; p < P; ++p) {
                    float* o = acc + i * 32 + 16 * p;
                    const __m512 cm = _mm512_cvtepi32_ps(_mm512_load_si512(c + 256 * (2 * g + p) + 16 * m));
                    _mm512_storeu_ps(o, _mm512_fmadd_ps(cm, _mm512_mul_ps(ws[p], sa), _mm512_loadu_ps(o)));
                }
            }
    }
}

using BlockFn = void (*)(const Panel*, int64_t, const char*, size_t, const int*, int32_t*, float*);
constexpr BlockFn kBlockFns[2][2] = {{block_product<1, 1>, block_product<1, 2>}, {block_product<2, 1>, block_product<2, 2>}};

// Decode: M activation rows (up to kAmxDecodeMaxRows) against P panels (panel p at panel0 + p * panel_bytes;
// row m's results for panel p at out + (m * P + p) * 16), with AVX-512 VNNI instead of tiles (a tile product
// for so few rows would waste most of each). The panel's VNNI bytes are what
// VPDPBUSD takes: row g of a block is, for each of the 16 weight rows, its values 4g .. 4g + 3, so one
// broadcast of the activation's values 4g .. 4g + 3 gives the 16 rows' partial dots in the 16 int32 lanes.
// VPDPBUSD multiplies unsigned by signed bytes, so the weights go in unsigned (Q4_0: the nibble, value + 8;
// Q8_0: value + 128, by flipping the sign bit) and the offset times the activation block's sum (prepared with
// the row) comes off after: the same exact integer as the tile product, scaled the same way, so decode and
// batch give the same bits. Several panels share the activation broadcasts and are read side by side (more
// lines in flight; amx_decode_panels takes them from runs of panels far apart), and each block's dot is two
// chains of VPDPBUSD (their latency bounded a single chain).
// Decode reads each weight once, so it runs at the speed memory delivers it; one core's hardware prefetch
// alone kept too few lines in flight (tg16 Q4_0, TinyLlama-1.1B shape, 2 threads: 38-39 tok/s without, 41-43
// at 2 or 4 records ahead, 44-45 at 8). Each line of the record 8 ahead is asked for in advance.
constexpr size_t kPrefetchRecords = 8;
template <int P, int M>
void panels_gemv(DType t, const uint8_t* panel0, size_t panel_bytes, int64_t nb, const char* act, size_t astride,
                 float* out) {
    const size_t rec = L::record_bytes(t);
    const __m512i nibble = _mm512_set1_epi8(0x0F), sign = _mm512_set1_epi8(char(0x80));
    const int32_t offset = t == DType::Q8_0 ? 128 : 8;
    const float* da[M];
    const int32_t* asum[M];
    for (int m = 0; m < M; ++m) {
        da[m] = reinterpret_cast<const float*>(act + size_t(m) * astride + act_tables_offset(nb));
        asum[m] = reinterpret_cast<const int32_t*>(da[m] + nb);
    }
    __m512 acc[M][P];
    for (auto& row : acc)
        for (auto& v : row) v = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        for (int p = 0; p < P; ++p) {
            const uint8_t* r = panel0 + size_t(p) * panel_bytes + size_t(b) * rec;
            const uint8_t* q = r + L::kScaleBytes;
            qdot::prefetch_ahead(r, rec, kPrefetchRecords * rec);
            __m512i w[8];  // VNNI rows 0..7 of the block, unsigned, unpacked once for the M activation rows
            if (t == DType::Q8_0) {
                for (int g = 0; g < 8; ++g) w[g] = _mm512_xor_si512(_mm512_loadu_si512(q + 64 * g), sign);
            } else {
                for (int c = 0; c < 4; ++c) {  // 64 bytes: VNNI row c in the low nibbles, row c + 4 in the high
                    const __m512i v = _mm512_loadu_si512(q + 64 * c);
                    w[c] = _mm512_and_si512(v, nibble);
                    w[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
                }
            }
            const __m512 ws = amx_k::halves(r);
            for (int m = 0; m < M; ++m) {
                const char* x = act + size_t(m) * astride + size_t(b) * L::kBlockValues;
                int32_t x4[8];
                std::memcpy(x4, x, sizeof x4);
                __m512i d0 = _mm512_setzero_si512(), d1 = _mm512_setzero_si512();
                for (int g = 0; g < 4; ++g) {
                    d0 = _mm512_dpbusd_epi32(d0, w[g], _mm512_set1_epi32(x4[g]));
                    d1 = _mm512_dpbusd_epi32(d1, w[g + 4], _mm512_set1_epi32(x4[g + 4]));
                }
                const __m512i dot = _mm512_sub_epi32(_mm512_add_epi32(d0, d1), _mm512_set1_epi32(offset * asum[m][b]));
                acc[m][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(ws, _mm512_set1_ps(da[m][b])), acc[m][p]);
            }
        }
    }
    for (int m = 0; m < M; ++m)
        for (int p = 0; p < P; ++p) _mm512_storeu_ps(out + m * (16 * P) + 16 * p, acc[m][p]);
}

// How many panels panels_gemv reads side by side for m activation rows: as many as the accumulators allow
// (4 for one row, 2 for up to 4, else 1).
int gemv_side_by_side(int m) { return m == 1 ? 4 : m <= 4 ? 2 : 1; }

// panels_gemv for m activation rows (1 .. kAmxDecodeMaxRows) against `panels` panels, 1 or
// gemv_side_by_side(m) (amx_decode_panels asks for no other count); row j's results at out + j * 16 * panels.
void gemv_rows(DType t, const uint8_t* panel0, size_t panel_bytes, int64_t nb, const char* act, size_t astride, int m,
               int panels, float* out) {
    using Fn = void (*)(DType, const uint8_t*, size_t, int64_t, const char*, size_t, float*);
    static constexpr Fn kOne[2] = {panels_gemv<1, 1>, panels_gemv<4, 1>};
    static constexpr Fn kTwo[3][2] = {{panels_gemv<1, 2>, panels_gemv<2, 2>},
                                      {panels_gemv<1, 3>, panels_gemv<2, 3>},
                                      {panels_gemv<1, 4>, panels_gemv<2, 4>}};
    static constexpr Fn kMany[4] = {panels_gemv<1, 5>, panels_gemv<1, 6>, panels_gemv<1, 7>, panels_gemv<1, 8>};
    static_assert(kAmxDecodeMaxRows == 8, "gemv_rows: the tables above cover 1 .. 8 rows");
    TESSERA_CHECK(panels == 1 || panels == gemv_side_by_side(m), "amx decode: %d panels side by side for %d rows", panels, m);
    if (m == 1)
        kOne[panels == 1 ? 0 : 1](t, panel0, panel_bytes, nb, act, astride, out);
    else if (m <= 4)
        kTwo[m - 2][panels - 1](t, panel0, panel_bytes, nb, act, astride, out);
    else
        kMany[m - 5](t, panel0, panel_bytes, nb, act, astride, out);
}

// The arithmetic of block_product and panels_gemv for one output, in scalar code: the self-check's expectation.
float scalar_product(DType t, const uint8_t* packed, int64_t nb, int64_t row, const char* act) {
    const int64_t panel = row / L::kPanelRows;
    const size_t rec = L::record_bytes(t);
    // Unpack this row's panel through the layout's own inverse, then read row `row % 16` as GGUF blocks.
    std::vector<uint8_t> rows(size_t(L::kPanelRows) * nb * (t == DType::Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0)));
    const size_t rb = size_t(nb) * (t == DType::Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0));
    L::unpack(t, packed + size_t(panel) * size_t(nb) * rec, L::kPanelRows, nb * L::kBlockValues, rows.data(), rb);
    const uint8_t* r = rows.data() + size_t(row % L::kPanelRows) * rb;
    const auto* da = reinterpret_cast<const float*>(act + act_tables_offset(nb));
    float acc = 0;
    for (int64_t b = 0; b < nb; ++b) {
        const auto* aq = reinterpret_cast<const int8_t*>(act) + b * L::kBlockValues;
        int32_t dot = 0;
        float dw;
        if (t == DType::Q8_0) {
            const auto* wb = reinterpret_cast<const block_q8_0*>(r) + b;
            dw = fp16_to_fp32(wb->d);
            for (int v = 0; v < 32; ++v) dot += int32_t(wb->qs[v]) * aq[v];
        } else {
            const auto* wb = reinterpret_cast<const block_q4_0*>(r) + b;
            dw = fp16_to_fp32(wb->d);
            for (int v = 0; v < 16; ++v) {
                dot += (int32_t(wb->qs[v] & 0x0F) - 8) * aq[v];
                dot += (int32_t(wb->qs[v] >> 4) - 8) * aq[v + 16];
            }
        }
        acc = std::fma(float(dot), dw * da[b], acc);
    }
    return acc;
}

}  // namespace

bool amx_tiles_compiled() { return true; }

size_t amx_act_row_bytes(DType wtype, int64_t k) {
    if (L::is_k_quant(wtype)) return activation_row_bytes(wtype, k);
    const int64_t nb = k / L::kBlockValues;
    return (act_tables_offset(nb) + size_t(nb) * (sizeof(float) + sizeof(int32_t)) + 63) / 64 * 64;
}

void amx_prepare_activation_row(DType wtype, const float* x, char* dst, int64_t k) {
    if (L::is_k_quant(wtype)) return quantize_activation_row(wtype, x, dst, k);
    const int64_t nb = k / L::kBlockValues;
    thread_local std::vector<block_q8_0> blocks;  // the row as Q8_0 blocks, then taken apart
    blocks.resize(size_t(nb));
    quantize_activation_row(wtype, x, blocks.data(), k);
    auto* da = reinterpret_cast<float*>(dst + act_tables_offset(nb));
    auto* asum = reinterpret_cast<int32_t*>(da + nb);
    for (int64_t b = 0; b < nb; ++b) {
        const block_q8_0& ab = blocks[size_t(b)];
        std::memcpy(dst + b * L::kBlockValues, ab.qs, L::kBlockValues);
        da[b] = fp16_to_fp32(ab.d);
        int32_t sum = 0;
        for (int v = 0; v < L::kBlockValues; ++v) sum += ab.qs[v];
        asum[b] = sum;
    }
    const size_t used = act_tables_offset(nb) + size_t(nb) * (sizeof(float) + sizeof(int32_t));
    std::memset(dst + used, 0, amx_act_row_bytes(wtype, k) - used);  // the padding, so no byte is left undefined
}

size_t amx_scratch_floats(const MatmulJob& job) {
    if (L::is_k_quant(job.wtype)) return amx_k_scratch_floats(job);
    const size_t nb = size_t(job.k / L::kBlockValues);
    // C (4 x 16 x 16 int32, 64-byte aligned) + acc (32 x 32) + per panel of two: scales (nb x 16) and the
    // widened Q4_0 panel (nb x 512 bytes)
    return 16 + 4 * kRows * L::kPanelRows + 2 * kRows * 32 + 2 * (nb * L::kPanelRows + nb * kVnniBytes / sizeof(float));
}

void amx_panel(const MatmulJob& job, int64_t r0, int64_t r1, const char* qact, size_t qstride, float* scratch) {
    if (L::is_k_quant(job.wtype)) return amx_panel_k(job, r0, r1, qact, qstride, scratch);
    const int64_t nb = job.k / L::kBlockValues;
    const size_t rec = L::record_bytes(job.wtype);
    auto* c = reinterpret_cast<int32_t*>((reinterpret_cast<uintptr_t>(scratch) + 63) / 64 * 64);
    float* acc = reinterpret_cast<float*>(c + 4 * kRows * L::kPanelRows);
    float* scale[2] = {acc + 2 * kRows * 32, nullptr};
    int8_t* widened[2] = {reinterpret_cast<int8_t*>(scale[0] + nb * L::kPanelRows), nullptr};
    scale[1] = reinterpret_cast<float*>(widened[0] + nb * kVnniBytes);
    widened[1] = reinterpret_cast<int8_t*>(scale[1] + nb * L::kPanelRows);
    const auto* packed = reinterpret_cast<const uint8_t*>(job.w);
    const auto panel_at = [&](int64_t p) { return packed + size_t(p) * size_t(nb) * rec; };
    const int64_t end = std::min(r1, job.n);
    if (job.m <= kAmxDecodeMaxRows) {
        const int m = int(job.m);
        amx_decode_panels(job, r0, end, packed, size_t(nb) * rec, gemv_side_by_side(m),
                          acc, [&](const uint8_t* first, size_t stride, int panels, float* out) {
                              gemv_rows(job.wtype, first, stride, nb, qact, qstride, m, panels, out);
                          });
        return;
    }
    int configured[2] = {-1, -1};
    for (int64_t row0 = r0; row0 < end; row0 += 2 * L::kPanelRows) {  // two panels at a time
        const int panels = end - row0 > L::kPanelRows ? 2 : 1;
        Panel w[2];
        int valid[2];
        for (int p = 0; p < panels; ++p) {
            w[p] = prepare_panel(job.wtype, panel_at(row0 / L::kPanelRows + p), nb, widened[p], scale[p]);
            valid[p] = int(std::min<int64_t>(L::kPanelRows, end - row0 - p * L::kPanelRows));
        }
        for (int64_t j0 = 0; j0 < job.m; j0 += 2 * kRows) {  // two groups of activation rows at a time
            const int rows[2] = {int(std::min<int64_t>(kRows, job.m - j0)),
                                 int(std::clamp<int64_t>(job.m - j0 - kRows, 0, kRows))};
            if (rows[0] != configured[0] || rows[1] != configured[1]) {
                configure(rows[0], rows[1]);
                configured[0] = rows[0], configured[1] = rows[1];
            }
            const int groups = rows[1] ? 2 : 1;
            kBlockFns[groups - 1][panels - 1](w, nb, qact + size_t(j0) * qstride, qstride, rows, c, acc);
            for (int g = 0; g < groups; ++g)
                for (int m = 0; m < rows[g]; ++m)
                    for (int p = 0; p < panels; ++p)
                        std::memcpy(job.out + (j0 + g * kRows + m) * int64_t(job.out_stride) + row0 + p * L::kPanelRows,
                                    acc + (g * kRows + m) * 32 + 16 * p, size_t(valid[p]) * sizeof(float));
        }
    }
    if (configured[0] >= 0) _tile_release();
}

std::string amx_check_repacked_panel(DType t, int64_t n, int64_t k, int64_t m, const std::vector<float>& wf,
                                     const std::vector<float>& xf, AmxPanelFn panel, AmxScratchFn scratch_floats,
                                     AmxScalarFn scalar) {
    const int64_t blocks = k / type_traits(t).block_size;
    const size_t wrow = row_bytes(t, k);
    std::vector<uint8_t> w(size_t(n) * wrow), packed(L::packed_bytes(t, n, k));
    for (int64_t r = 0; r < n; ++r) type_traits(t).from_float(wf.data() + r * k, w.data() + size_t(r) * wrow, k);
    L::repack(t, w.data(), wrow, n, k, packed.data());
    const size_t qstride = amx_act_row_bytes(t, k);
    std::vector<char> qact(size_t(m) * qstride);
    for (int64_t j = 0; j < m; ++j) amx_prepare_activation_row(t, xf.data() + j * k, qact.data() + size_t(j) * qstride, k);
    std::vector<float> out(size_t(m * n), NAN);
    MatmulJob job;
    job.wtype = t;
    job.w = reinterpret_cast<const char*>(packed.data());
    job.n = n;
    job.k = k;
    job.m = m;
    job.out = out.data();
    job.out_stride = size_t(n);
    job.amx_repacked = true;
    std::vector<float> scratch(scratch_floats(job));
    panel(job, 0, n, qact.data(), qstride, scratch.data());
    for (int64_t j = 0; j < m; ++j)
        for (int64_t r = 0; r < n; ++r) {
            const float want = scalar(t, packed.data(), blocks, r, qact.data() + size_t(j) * qstride);
            const float got = out[size_t(j * n + r)];
            if (!(got == want))
                return format("%s %s gave %.9g at weight row %lld, activation row %lld where scalar code gives %.9g",
                              type_name(t), m == 1 ? "decode" : "tile matmul", double(got), (long long)r, (long long)j,
                              double(want));
        }
    return "";
}

std::string amx_self_check() {
    try {
        std::mt19937 rng(20240611);
        // 1. One full tile product against the scalar sum, exactly (int32, wrapping).
        {
            alignas(64) int8_t A[16][64], B[16][64];
            alignas(64) int32_t C[16][16], want[16][16];
            for (auto& r : A)
                for (auto& v : r) v = int8_t(rng());
            for (auto& r : B)
                for (auto& v : r) v = int8_t(rng());
            for (int m = 0; m < 16; ++m)
                for (int n = 0; n < 16; ++n) {
                    C[m][n] = int32_t(rng());
                    uint32_t s = uint32_t(C[m][n]);
                    for (int k = 0; k < 16; ++k)
                        for (int i = 0; i < 4; ++i) s += uint32_t(int32_t(A[m][4 * k + i]) * int32_t(B[k][4 * n + i]));
                    want[m][n] = int32_t(s);
                }
            TileConfig cfg;
            for (int t = 0; t < 3; ++t) {
                cfg.rows[t] = 16;
                cfg.colsb[t] = 64;
            }
            tile_memory_barrier();
            _tile_loadconfig(&cfg);
            _tile_loadd(0, C, 64);
            _tile_loadd(1, A, 64);
            _tile_loadd(2, B, 64);
            _tile_dpbssd(0, 1, 2);
            _tile_stored(0, C, 64);
            _tile_release();
            for (int m = 0; m < 16; ++m)
                for (int n = 0; n < 16; ++n)
                    if (C[m][n] != want[m][n])
                        return format("TDPBSSD gave %d at row %d column %d where the scalar sum is %d", C[m][n], m, n,
                                      want[m][n]);
        }
        // 2. A repacked Q4_0 and Q8_0 matmul (a partial panel; a partial activation group through the tiles,
        // and one row, the decode path) through the kernel.
        for (DType t : {DType::Q4_0, DType::Q8_0})
            for (int64_t m : {kAmxDecodeMaxRows + 3, int64_t(3), int64_t(1)}) {  // tiles (a partial group), then the decode path
                const int64_t n = 20, k = 96;
                std::vector<float> wf(size_t(n * k)), xf(size_t(m * k));
                std::uniform_real_distribution<float> u(-1.0f, 1.0f);
                for (auto& v : wf) v = u(rng);
                for (auto& v : xf) v = u(rng);
                const std::string why = amx_check_repacked_panel(t, n, k, m, wf, xf, amx_panel, amx_scratch_floats, scalar_product);
                if (!why.empty()) return why;
            }
    } catch (const std::exception& e) {
        return e.what();
    }
    const std::string k_quants = amx_k_self_check();  // 3. the K-quants' tile matmul (amx_matmul_k.cpp)
    if (!k_quants.empty()) return k_quants;
    return amx_f16_self_check();  // 4. F16 / BF16 weights on the BF16 tiles (amx_matmul_f16.cpp)
}

#else  // no tiles at this level

bool amx_tiles_compiled() { return false; }
size_t amx_act_row_bytes(DType wtype, int64_t k) { return activation_row_bytes(wtype, k); }
void amx_prepare_activation_row(DType wtype, const float* x, char* dst, int64_t k) {
    quantize_activation_row(wtype, x, dst, k);
}
size_t amx_scratch_floats(const MatmulJob&) { return 0; }
void amx_panel(const MatmulJob&, int64_t, int64_t, const char*, size_t, float*) {
    throw Error("cpu backend: weights repacked for AMX tiles reached a kernel level without them", Status::Unsupported);
}
std::string amx_self_check() { return "this kernel level has no AMX tiles"; }

#endif

}  // namespace tessera::cpu::TESSERA_CPU_LEVEL
