// Quantized weights in the layout the AMX tile kernels read (backends/cpu/amx_matmul.cpp), made once at
// load by the cpu backend at the amx level; the repacked copy replaces the file's bytes in memory.
// Level-independent: plain byte shuffling, compiled with the baseline flags.
//
// One tile product is C (activation rows x 16 weight rows, int32) += A (activation rows x 32 int8 values of
// one quant block) * B (the 16 weight rows' 32 values of that block). B must be in the VNNI layout: 8 rows
// of 64 bytes, row g holding for each weight row n its 4 values 4g .. 4g + 3. The weights are stored that
// way, 16 rows ("a panel") at a time, so a tile loads straight from them:
//
//   panel p (weight rows 16p .. 16p + 15), then block b (values 32b .. 32b + 31) of that panel:
//     16 x fp16  the 16 rows' block scales d
//     Q8_0:      512 bytes int8, VNNI: byte 64g + 4n + i = value 4g + i of row n
//     Q4_0:      256 bytes of nibbles: byte j's low nibble is VNNI byte j, its high nibble VNNI byte
//                j + 256 (unsigned 0..15; the value is nibble - 8), so two masks and a shift unpack it
//
// A record has the bytes of the 16 GGUF blocks it came from (Q8_0 544 = 16 x 34, Q4_0 288 = 16 x 18): the
// repacked weights take the file's size, plus the padding rows of a last partial panel (scale 0, values 0).
//
// The K-quants Q4_K, Q5_K and Q6_K have their own records, one per panel and 256-value super-block, made of
// the same 32-value VNNI blocks: see amx_repack_k.h. F16 and BF16 weights have theirs for the BF16 tiles
// (amx_repack_f16.h); the functions below take all of these types.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/types.h"

namespace tessera::cpu::amx_layout {

constexpr int kPanelRows = 16;  // weight rows per panel: the N of one tile product
constexpr int kBlockValues = 32;  // values per quant block: the K of one tile product
constexpr int kScaleBytes = kPanelRows * 2;

// Types this layout has: Q4_0, Q8_0, the K-quants of amx_repack_k.h, F16 and BF16 (amx_repack_f16.h).
bool repackable(DType t);
// Values one record covers along k: 32 (Q4_0, Q8_0), 256 (the K-quants' super-block); 1 for F16 / BF16,
// which take any k.
int64_t record_values(DType t);
// Bytes of one record (one panel's one block or super-block): scales + values.
size_t record_bytes(DType t);
// Bytes of the repacked form of `rows` rows of `k` values (k a multiple of record_values).
size_t packed_bytes(DType t, int64_t rows, int64_t k);

// GGUF rows (row r at src + r * src_row_stride) -> the layout above in dst (packed_bytes).
void repack(DType t, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst);
// The inverse: the `rows` real rows back as GGUF blocks, row r at dst + r * dst_row_stride.
void unpack(DType t, const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride);

}  // namespace tessera::cpu::amx_layout
