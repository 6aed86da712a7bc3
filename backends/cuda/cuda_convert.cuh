// Element conversions shared by the CUDA op files, written to give exactly the floats and bytes core
// gives on the host: f16 / bf16 <-> f32 with core's own functions (core/half.h), single elements of
// the quantized types dequantized with core's expressions in core's order (quant.cpp, quant_k.cpp), and
// one Q8_0 block quantized like quantize_row_q8_0.
//
// core compiles its quant code with contraction off: every multiply and add rounds on its own. nvcc
// would fuse a * b + c into one FMA (one rounding), so the arithmetic here goes through mul_rn/add_rn/
// sub_rn/div_rn, which are the non-contractible __f*_rn intrinsics on the device.
//
// Everything is __host__ __device__ so the conversions can be checked against core on a machine without a
// GPU (compile with -ffp-contract=off on the host side to keep the host path unfused too).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/half.h"
#include "core/quant.h"
#include "core/tensor.h"
#include "core/types.h"

namespace tessera::cuda::conv {

#define TESSERA_HD __host__ __device__ inline

// ---- bits and unfused arithmetic ----

TESSERA_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
TESSERA_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
TESSERA_HD float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
TESSERA_HD float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

// Little-endian loads from byte pointers: quant blocks and strided views need not be 2- or 4-aligned.
TESSERA_HD uint16_t load_u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
TESSERA_HD uint32_t load_u32(const uint8_t* p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// ---- types handled element-wise on the device ----

TESSERA_HD bool is_plain_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Quantized types whose single elements dequantize_element() reads.
TESSERA_HD bool is_dequantizable(DType t) {
    switch (t) {
        case DType::Q4_0:
        case DType::Q4_1:
        case DType::Q5_0:
        case DType::Q5_1:
        case DType::Q8_0:
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K:
        case DType::IQ4_NL:
        case DType::IQ4_XS:
        case DType::MXFP4:
            return true;
        default:
            return false;
    }
}

// One plain-float element at p (F32, F16 or BF16; p aligned to the element size).
TESSERA_HD float load_plain(DType t, const void* p) {
    switch (t) {
        case DType::F16: return fp16_to_fp32(*static_cast<const uint16_t*>(p));
        case DType::BF16: return bf16_to_fp32(*static_cast<const uint16_t*>(p));
        default: return *static_cast<const float*>(p);
    }
}

TESSERA_HD void store_plain(DType t, void* p, float v) {
    switch (t) {
        case DType::F16: *static_cast<uint16_t*>(p) = fp32_to_fp16(v); break;
        case DType::BF16: *static_cast<uint16_t*>(p) = fp32_to_bf16(v); break;
        default: *static_cast<float*>(p) = v; break;
    }
}

// ---- single quantized elements: element j of the block at p ----

// Q4_0 / Q4_1: byte j % 16 holds element j (j < 16) in its low nibble, element j (j >= 16) in its high one.
TESSERA_HD int nibble32(const uint8_t* qs, int j) { return j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4); }

TESSERA_HD float dq_q4_0(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_q4_0, d)));
    const int x = nibble32(p + offsetof(block_q4_0, qs), j) - 8;
    return mul_rn(float(x), d);
}

TESSERA_HD float dq_q4_1(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_q4_1, d)));
    const float m = fp16_to_fp32(load_u16(p + offsetof(block_q4_1, m)));
    const int x = nibble32(p + offsetof(block_q4_1, qs), j);
    return add_rn(mul_rn(float(x), d), m);
}

// Q5_*: bit j of the little-endian qh is element j's fifth bit.
TESSERA_HD float dq_q5_0(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_q5_0, d)));
    const uint32_t qh = load_u32(p + offsetof(block_q5_0, qh));
    const int x = (nibble32(p + offsetof(block_q5_0, qs), j) | int(((qh >> j) & 1u) << 4)) - 16;
    return mul_rn(float(x), d);
}

TESSERA_HD float dq_q5_1(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_q5_1, d)));
    const float m = fp16_to_fp32(load_u16(p + offsetof(block_q5_1, m)));
    const uint32_t qh = load_u32(p + offsetof(block_q5_1, qh));
    const int x = nibble32(p + offsetof(block_q5_1, qs), j) | int(((qh >> j) & 1u) << 4);
    return add_rn(mul_rn(float(x), d), m);
}

TESSERA_HD float dq_q8_0(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_q8_0, d)));
    const int x = int8_t(p[offsetof(block_q8_0, qs) + j]);
    return mul_rn(float(x), d);
}

// K-quants: element j of a 256 super-block. Q2_K / Q3_K order: j = 128 h + 32 s + 16 part + l, where h
// picks the 32-byte half of qs, s the 2-bit shift (2 s), part and l the byte within the half
// (byte 16 part + l); sub-block scale index 8 h + 2 s + part.
TESSERA_HD float dq_q2_K(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_q2_K, d)));
    const float mn = fp16_to_fp32(load_u16(p + offsetof(block_q2_K, dmin)));
    const int h = j >> 7, s = (j >> 5) & 3, w = j & 31;
    const uint8_t sc = p[offsetof(block_q2_K, scales) + 8 * h + 2 * s + (w >> 4)];
    const float dl = mul_rn(d, float(sc & 0xF)), ml = mul_rn(mn, float(sc >> 4));
    const int q = (p[offsetof(block_q2_K, qs) + 32 * h + w] >> (2 * s)) & 3;
    return sub_rn(mul_rn(dl, float(q)), ml);
}

// Q3_K's sixteen 6-bit scales (stored + 32) in 12 bytes, as core's q3_scale.
TESSERA_HD int q3_scale(const uint8_t* sc, int k) {
    const int lo = k < 8 ? (sc[k] & 0xF) : (sc[k - 8] >> 4);
    const int hi = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

TESSERA_HD float dq_q3_K(const uint8_t* p, int j) {
    const float d_all = fp16_to_fp32(load_u16(p + offsetof(block_q3_K, d)));
    const int h = j >> 7, s = (j >> 5) & 3, w = j & 31;
    const float dl = mul_rn(d_all, float(q3_scale(p + offsetof(block_q3_K, scales), 8 * h + 2 * s + (w >> 4))));
    const int low = (p[offsetof(block_q3_K, qs) + 32 * h + w] >> (2 * s)) & 3;
    const int mask = 1 << (4 * h + s);  // hmask bit for this (half, shift); byte w of hmask
    const int q = low - ((p[offsetof(block_q3_K, hmask) + w] & mask) ? 0 : 4);
    return mul_rn(dl, float(q));
}

// Q4_K / Q5_K scale and min k of 8, as core's get_scale_min_k4.
TESSERA_HD void scale_min_k4(int k, const uint8_t* q, int* sc, int* m) {
    if (k < 4) {
        *sc = q[k] & 63;
        *m = q[k + 4] & 63;
    } else {
        *sc = (q[k + 4] & 0xF) | ((q[k - 4] >> 6) << 4);
        *m = (q[k + 4] >> 4) | ((q[k] >> 6) << 4);
    }
}

// Q4_K / Q5_K order: j = 64 c + 32 hi + l: byte 32 c + l of qs, low nibble (hi = 0) or high (hi = 1),
// sub-block 2 c + hi.
TESSERA_HD float dq_q4_K(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_q4_K, d)));
    const float mn = fp16_to_fp32(load_u16(p + offsetof(block_q4_K, dmin)));
    const int c = j >> 6, hi = (j >> 5) & 1, l = j & 31;
    int sc, m;
    scale_min_k4(2 * c + hi, p + offsetof(block_q4_K, scales), &sc, &m);
    const float d1 = mul_rn(d, float(sc)), m1 = mul_rn(mn, float(m));
    const uint8_t byte = p[offsetof(block_q4_K, qs) + 32 * c + l];
    const int q = hi ? (byte >> 4) : (byte & 0xF);
    return sub_rn(mul_rn(d1, float(q)), m1);
}

// Q5_K: as Q4_K, plus bit 2 c + hi of qh[l] is the fifth bit.
TESSERA_HD float dq_q5_K(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_q5_K, d)));
    const float mn = fp16_to_fp32(load_u16(p + offsetof(block_q5_K, dmin)));
    const int c = j >> 6, hi = (j >> 5) & 1, l = j & 31;
    int sc, m;
    scale_min_k4(2 * c + hi, p + offsetof(block_q5_K, scales), &sc, &m);
    const float d1 = mul_rn(d, float(sc)), m1 = mul_rn(mn, float(m));
    const uint8_t byte = p[offsetof(block_q5_K, qs) + 32 * c + l];
    const int high = (p[offsetof(block_q5_K, qh) + l] >> (2 * c + hi)) & 1;
    const int q = (hi ? (byte >> 4) : (byte & 0xF)) + 16 * high;
    return sub_rn(mul_rn(d1, float(q)), m1);
}

// Q6_K: j = 128 n + 32 k + l: ql byte 64 n + 32 (k & 1) + l (low nibble for k < 2), qh byte 32 n + l at
// shift 2 k, scale 8 n + 2 k + l / 16; value d * scale * (q - 32).
TESSERA_HD float dq_q6_K(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_q6_K, d)));
    const int n = j >> 7, k = (j >> 5) & 3, l = j & 31;
    const uint8_t qlb = p[offsetof(block_q6_K, ql) + 64 * n + 32 * (k & 1) + l];
    const int low = k >= 2 ? (qlb >> 4) : (qlb & 0xF);
    const int high = (p[offsetof(block_q6_K, qh) + 32 * n + l] >> (2 * k)) & 3;
    const int q = int(int8_t(low | (high << 4))) - 32;
    const int sc = int8_t(p[offsetof(block_q6_K, scales) + 8 * n + 2 * k + l / 16]);
    return mul_rn(mul_rn(d, float(sc)), float(q));
}

// ---- 4-bit grid types (IQ4_NL, IQ4_XS, MXFP4): a nibble indexes a 16-level int8 grid ----

// A grid as two little-endian words of 8 bytes, byte i holding level i + 128 (0..255): device code takes a
// level with a shift and a mask instead of a load from a table (host arrays are not visible there).
constexpr uint64_t pack_grid_biased(const int8_t (&grid)[16], int first) {
    uint64_t w = 0;
    for (int i = 0; i < 8; ++i) w |= uint64_t(uint8_t(grid[first + i] + 128)) << (8 * i);
    return w;
}
constexpr uint64_t kIQ4GridLo = pack_grid_biased(kIQ4Grid, 0), kIQ4GridHi = pack_grid_biased(kIQ4Grid, 8);
constexpr uint64_t kMXFP4GridLo = pack_grid_biased(kMXFP4Grid, 0), kMXFP4GridHi = pack_grid_biased(kMXFP4Grid, 8);

// Level q (0..15) + 128 of a packed grid.
TESSERA_HD uint32_t grid_biased(uint64_t lo, uint64_t hi, uint32_t q) {
    return uint32_t(((q < 8 ? lo : hi) >> (8 * (q & 7))) & 0xFFu);
}
TESSERA_HD int iq4_level(uint32_t q) { return int(grid_biased(kIQ4GridLo, kIQ4GridHi, q)) - 128; }
TESSERA_HD int mxfp4_level(uint32_t q) { return int(grid_biased(kMXFP4GridLo, kMXFP4GridHi, q)) - 128; }

// 2^(e - 128) from its bits, as core's mxfp4_half_scale (subnormal for e < 2).
TESSERA_HD float mxfp4_scale(uint32_t e) { return half_detail::float_of(e < 2 ? 0x00200000u << e : (e - 1) << 23); }

TESSERA_HD float dq_iq4_nl(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_iq4_nl, d)));
    return mul_rn(d, float(iq4_level(uint32_t(nibble32(p + offsetof(block_iq4_nl, qs), j)))));
}

// IQ4_XS: element j of a super-block is in group j / 32 (6-bit scale ls, stored + 32), nibble j % 32 of its 16 bytes.
TESSERA_HD float dq_iq4_xs(const uint8_t* p, int j) {
    const float d = fp16_to_fp32(load_u16(p + offsetof(block_iq4_xs, d)));
    const int g = j >> 5;
    const uint32_t sh = load_u16(p + offsetof(block_iq4_xs, scales_h));
    const int ls = ((p[offsetof(block_iq4_xs, scales_l) + g / 2] >> (4 * (g % 2))) & 0xF) | (int((sh >> (2 * g)) & 3u) << 4);
    const float dl = mul_rn(d, float(ls - 32));
    return mul_rn(dl, float(iq4_level(uint32_t(nibble32(p + offsetof(block_iq4_xs, qs) + 16 * g, j & 31)))));
}

TESSERA_HD float dq_mxfp4(const uint8_t* p, int j) {
    const float d = mxfp4_scale(p[offsetof(block_mxfp4, e)]);
    return mul_rn(float(mxfp4_level(uint32_t(nibble32(p + offsetof(block_mxfp4, qs), j)))), d);
}

// Element i0 of a row of type t starting at `row` (quantized rows are whole blocks back to back).
TESSERA_HD float dequantize_element(DType t, const uint8_t* row, int64_t i0) {
    switch (t) {
        case DType::Q4_0: return dq_q4_0(row + (i0 / QK4_0) * sizeof(block_q4_0), int(i0 % QK4_0));
        case DType::Q4_1: return dq_q4_1(row + (i0 / QK4_1) * sizeof(block_q4_1), int(i0 % QK4_1));
        case DType::Q5_0: return dq_q5_0(row + (i0 / QK5_0) * sizeof(block_q5_0), int(i0 % QK5_0));
        case DType::Q5_1: return dq_q5_1(row + (i0 / QK5_1) * sizeof(block_q5_1), int(i0 % QK5_1));
        case DType::Q8_0: return dq_q8_0(row + (i0 / QK8_0) * sizeof(block_q8_0), int(i0 % QK8_0));
        case DType::Q2_K: return dq_q2_K(row + (i0 / QK_K) * sizeof(block_q2_K), int(i0 % QK_K));
        case DType::Q3_K: return dq_q3_K(row + (i0 / QK_K) * sizeof(block_q3_K), int(i0 % QK_K));
        case DType::Q4_K: return dq_q4_K(row + (i0 / QK_K) * sizeof(block_q4_K), int(i0 % QK_K));
        case DType::Q5_K: return dq_q5_K(row + (i0 / QK_K) * sizeof(block_q5_K), int(i0 % QK_K));
        case DType::Q6_K: return dq_q6_K(row + (i0 / QK_K) * sizeof(block_q6_K), int(i0 % QK_K));
        case DType::IQ4_NL: return dq_iq4_nl(row + (i0 / QK4_NL) * sizeof(block_iq4_nl), int(i0 % QK4_NL));
        case DType::IQ4_XS: return dq_iq4_xs(row + (i0 / QK_K) * sizeof(block_iq4_xs), int(i0 % QK_K));
        case DType::MXFP4: return dq_mxfp4(row + (i0 / QK_MXFP4) * sizeof(block_mxfp4), int(i0 % QK_MXFP4));
        default: return 0.0f;  // not reached: callers accept only is_dequantizable types
    }
}

// ---- Q8_0 quantization, byte for byte as core's quantize_row_q8_0 ----
// d = amax / 127 (stored as f16), q = round-half-away(x * (1 / d)), using the unrounded f32 d.
TESSERA_HD void quantize_block_q8_0(const float* x, uint8_t* out) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) {
        const float a = x[j] < 0.0f ? -x[j] : x[j];
        if (amax < a) amax = a;  // std::max(amax, a): keeps amax unless a is larger (NaN never wins)
    }
    const float d = div_rn(amax, 127.0f);
    const float id = d != 0.0f ? div_rn(1.0f, d) : 0.0f;
    const uint16_t dh = fp32_to_fp16(d);
    out[offsetof(block_q8_0, d)] = uint8_t(dh & 0xFF);
    out[offsetof(block_q8_0, d) + 1] = uint8_t(dh >> 8);
    for (int j = 0; j < QK8_0; ++j)
        out[offsetof(block_q8_0, qs) + j] = uint8_t(int8_t(int(roundf(mul_rn(x[j], id)))));
}

// ---- coordinates ----

// Element k of the logical order (i0 fastest) of a tensor with dims ne -> its 4 indices.
TESSERA_HD void unravel(int64_t k, const int64_t* ne, int64_t* i) {
    i[0] = k % ne[0];
    k /= ne[0];
    i[1] = k % ne[1];
    k /= ne[1];
    i[2] = k % ne[2];
    i[3] = k / ne[2];
}

TESSERA_HD int64_t byte_offset(const int64_t* nb, const int64_t* i) {
    return i[0] * nb[0] + i[1] * nb[1] + i[2] * nb[2] + i[3] * nb[3];
}

#undef TESSERA_HD

// True when every stride that is ever stepped (ne > 1), and the data pointer once assigned, is a multiple
// of `align` bytes: kernels then load elements of that size directly.
inline bool aligned_for(const Tensor& t, size_t align) {
    for (int i = 0; i < kMaxDims; ++i)
        if (t.ne[i] > 1 && t.nb[i] % align != 0) return false;
    return t.data == nullptr || reinterpret_cast<uintptr_t>(t.data) % align == 0;
}

}  // namespace tessera::cuda::conv
