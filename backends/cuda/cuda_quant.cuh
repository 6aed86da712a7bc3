// Device-side decoding of weight rows for the CUDA matmul kernels (cuda_matmul.cu): one struct per weight
// type, all with the same interface, so the matrix-vector and dequantize kernels are written once.
//
// A weight row is a sequence of blocks (core/quant.h layouts; F32/F16/BF16 rows are cut into "blocks" of
// 8 elements). Each block is cut into slices of 8 values, and a slice is two runs of 4 consecutive
// elements (element offsets in the block: Q::run(slice, 0) and Q::run(slice, 1)). Slices are chosen so
// that a thread's weight bytes come from one or two aligned words and consecutive slices read consecutive
// bytes and consecutive activations (coalesced across a warp).
//
// Q::load gives a slice as value = q * scale[r] + offset[r] for run r, with q a small integer held exactly
// as a float. This is the reference dequantization (core/quant.cpp, core/quant_k.cpp) split into its
// factors: the reference computes exactly q * scale (+ offset) with scale (and offset) formed by the same
// single multiplications, so __fadd_rn(__fmul_rn(q, scale), offset) gives the reference's floats bit for
// bit (see dequant_value). The matrix-vector kernel instead sums q * x over a run and applies the scale
// once per run, which is the same product with a different rounding order.
//
// Alignment: Q::kAlign is what a block's start is aligned to when the row starts on 16 bytes and the row
// stride is a multiple of the block size (gcd(block bytes, 16)); the loads below rely on it and the host
// checks it (cuda_matmul.cu repacks the weights when it does not hold).
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "backends/cuda/cuda_convert.cuh"
#include "core/quant.h"
#include "core/types.h"

namespace tessera::cuda::mm {

// Eight weight values: q[0..3] are run 0, q[4..7] run 1. For F32/F16/BF16, q holds the values themselves
// (scale 1, offset 0: kScaled and kOffset are false and the fields are not set).
struct Slice {
    float q[8];
    float scale[2];
    float offset[2];
};

// ---- loads (read-only path; the weights are not written while a kernel runs) ----

__device__ __forceinline__ uint32_t ld_u8(const uint8_t* p) { return __ldg(p); }
__device__ __forceinline__ int32_t ld_i8(const uint8_t* p) { return __ldg(reinterpret_cast<const signed char*>(p)); }
__device__ __forceinline__ uint32_t ld_u16(const uint8_t* p) { return __ldg(reinterpret_cast<const unsigned short*>(p)); }
__device__ __forceinline__ uint32_t ld_u32(const uint8_t* p) { return __ldg(reinterpret_cast<const unsigned int*>(p)); }
// Four bytes at a 2-byte aligned address, little endian.
__device__ __forceinline__ uint32_t ld_u32_a2(const uint8_t* p) { return ld_u16(p) | (ld_u16(p + 2) << 16); }
__device__ __forceinline__ float half_bits_to_float(uint32_t h) {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(h)));
}
__device__ __forceinline__ float ld_half(const uint8_t* p) { return half_bits_to_float(ld_u16(p)); }

// float(int(v) - kBias), exactly, for 0 <= v < 2^22: 2^23 + v has v in its low mantissa bits, and the
// difference of two floats in [2^23, 2^24) is an exact small integer. Avoids int-to-float conversions,
// which run at a quarter of the FMA rate and would bound the matrix-vector kernel.
template <int kBias>
__device__ __forceinline__ float biased(uint32_t v) {
    return __uint_as_float(0x4B000000u | v) - float(8388608 + kBias);
}

// Byte i (0..3) of a little-endian word.
__device__ __forceinline__ uint32_t byte_of(uint32_t w, int i) { return (w >> (8 * i)) & 0xFFu; }

template <int kElems_, int kBytes_, int kAlign_>
struct BlockShape {
    static constexpr int kElems = kElems_;   // elements per block
    static constexpr int kBytes = kBytes_;   // bytes per block
    static constexpr int kAlign = kAlign_;   // see the file comment
    static constexpr int kSlices = kElems_ / 8;
};

// ---------------------------------------------------------------------------------------------
// Float types: blocks of 8 elements; a row's last k % 8 elements are read one by one (kTail).

struct WeightF32 : BlockShape<8, 32, 16> {
    static constexpr DType kType = DType::F32;
    static constexpr bool kScaled = false, kOffset = false, kTail = true;
    __device__ static int run(int, int r) { return 4 * r; }
    __device__ static void load(const uint8_t* b, int, Slice& s) {
        const float4 lo = __ldg(reinterpret_cast<const float4*>(b));
        const float4 hi = __ldg(reinterpret_cast<const float4*>(b + 16));
        s.q[0] = lo.x; s.q[1] = lo.y; s.q[2] = lo.z; s.q[3] = lo.w;
        s.q[4] = hi.x; s.q[5] = hi.y; s.q[6] = hi.z; s.q[7] = hi.w;
    }
    __device__ static float scalar(const uint8_t* row, int64_t i) {
        return __ldg(reinterpret_cast<const float*>(row) + i);
    }
};

struct WeightF16 : BlockShape<8, 16, 16> {
    static constexpr DType kType = DType::F16;
    static constexpr bool kScaled = false, kOffset = false, kTail = true;
    __device__ static int run(int, int r) { return 4 * r; }
    __device__ static void load(const uint8_t* b, int, Slice& s) {
        const uint4 w = __ldg(reinterpret_cast<const uint4*>(b));
        const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            s.q[2 * i] = half_bits_to_float(words[i] & 0xFFFFu);
            s.q[2 * i + 1] = half_bits_to_float(words[i] >> 16);
        }
    }
    __device__ static float scalar(const uint8_t* row, int64_t i) { return ld_half(row + 2 * i); }
};

struct WeightBF16 : BlockShape<8, 16, 16> {
    static constexpr DType kType = DType::BF16;
    static constexpr bool kScaled = false, kOffset = false, kTail = true;
    __device__ static int run(int, int r) { return 4 * r; }
    __device__ static void load(const uint8_t* b, int, Slice& s) {
        const uint4 w = __ldg(reinterpret_cast<const uint4*>(b));
        const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {  // bf16 is the top half of an f32
            s.q[2 * i] = __uint_as_float(words[i] << 16);
            s.q[2 * i + 1] = __uint_as_float(words[i] & 0xFFFF0000u);
        }
    }
    __device__ static float scalar(const uint8_t* row, int64_t i) { return __uint_as_float(ld_u16(row + 2 * i) << 16); }
};

// ---------------------------------------------------------------------------------------------
// 32-element types: 4 slices per block. Slice sl takes qs bytes 4sl..4sl+3: their low nibbles are
// elements 4sl.. (run 0) and their high nibbles elements 16 + 4sl.. (run 1). Q8_0: bytes 8sl..8sl+7.

struct WeightQ4_0 : BlockShape<QK4_0, sizeof(block_q4_0), 2> {
    static constexpr DType kType = DType::Q4_0;
    static constexpr bool kScaled = true, kOffset = false, kTail = false;
    __device__ static int run(int sl, int r) { return 4 * sl + 16 * r; }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // (q - 8) * d
        const float d = ld_half(b);
        const uint32_t qs = ld_u32_a2(b + 2 + 4 * sl);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            s.q[i] = biased<8>(byte_of(qs, i) & 0xF);
            s.q[4 + i] = biased<8>(byte_of(qs, i) >> 4);
        }
        s.scale[0] = s.scale[1] = d;
    }
};

struct WeightQ4_1 : BlockShape<QK4_1, sizeof(block_q4_1), 4> {
    static constexpr DType kType = DType::Q4_1;
    static constexpr bool kScaled = true, kOffset = true, kTail = false;
    __device__ static int run(int sl, int r) { return 4 * sl + 16 * r; }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // q * d + m
        const uint32_t dm = ld_u32(b);
        const uint32_t qs = ld_u32(b + 4 + 4 * sl);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            s.q[i] = biased<0>(byte_of(qs, i) & 0xF);
            s.q[4 + i] = biased<0>(byte_of(qs, i) >> 4);
        }
        s.scale[0] = s.scale[1] = half_bits_to_float(dm & 0xFFFFu);
        s.offset[0] = s.offset[1] = half_bits_to_float(dm >> 16);
    }
};

// Q5_x: bit j of qh is element j's fifth bit, bit j + 16 element (j + 16)'s.
struct WeightQ5_0 : BlockShape<QK5_0, sizeof(block_q5_0), 2> {
    static constexpr DType kType = DType::Q5_0;
    static constexpr bool kScaled = true, kOffset = false, kTail = false;
    __device__ static int run(int sl, int r) { return 4 * sl + 16 * r; }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // (q - 16) * d
        const float d = ld_half(b);
        const uint32_t qh = ld_u32_a2(b + 2);
        const uint32_t qs = ld_u32_a2(b + 6 + 4 * sl);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int j = 4 * sl + i;
            s.q[i] = biased<16>((byte_of(qs, i) & 0xF) | (((qh >> j) & 1u) << 4));
            s.q[4 + i] = biased<16>((byte_of(qs, i) >> 4) | (((qh >> (j + 16)) & 1u) << 4));
        }
        s.scale[0] = s.scale[1] = d;
    }
};

struct WeightQ5_1 : BlockShape<QK5_1, sizeof(block_q5_1), 8> {
    static constexpr DType kType = DType::Q5_1;
    static constexpr bool kScaled = true, kOffset = true, kTail = false;
    __device__ static int run(int sl, int r) { return 4 * sl + 16 * r; }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // q * d + m
        const uint32_t dm = ld_u32(b);
        const uint32_t qh = ld_u32(b + 4);
        const uint32_t qs = ld_u32(b + 8 + 4 * sl);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int j = 4 * sl + i;
            s.q[i] = biased<0>((byte_of(qs, i) & 0xF) | (((qh >> j) & 1u) << 4));
            s.q[4 + i] = biased<0>((byte_of(qs, i) >> 4) | (((qh >> (j + 16)) & 1u) << 4));
        }
        s.scale[0] = s.scale[1] = half_bits_to_float(dm & 0xFFFFu);
        s.offset[0] = s.offset[1] = half_bits_to_float(dm >> 16);
    }
};

struct WeightQ8_0 : BlockShape<QK8_0, sizeof(block_q8_0), 2> {
    static constexpr DType kType = DType::Q8_0;
    static constexpr bool kScaled = true, kOffset = false, kTail = false;
    __device__ static int run(int sl, int r) { return 8 * sl + 4 * r; }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // q * d, q int8
        const float d = ld_half(b);
        // Flipping the sign bit maps int8 q to q + 128 in 0..255.
        const uint32_t w0 = ld_u32_a2(b + 2 + 8 * sl) ^ 0x80808080u;
        const uint32_t w1 = ld_u32_a2(b + 6 + 8 * sl) ^ 0x80808080u;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            s.q[i] = biased<128>(byte_of(w0, i));
            s.q[4 + i] = biased<128>(byte_of(w1, i));
        }
        s.scale[0] = s.scale[1] = d;
    }
};

// ---------------------------------------------------------------------------------------------
// K-quants: 256-element super-blocks, 32 slices each.
//
// Q2_K / Q3_K: per half h (128 values), qs byte 32h + l holds values 128h + 32j + l for j = 0..3 at bit
// shift 2j, with sub-block scale index 8h + 2j + l / 16. Slice sl = 16h + 8jp + g takes bytes 4g..4g+3
// of that half at shifts j = 2jp (run 0) and 2jp + 1 (run 1).

struct WeightQ2_K : BlockShape<QK_K, sizeof(block_q2_K), 4> {
    static constexpr DType kType = DType::Q2_K;
    static constexpr bool kScaled = true, kOffset = true, kTail = false;
    __device__ static int run(int sl, int r) {
        const int g = sl & 7, jp = (sl >> 3) & 1, h = sl >> 4;
        return 128 * h + 32 * (2 * jp + r) + 4 * g;
    }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // d * sc * q - dmin * m
        const int g = sl & 7, jp = (sl >> 3) & 1, h = sl >> 4;
        const uint32_t dd = ld_u32(b + 80);                   // d, dmin
        const uint32_t qs = ld_u32(b + 16 + 32 * h + 4 * g);
        const uint32_t sc4 = ld_u32(b + 8 * h + 4 * jp);      // scales 8h + 2j + part for j = 2jp, 2jp + 1
        const float d = half_bits_to_float(dd & 0xFFFFu), dmin = half_bits_to_float(dd >> 16);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int shift = 2 * (2 * jp + r);
            const uint32_t sc = byte_of(sc4, 2 * r + g / 4);
#pragma unroll
            for (int i = 0; i < 4; ++i) s.q[4 * r + i] = biased<0>((byte_of(qs, i) >> shift) & 3u);
            s.scale[r] = d * float(int(sc & 0xF));
            s.offset[r] = -(dmin * float(int(sc >> 4)));
        }
    }
};

// Q3_K adds a high bit per value in hmask: bit 4h + j of byte l (0..31) for the value above; set means
// the 3-bit level is used as is, clear means 4 is subtracted. Scales: see q3_scale below.
struct WeightQ3_K : BlockShape<QK_K, sizeof(block_q3_K), 2> {
    static constexpr DType kType = DType::Q3_K;
    static constexpr bool kScaled = true, kOffset = false, kTail = false;
    __device__ static int run(int sl, int r) { return WeightQ2_K::run(sl, r); }
    // Sixteen 6-bit scales stored + 32: low nibbles in bytes 0-7 (high nibble for j >= 8), top 2 bits
    // of scale j at bits 2 * (j / 4) of byte 8 + j % 4 (core/quant_k.cpp q3_scale).
    __device__ static int q3_scale(const uint8_t* sc, int j) {
        const uint32_t lo = j < 8 ? (ld_u8(sc + j) & 0xF) : (ld_u8(sc + j - 8) >> 4);
        const uint32_t hi = (ld_u8(sc + 8 + j % 4) >> (2 * (j / 4))) & 3u;
        return int(lo | (hi << 4)) - 32;
    }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // d * scale * (q - 4 * !hbit)
        const int g = sl & 7, jp = (sl >> 3) & 1, h = sl >> 4;
        const float d = ld_half(b + 108);
        const uint32_t hm = ld_u32_a2(b + 4 * g);
        const uint32_t qs = ld_u32_a2(b + 32 + 32 * h + 4 * g);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int j = 2 * jp + r;
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const uint32_t low2 = (byte_of(qs, i) >> (2 * j)) & 3u;
                const uint32_t high = (byte_of(hm, i) >> (4 * h + j)) & 1u;
                s.q[4 * r + i] = biased<4>(low2 | (high << 2));
            }
            s.scale[r] = d * float(q3_scale(b + 96, 8 * h + 2 * j + g / 4));
        }
    }
};

// Q4_K / Q5_K: per 64-value chunk c, qs byte 32c + l holds value 64c + l (low nibble, sub-block 2c) and
// value 64c + 32 + l (high nibble, sub-block 2c + 1). Slice sl = 8c + g takes bytes 4g..4g+3.
// Eight 6-bit scales and mins packed in 12 bytes (core/quant_k.cpp get_scale_min_k4), here as the three
// little-endian words s0 (bytes 0-3), s1 (4-7), s2 (8-11): scale j < 4 is byte j of s0 and min j byte j
// of s1 (low 6 bits); for j >= 4 the low 4 bits are in byte j - 4 of s2 (scale: low nibble, min: high
// nibble) and the top 2 bits in the top bits of byte j - 4 of s0 (scale) and s1 (min).
// The block header (d, dmin, scales: 16 bytes) is read with one 16-byte load; kAlign is 16 for both types.
__device__ __forceinline__ void scale_min_k4(const uint4& head, int j, uint32_t& sc, uint32_t& m) {
    const uint32_t s0 = head.y, s1 = head.z, s2 = head.w;
    if (j < 4) {
        sc = byte_of(s0, j) & 63;
        m = byte_of(s1, j) & 63;
    } else {
        sc = (byte_of(s2, j - 4) & 0xF) | ((byte_of(s0, j - 4) >> 6) << 4);
        m = (byte_of(s2, j - 4) >> 4) | ((byte_of(s1, j - 4) >> 6) << 4);
    }
}

struct WeightQ4_K : BlockShape<QK_K, sizeof(block_q4_K), 16> {
    static constexpr DType kType = DType::Q4_K;
    static constexpr bool kScaled = true, kOffset = true, kTail = false;
    __device__ static int run(int sl, int r) { return 64 * (sl >> 3) + 32 * r + 4 * (sl & 7); }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // d * sc * q - dmin * m
        const int c = sl >> 3, g = sl & 7;
        const uint4 head = __ldg(reinterpret_cast<const uint4*>(b));  // d, dmin, scales
        const uint32_t qs = ld_u32(b + 16 + 32 * c + 4 * g);
        const float d = half_bits_to_float(head.x & 0xFFFFu), dmin = half_bits_to_float(head.x >> 16);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            uint32_t sc, m;
            scale_min_k4(head, 2 * c + r, sc, m);
#pragma unroll
            for (int i = 0; i < 4; ++i) s.q[4 * r + i] = biased<0>((byte_of(qs, i) >> (4 * r)) & 0xF);
            s.scale[r] = d * float(int(sc));
            s.offset[r] = -(dmin * float(int(m)));
        }
    }
};

// Q5_K: the fifth bit of value 64c + l is bit 2c of qh[l], of value 64c + 32 + l bit 2c + 1.
struct WeightQ5_K : BlockShape<QK_K, sizeof(block_q5_K), 16> {
    static constexpr DType kType = DType::Q5_K;
    static constexpr bool kScaled = true, kOffset = true, kTail = false;
    __device__ static int run(int sl, int r) { return WeightQ4_K::run(sl, r); }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {
        const int c = sl >> 3, g = sl & 7;
        const uint4 head = __ldg(reinterpret_cast<const uint4*>(b));  // d, dmin, scales
        const uint32_t qh = ld_u32(b + 16 + 4 * g);
        const uint32_t qs = ld_u32(b + 48 + 32 * c + 4 * g);
        const float d = half_bits_to_float(head.x & 0xFFFFu), dmin = half_bits_to_float(head.x >> 16);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            uint32_t sc, m;
            scale_min_k4(head, 2 * c + r, sc, m);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const uint32_t low4 = (byte_of(qs, i) >> (4 * r)) & 0xF;
                const uint32_t high = (byte_of(qh, i) >> (2 * c + r)) & 1u;
                s.q[4 * r + i] = biased<0>(low4 | (high << 4));
            }
            s.scale[r] = d * float(int(sc));
            s.offset[r] = -(dmin * float(int(m)));
        }
    }
};

// Q6_K: per 128-value chunk c (ql + 64c, qh + 32c, scales + 8c), for l in 0..31:
//   value l      = ql[l] low nibble,      qh[l] bits 0-1, scale l/16
//   value l + 32 = ql[l + 32] low nibble, qh[l] bits 2-3, scale l/16 + 2
//   value l + 64 = ql[l] high nibble,     qh[l] bits 4-5, scale l/16 + 4
//   value l + 96 = ql[l + 32] high nibble, qh[l] bits 6-7, scale l/16 + 6
// Slice sl = 16c + 8w + g takes ql bytes 32w + 4g.. (run 0: low nibbles, run 1: high nibbles) and qh
// bytes 4g.., i.e. values 128c + 32w + 4g.. and 128c + 64 + 32w + 4g...
struct WeightQ6_K : BlockShape<QK_K, sizeof(block_q6_K), 2> {
    static constexpr DType kType = DType::Q6_K;
    static constexpr bool kScaled = true, kOffset = false, kTail = false;
    __device__ static int run(int sl, int r) {
        const int c = sl >> 4, w = (sl >> 3) & 1, g = sl & 7;
        return 128 * c + 64 * r + 32 * w + 4 * g;
    }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // d * sc * (q - 32)
        const int c = sl >> 4, w = (sl >> 3) & 1, g = sl & 7;
        const float d = ld_half(b + 208);
        const uint32_t ql = ld_u32_a2(b + 64 * c + 32 * w + 4 * g);
        const uint32_t qh = ld_u32_a2(b + 128 + 32 * c + 4 * g);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const uint32_t low4 = (byte_of(ql, i) >> (4 * r)) & 0xF;
                const uint32_t high2 = (byte_of(qh, i) >> (2 * w + 4 * r)) & 3u;
                s.q[4 * r + i] = biased<32>(low4 | (high2 << 4));
            }
            s.scale[r] = d * float(ld_i8(b + 192 + 8 * c + g / 4 + 2 * w + 4 * r));
        }
    }
};

// ---------------------------------------------------------------------------------------------
// 4-bit grid types: q is the grid level a nibble names (kIQ4Grid, kMXFP4Grid), taken from the packed words of
// cuda_convert.cuh; nibbles are laid out as Q4_0's (slice sl: qs bytes 4sl..4sl+3 of a 32-value group, low
// nibbles run 0, high nibbles run 1).

__device__ __forceinline__ float iq4_level(uint32_t nibble) {
    return biased<128>(conv::grid_biased(conv::kIQ4GridLo, conv::kIQ4GridHi, nibble));
}
__device__ __forceinline__ float mxfp4_level(uint32_t nibble) {
    return biased<128>(conv::grid_biased(conv::kMXFP4GridLo, conv::kMXFP4GridHi, nibble));
}

struct WeightIQ4_NL : BlockShape<QK4_NL, sizeof(block_iq4_nl), 2> {
    static constexpr DType kType = DType::IQ4_NL;
    static constexpr bool kScaled = true, kOffset = false, kTail = false;
    __device__ static int run(int sl, int r) { return 4 * sl + 16 * r; }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // d * level
        const float d = ld_half(b);
        const uint32_t qs = ld_u32_a2(b + 2 + 4 * sl);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            s.q[i] = iq4_level(byte_of(qs, i) & 0xF);
            s.q[4 + i] = iq4_level(byte_of(qs, i) >> 4);
        }
        s.scale[0] = s.scale[1] = d;
    }
};

// IQ4_XS: 8 groups of 32 per super-block, group g's 16 bytes at 8 + 16g; slice sl = 4g + w takes bytes 4w..4w+3
// of group g. The 8-byte header (d, scales_h, scales_l) is one aligned pair of words (kAlign 8).
struct WeightIQ4_XS : BlockShape<QK_K, sizeof(block_iq4_xs), 8> {
    static constexpr DType kType = DType::IQ4_XS;
    static constexpr bool kScaled = true, kOffset = false, kTail = false;
    __device__ static int run(int sl, int r) { return 32 * (sl >> 2) + 16 * r + 4 * (sl & 3); }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // d * (ls - 32) * level
        const int g = sl >> 2, w = sl & 3;
        const uint32_t head = ld_u32(b);        // d | scales_h << 16
        const uint32_t low = ld_u32(b + 4);     // scales_l[0..3]
        const uint32_t qs = ld_u32(b + 8 + 16 * g + 4 * w);
        const uint32_t ls = ((byte_of(low, g / 2) >> (4 * (g % 2))) & 0xFu) | (((head >> (16 + 2 * g)) & 3u) << 4);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            s.q[i] = iq4_level(byte_of(qs, i) & 0xF);
            s.q[4 + i] = iq4_level(byte_of(qs, i) >> 4);
        }
        s.scale[0] = s.scale[1] = __fmul_rn(half_bits_to_float(head & 0xFFFFu), float(int(ls) - 32));
    }
};

// MXFP4: 17-byte blocks, so nothing past a byte is aligned (kAlign 1): the nibbles are read byte by byte.
struct WeightMXFP4 : BlockShape<QK_MXFP4, sizeof(block_mxfp4), 1> {
    static constexpr DType kType = DType::MXFP4;
    static constexpr bool kScaled = true, kOffset = false, kTail = false;
    __device__ static int run(int sl, int r) { return 4 * sl + 16 * r; }
    __device__ static void load(const uint8_t* b, int sl, Slice& s) {  // level * 2^(e - 128)
        const float d = conv::mxfp4_scale(ld_u8(b));
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t q = ld_u8(b + 1 + 4 * sl + i);
            s.q[i] = mxfp4_level(q & 0xF);
            s.q[4 + i] = mxfp4_level(q >> 4);
        }
        s.scale[0] = s.scale[1] = d;
    }
};

// The reference value of element i (0..7) of a slice, bit for bit (no fused multiply-add).
template <class Q>
__device__ __forceinline__ float dequant_value(const Slice& s, int i) {
    if constexpr (!Q::kScaled) return s.q[i];
    const float v = __fmul_rn(s.q[i], s.scale[i / 4]);
    if constexpr (Q::kOffset) return __fadd_rn(v, s.offset[i / 4]);
    return v;
}

// Calls f.template operator()<WeightX>() for a weight type the kernels handle; false for the others.
template <class F>
bool dispatch_weight_type(DType t, F&& f) {
    switch (t) {
        case DType::F32: f.template operator()<WeightF32>(); return true;
        case DType::F16: f.template operator()<WeightF16>(); return true;
        case DType::BF16: f.template operator()<WeightBF16>(); return true;
        case DType::Q4_0: f.template operator()<WeightQ4_0>(); return true;
        case DType::Q4_1: f.template operator()<WeightQ4_1>(); return true;
        case DType::Q5_0: f.template operator()<WeightQ5_0>(); return true;
        case DType::Q5_1: f.template operator()<WeightQ5_1>(); return true;
        case DType::Q8_0: f.template operator()<WeightQ8_0>(); return true;
        case DType::Q2_K: f.template operator()<WeightQ2_K>(); return true;
        case DType::Q3_K: f.template operator()<WeightQ3_K>(); return true;
        case DType::Q4_K: f.template operator()<WeightQ4_K>(); return true;
        case DType::Q5_K: f.template operator()<WeightQ5_K>(); return true;
        case DType::Q6_K: f.template operator()<WeightQ6_K>(); return true;
        case DType::IQ4_NL: f.template operator()<WeightIQ4_NL>(); return true;
        case DType::IQ4_XS: f.template operator()<WeightIQ4_XS>(); return true;
        case DType::MXFP4: f.template operator()<WeightMXFP4>(); return true;
        default: return false;
    }
}

}  // namespace tessera::cuda::mm
