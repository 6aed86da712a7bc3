// K-quant weights (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), and IQ4_XS, with eight rows interleaved, the K-quant sibling of rows8_layout.h: made once
// at load by the cpu backend at the avx2 and avx512 levels, read by rows8_k_matmul.cpp. Level-independent:
// plain byte shuffling, compiled with the baseline flags.
//
// Why: as for Q4_0 (see rows8_layout.h), lane n of a u8 x s8 dot is row n's, so the eight rows' sums come
// out as one vector in row order and the sub-block scale product, the mins, the int -> float conversion and
// the FMA are one instruction each per super-block (or sub-block) for eight rows, and each super-block's
// quants are unpacked once for up to 8 activation columns. Decode reads a strip as one sequential stream.
//
// Every per-row byte array below is interleaved the same way ("by 4-byte chunks"): row n's byte j of the
// array lands at 32 (j / 4) + 4n + j % 4 of the record's area for it (8x the row's length), so one 32-byte
// load holds the same four bytes of all eight rows, row n in 32-bit lane n.
//
//   strip s (weight rows 8s .. 8s + 7), then super-block b (values 256b .. 256b + 255) of that strip:
//   Q4_K, 1152 bytes = 8 x 144:
//     0     8 x fp16 d        (row n at 2n)
//     16    8 x fp16 dmin
//     32    scales: the 12 GGUF scale bytes by 4-byte chunks (96 bytes): word w of every row in 32 + 32w,
//           so the 6-bit scales and mins of eight rows unpack with a few vector ands and shifts
//     128   qs: the 128 GGUF bytes by 4-byte chunks (1024 bytes); chunk j (GGUF qs[32j .. 32j + 31]: low
//           nibbles values 64j .., high nibbles values 64j + 32 ..) is the 256 bytes at 128 + 256j
//   Q5_K, 1408 bytes = 8 x 176: Q4_K's head (d at 0, dmin at 16, scales at 32), then
//     128   qh: the 32 GGUF high-bit bytes by 4-byte chunks (256 bytes): bit s of byte l is the fifth bit of
//           value l of sub-block s, so chunk g (bytes 4g .. 4g + 3) goes with every sub-block's values 4g ..
//     384   qs: as Q4_K's (1024 bytes)
//   Q6_K, 1680 bytes = 8 x 210:
//     0     8 x fp16 d
//     16    scales: the 16 int8 sub-block scales by 4-byte chunks (128 bytes)
//     144   ql: the 128 GGUF low-bit bytes by 4-byte chunks (1024 bytes)
//     1168  qh: the 64 GGUF high-bit bytes by 4-byte chunks (512 bytes)
//   Q2_K, 672 bytes = 8 x 84:
//     0     8 x fp16 d
//     16    8 x fp16 dmin
//     32    scales: the 16 GGUF scale bytes (low nibble the scale, high nibble the min of 16 values) by
//           4-byte chunks (128 bytes)
//     160   qs: the 64 GGUF bytes by 4-byte chunks (512 bytes), laid out as Q3_K's qs below
//   Q3_K, 880 bytes = 8 x 110:
//     0     8 x fp16 d
//     16    scales: the 12 GGUF scale bytes by 4-byte chunks (96 bytes), as Q4_K's
//     112   hmask: the 32 GGUF high-bit bytes by 4-byte chunks (256 bytes): bit 4h + j of byte l is the third
//           bit of value 128h + 32j + l, so chunk g goes with values 4g .. 4g + 3 of every 32
//     368   qs: the 64 GGUF low-bit bytes by 4-byte chunks (512 bytes); half h (values 128h ..: GGUF
//           qs[32h .. 32h + 31], bits 2j, 2j + 1 of byte l for value 128h + 32j + l) is the 256 bytes at 368 + 256h
//   IQ4_XS, 1088 bytes = 8 x 136:
//     0     8 x fp16 d
//     16    8 x uint16 scales_h (row n at 16 + 2n)
//     32    scales_l: the 4 GGUF bytes, one chunk (32 bytes)
//     64    qs: the 128 GGUF bytes by 4-byte chunks (1024 bytes); sub-block g (values 32g ..) is the 128 bytes at
//           64 + 128g: chunk m < 4 of it holds values 4m .. in its low nibbles, 16 + 4m .. in its high ones
//
// A record holds exactly the bytes of the 8 GGUF blocks it came from, so the repacked weights take the
// file's size, plus the padding rows of a last partial strip: all bytes 0 (d = 0: they add nothing).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/types.h"

namespace tessera::cpu::rows8_k_layout {

constexpr int kStripRows = 8;       // weight rows per strip: the lanes of one 256-bit int32 vector
constexpr int kBlockValues = 256;   // values per K-quant super-block

// Record offsets (see above).
constexpr size_t kQ4KDmin = 16, kQ4KScales = 32, kQ4KQs = 128;
constexpr size_t kQ5KQh = 128, kQ5KQs = 384;  // d, dmin and scales where Q4_K has them
constexpr size_t kQ6KScales = 16, kQ6KQl = 144, kQ6KQh = 1168;
constexpr size_t kIQ4XSScalesH = 16, kIQ4XSScalesL = 32, kIQ4XSQs = 64;
constexpr size_t kQ3KScales = 16, kQ3KHmask = 112, kQ3KQs = 368;
constexpr size_t kQ2KDmin = 16, kQ2KScales = 32, kQ2KQs = 160;

// Types this layout has: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS.
bool repackable(DType t);
// Bytes of one record (one strip's one super-block).
size_t record_bytes(DType t);
// Bytes of the repacked form of `rows` rows of `k` values (k a multiple of 256).
size_t packed_bytes(DType t, int64_t rows, int64_t k);

// GGUF rows (row r at src + r * src_row_stride) -> the layout above in dst (packed_bytes).
void repack(DType t, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst);
// The inverse: the `rows` real rows back as GGUF blocks, row r at dst + r * dst_row_stride.
void unpack(DType t, const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride);

}  // namespace tessera::cpu::rows8_k_layout
