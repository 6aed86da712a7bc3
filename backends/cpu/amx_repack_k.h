// The AMX tile layout of the K-quants (Q4_K, Q5_K, Q6_K), made once at load like Q4_0 / Q8_0's
// (amx_repack.h) and read by backends/cpu/amx_matmul_k.cpp. Level-independent byte shuffling.
//
// What the tile loop needs. A K-quant super-block is 256 values of one row with one fp16 scale d (Q4_K/Q5_K:
// also dmin), split into sub-blocks that each carry a small integer scale (Q4_K/Q5_K: 8 x 32 values, 6-bit
// scale and 6-bit min; Q6_K: 16 x 16 values, int8 scale). For activations x = da * a (Q8_K: one float per
// 256, int8 a, exact sums of each 16) the dot of one super-block is
//     Q4_K/Q5_K: da * (d * sum_s sc_s * (q . a)_s  -  dmin * sum_s m_s * sum(a)_s),  q unsigned (0..15 / 0..31)
//     Q6_K:      da *  d * sum_s sc_s * (q . a)_s,                                    q = 6 bits - 32 (signed)
// so one tile product per sub-block ((q . a)_s for 16 activation rows x 16 weight rows, exact int32) gets its
// own integer scale, the scaled products sum exactly in int32 over the super-block, and the floats come in
// once per super-block. The mins never enter the tiles: sum(a)_s is the activation's bsums, so the min term
// is a 16 x 16 integer outer sum beside them. The tile loop is then the same for all three types: load B,
// load A, product, add scale * C, with only the sub-block width (32, or 16 for Q6_K) differing.
//
// So the values are stored as Q4_0 stores them: per 32 values ("chunk") of the 16 rows of a panel, the
// 512-byte VNNI B tile (byte 64g + 4n + i = value 4g + i of row n; amx_repack.h). A 16-value Q6_K sub-block
// is then simply the first or second 256 bytes of its chunk (VNNI rows 0..3 or 4..7), a B tile of 4 rows.
// Bits above the low four are split off into planes, so each plane unpacks with masks and shifts:
//
//   record (panel p = weight rows 16p .. 16p + 15, super-block b = values 256b .. 256b + 255):
//     Q4_K (2304 bytes = 16 x 144):
//       16 x fp16 d, 16 x fp16 dmin, 16 x the row's 12 packed scale/min bytes as in the file,
//       8 chunks x 256 bytes of nibbles: byte j's low nibble is VNNI byte j, its high nibble VNNI byte j + 256
//     Q5_K (2816 bytes = 16 x 176): Q4_K's, then 8 chunks x 64 bytes of fifth bits: bit t of byte i is the
//       fifth bit of VNNI byte 64t + i
//     Q6_K (3360 bytes = 16 x 210):
//       16 x fp16 d, 16 x 16 int8 scales in sub-block-major order (scale of sub-block s, row n at 16s + n:
//       the 16 rows' scales of one tile product are adjacent), 8 chunks x 256 bytes of low nibbles (as Q4_K),
//       8 chunks x 128 bytes of high bit pairs: bits 2t, 2t + 1 of byte i are bits 4, 5 of VNNI byte 128t + i
// Values are stored unsigned (Q6_K: 0..63, the kernel subtracts 32 when it widens them to int8). A record
// holds exactly the bytes of the 16 GGUF blocks it came from, so the repacked weights take the file's size
// (plus the zero padding rows of a last partial panel: d = 0, so they add nothing). The Q4_K/Q5_K scales stay
// packed: the kernel decodes them when it widens a panel, once per panel for all activation rows.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/types.h"

namespace tessera::cpu::amx_layout {

// Q4_K, Q5_K, Q6_K.
bool is_k_quant(DType t);
// Bytes of one K record (16 GGUF blocks' worth).
size_t k_record_bytes(DType t);
// Offsets inside a K record of its parts (0 where a type has none).
struct KRecordParts {
    size_t d, dmin, scales, nibbles, high;  // high: Q5_K's fifth-bit plane, Q6_K's bit-pair plane
};
KRecordParts k_record_parts(DType t);

// As amx_layout::repack / unpack, for the K types (k a multiple of 256; shapes checked by the caller).
void repack_k(DType t, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst);
void unpack_k(DType t, const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride);

}  // namespace tessera::cpu::amx_layout
