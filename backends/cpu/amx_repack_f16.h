// F16 and BF16 weights in the layout the AMX BF16 tile kernel reads (backends/cpu/amx_matmul_f16.cpp), made
// once at load at the amx level; like amx_repack.h's quantized records, the copy replaces the file's bytes.
// Level-independent: a shuffle of 16-bit values, compiled with the baseline flags.
//
// TDPBF16PS multiplies A (activation rows x 16 bf16 pairs) by B in the VNNI layout for 2-byte values: row g
// of B holds, for each output column n, the pair of values 2g and 2g + 1. So 16 weight rows ("a panel") and
// 32 values of k ("a block") make one B tile of 16 rows x 64 bytes:
//
//   panel p (weight rows 16p .. 16p + 15), then block b (values 32b .. 32b + 31) of that panel, 1024 bytes:
//     16-bit value at (g * 16 + n) * 2 + i  =  value 32b + 2g + i of weight row 16p + n  (g < 16, i < 2)
//
// The values keep their own type's bits (F16 stays F16: the kernel splits each into two exact BF16 parts as it
// loads a panel, see amx_matmul_f16.h), so the repacked weights take the file's size, plus zeros: padding rows
// of a last partial panel, and padding values of a last partial block (any k is taken; the zeros add nothing).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/types.h"

namespace tessera::cpu::amx_layout {

constexpr int kPairBlockValues = 32;    // k per B tile (16 pairs)
constexpr int kPairBlockBytes = 1024;   // 16 weight rows x 32 values x 2 bytes

inline bool is_float16(DType t) { return t == DType::F16 || t == DType::BF16; }
// k rounded up to whole blocks.
inline int64_t f16_padded_k(int64_t k) { return (k + kPairBlockValues - 1) / kPairBlockValues * kPairBlockValues; }
// Index (in 16-bit values) inside a block of value v (< 32) of panel row n (< 16).
constexpr int f16_vnni_index(int n, int v) { return ((v / 2) * 16 + n) * 2 + v % 2; }

size_t f16_packed_bytes(int64_t rows, int64_t k);
// GGUF rows of 16-bit values (row r at src + r * src_row_stride) -> the layout above (f16_packed_bytes at dst).
void repack_f16(const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst);
// The inverse: the `rows` real rows back, row r at dst + r * dst_row_stride.
void unpack_f16(const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride);

}  // namespace tessera::cpu::amx_layout

namespace tessera::cpu::amx_layout {

// x as the sum of two BF16 values, the way the F16 / BF16 tile kernel splits its operands: hi = x rounded to
// BF16 (to nearest even; toward zero where that would overflow to infinity), lo = (x - hi) rounded to BF16.
// x - hi is exact in fp32. For an F16 value (11 significant bits) lo holds the other 3 exactly, so
// hi + lo == x; for an fp32 activation |x - hi - lo| <= 2^-17 |x| (for |x| >= 2^-100: below, lo is a
// denormal, which the tiles read as zero, an absolute error under 2^-126). Non-finite x: hi = x, lo = 0.
inline void split_bf16(float x, uint16_t* hi, uint16_t* lo) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) {  // Inf / NaN: no low part
        *hi = uint16_t(u >> 16) | ((u & 0xffffu) && !(u & 0x00400000u) ? 0x0040 : 0);  // NaN stays NaN
        *lo = 0;
        return;
    }
    uint32_t h = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    if ((h & 0x7f800000u) == 0x7f800000u) h = u & 0xffff0000u;  // would round up to infinity
    float hf, rest;
    std::memcpy(&hf, &h, 4);
    rest = x - hf;
    uint32_t r;
    std::memcpy(&r, &rest, 4);
    *hi = uint16_t(h >> 16);
    *lo = uint16_t(((r + 0x7fffu + ((r >> 16) & 1u)) & 0xffff0000u) >> 16);
}

}  // namespace tessera::cpu::amx_layout
