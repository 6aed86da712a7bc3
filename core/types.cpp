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

}  // namespace tessera
