#include "core/types.h"

#include <cctype>
#include <cstring>

#include "core/error.h"
#include "core/quant.h"

namespace tessera {

namespace {

void f32_to_float(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * 4); }
void f32_from_float(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, size_t(n) * 4); }
void f16_to_float(const void* src, float* dst, int64_t n) {
    auto* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
}
void f16_from_float(const float* src, void* dst, int64_t n) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_fp16(src[i]);
}
void bf16_to_float(const void* src, float* dst, int64_t n) {
    auto* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
}
void bf16_from_float(const float* src, void* dst, int64_t n) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_bf16(src[i]);
}

struct Entry {
    DType type;
    TypeTraits traits;
};

// clang-format off
const Entry kTable[] = {
    {DType::F32,  {"f32",  1,     4,                  false, f32_to_float,        f32_from_float}},
    {DType::F16,  {"f16",  1,     2,                  false, f16_to_float,        f16_from_float}},
    {DType::BF16, {"bf16", 1,     2,                  false, bf16_to_float,       bf16_from_float}},
    {DType::Q4_0, {"q4_0", QK4_0, sizeof(block_q4_0), true,  dequantize_row_q4_0, quantize_row_q4_0}},
    {DType::Q4_1, {"q4_1", QK4_1, sizeof(block_q4_1), true,  dequantize_row_q4_1, quantize_row_q4_1}},
    {DType::Q5_0, {"q5_0", QK5_0, sizeof(block_q5_0), true,  dequantize_row_q5_0, quantize_row_q5_0}},
    {DType::Q5_1, {"q5_1", QK5_1, sizeof(block_q5_1), true,  dequantize_row_q5_1, quantize_row_q5_1}},
    {DType::Q8_0, {"q8_0", QK8_0, sizeof(block_q8_0), true,  dequantize_row_q8_0, quantize_row_q8_0}},
    {DType::Q8_1, {"q8_1", QK8_1, sizeof(block_q8_1), true,  dequantize_row_q8_1, quantize_row_q8_1}},
    {DType::Q2_K, {"q2_K", QK_K,  sizeof(block_q2_K), true,  dequantize_row_q2_K, quantize_row_q2_K}},
    {DType::Q3_K, {"q3_K", QK_K,  sizeof(block_q3_K), true,  dequantize_row_q3_K, quantize_row_q3_K}},
    {DType::Q4_K, {"q4_K", QK_K,  sizeof(block_q4_K), true,  dequantize_row_q4_K, quantize_row_q4_K}},
    {DType::Q5_K, {"q5_K", QK_K,  sizeof(block_q5_K), true,  dequantize_row_q5_K, quantize_row_q5_K}},
    {DType::Q6_K, {"q6_K", QK_K,  sizeof(block_q6_K), true,  dequantize_row_q6_K, quantize_row_q6_K}},
    {DType::Q8_K, {"q8_K", QK_K,  sizeof(block_q8_K), true,  dequantize_row_q8_K, quantize_row_q8_K}},
    {DType::IQ4_NL, {"iq4_nl", QK4_NL, sizeof(block_iq4_nl), true, dequantize_row_iq4_nl, quantize_row_iq4_nl}},
    {DType::IQ4_XS, {"iq4_xs", QK_K, sizeof(block_iq4_xs), true, dequantize_row_iq4_xs, quantize_row_iq4_xs}},
    {DType::MXFP4,  {"mxfp4",  QK_MXFP4, sizeof(block_mxfp4), true, dequantize_row_mxfp4, quantize_row_mxfp4}},
    {DType::I8,   {"i8",   1,     1,                  false, nullptr,             nullptr}},
    {DType::I16,  {"i16",  1,     2,                  false, nullptr,             nullptr}},
    {DType::I32,  {"i32",  1,     4,                  false, nullptr,             nullptr}},
    {DType::I64,  {"i64",  1,     8,                  false, nullptr,             nullptr}},
    {DType::F64,  {"f64",  1,     8,                  false, nullptr,             nullptr}},
};
// clang-format on

const Entry* find(DType t) {
    for (const auto& e : kTable)
        if (e.type == t) return &e;
    return nullptr;
}

}  // namespace

bool is_known_type_id(uint32_t id) { return find(static_cast<DType>(id)) != nullptr; }

const TypeTraits& type_traits(DType t) {
    const Entry* e = find(t);
    TESSERA_CHECK(e != nullptr, "unknown tensor type id %u", static_cast<uint32_t>(t));
    return e->traits;
}

const char* type_name(DType t) {
    const Entry* e = find(t);
    return e ? e->traits.name : "unknown";
}

DType type_from_name(const std::string& name) {
    for (const auto& e : kTable)
        if (strcasecmp(e.traits.name, name.c_str()) == 0) return e.type;
    throw Error("unknown type name '" + name + "'");
}

size_t row_bytes(DType t, int64_t n) {
    const TypeTraits& tr = type_traits(t);
    TESSERA_CHECK(n >= 0 && n % tr.block_size == 0, "row of %lld elements is not a multiple of %s's block size %lld",
                  static_cast<long long>(n), tr.name, static_cast<long long>(tr.block_size));
    uint64_t blocks = uint64_t(n / tr.block_size);
    uint64_t bytes = 0;
    TESSERA_CHECK(!__builtin_mul_overflow(blocks, uint64_t(tr.block_bytes), &bytes),
                  "row of %lld %s elements overflows 64 bits", static_cast<long long>(n), tr.name);
    return size_t(bytes);
}

// binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) {  // Inf or NaN: keep NaN quiet and non-zero
        return uint16_t(sign | 0x7c00u | (abs > 0x7f800000u ? 0x0200u | ((abs >> 13) & 0x3ffu) : 0u));
    }
    if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: overflow to Inf
    if (abs < 0x38800000u) {                                 // result is subnormal or zero
        if (abs < 0x33000000u) return uint16_t(sign);         // below half the smallest subnormal
        const uint32_t exp = abs >> 23;
        const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - exp;  // 14..24: bits dropped to reach 2^-24 units
        uint32_t q = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) ++q;
        return uint16_t(sign | q);
    }
    uint32_t h = ((abs - 0x38000000u) >> 13);  // rebias exponent 127 -> 15
    const uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carry into exponent is correct
    return uint16_t(sign | h);
}

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0x1f) {
        x = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        x = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        x = sign;
    } else {  // subnormal: normalize
        uint32_t e = 113;
        while ((mant & 0x400u) == 0) {
            mant <<= 1;
            --e;
        }
        x = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

uint16_t fp32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
    x += 0x7fffu + ((x >> 16) & 1u);
    return uint16_t(x >> 16);
}

float bf16_to_fp32(uint16_t h) {
    uint32_t x = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

}  // namespace tessera
