// Quantized weights with eight rows interleaved ("strips"), the layout the avx2 and avx512 levels' kernels
// read for products of a few activation rows (a decode batch of several sequences), made once at load by the
// cpu backend; the repacked copy replaces the file's bytes in memory (Model::repack_weights).
// Level-independent: plain byte shuffling, compiled with the baseline flags.
//
// Why: with rows one after another, a kernel gets one int32 dot per row in a vector of its own and must
// gather four or eight of them into one vector (unpacks, adds) before the float work, per block and column;
// at 4 columns that gathering, not the weight bytes, bounded the step. Interleaved, lane n of a u8 x s8
// dot is row n's: the four values 4g .. 4g + 3 of the eight rows sit in one 32-byte vector, the activation's
// four values 4g .. 4g + 3 are broadcast to every lane, and eight such products summed give the eight rows'
// block dots in one vector, already in row order. Decode reads a strip as one sequential stream.
//
//   strip s (weight rows 8s .. 8s + 7), then block b (values 32b .. 32b + 31) of that strip, one record:
//     8 x fp16  the 8 rows' block scales d
//     Q4_0, IQ4_NL:  128 bytes; byte 32m + 4n + i (m < 4, n < 8, i < 4) is row n's GGUF byte qs[4m + i]: its low
//            nibble is value 4m + i (group m), its high nibble value 16 + 4m + i (group m + 4)
//     Q8_0:  256 bytes; byte 32g + 4n + i (g < 8) is row n's value qs[4g + i] (group g), as in the file
//
// A record holds the bytes of the 8 GGUF blocks it came from (Q4_0, IQ4_NL: 144 = 8 x 18, Q8_0: 272 = 8 x 34), so
// the repacked weights take the file's size, plus the padding rows of a last partial strip (scale 0,
// values 0).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/types.h"

namespace tessera::cpu::rows8_layout {

constexpr int kStripRows = 8;     // weight rows per strip: the lanes of one 256-bit int32 vector
constexpr int kBlockValues = 32;  // values per quant block
constexpr int kScaleBytes = kStripRows * 2;

// Types this layout has: Q4_0, Q8_0, IQ4_NL.
bool repackable(DType t);
// Bytes of one record (one strip's one block): scales + values.
size_t record_bytes(DType t);
// Bytes of the repacked form of `rows` rows of `k` values (k a multiple of 32).
size_t packed_bytes(DType t, int64_t rows, int64_t k);

// GGUF rows (row r at src + r * src_row_stride) -> the layout above in dst (packed_bytes).
void repack(DType t, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst);
// The inverse: the `rows` real rows back as GGUF blocks, row r at dst + r * dst_row_stride.
void unpack(DType t, const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride);

}  // namespace tessera::cpu::rows8_layout
