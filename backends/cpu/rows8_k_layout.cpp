// The interleaved-rows K-quant layout (see rows8_k_layout.h): repack and its inverse, one byte map for both.
#include "backends/cpu/rows8_k_layout.h"

#include <cstddef>
#include <cstring>
#include <iterator>

#include "core/error.h"
#include "core/quant.h"
#include "core/types.h"

namespace tessera::cpu::rows8_k_layout {

namespace {

// One field of a GGUF block and where the eight rows' copies of it go in a record.
struct Field {
    size_t src;     // offset in the GGUF block
    size_t bytes;   // its length per row
    size_t dst;     // offset of the eight rows' copies in the record
    bool scalar;    // 2 bytes (an fp16 or uint16: row n at dst + 2n), else interleaved by 4-byte chunks
};

constexpr Field kQ4K[] = {
    {offsetof(block_q4_K, d), 2, 0, true},
    {offsetof(block_q4_K, dmin), 2, kQ4KDmin, true},
    {offsetof(block_q4_K, scales), K_SCALE_SIZE, kQ4KScales, false},
    {offsetof(block_q4_K, qs), QK_K / 2, kQ4KQs, false},
};
constexpr Field kQ5K[] = {
    {offsetof(block_q5_K, d), 2, 0, true},
    {offsetof(block_q5_K, dmin), 2, kQ4KDmin, true},
    {offsetof(block_q5_K, scales), K_SCALE_SIZE, kQ4KScales, false},
    {offsetof(block_q5_K, qh), QK_K / 8, kQ5KQh, false},
    {offsetof(block_q5_K, qs), QK_K / 2, kQ5KQs, false},
};
constexpr Field kQ6K[] = {
    {offsetof(block_q6_K, d), 2, 0, true},
    {offsetof(block_q6_K, scales), QK_K / 16, kQ6KScales, false},
    {offsetof(block_q6_K, ql), QK_K / 2, kQ6KQl, false},
    {offsetof(block_q6_K, qh), QK_K / 4, kQ6KQh, false},
};

constexpr Field kQ2K[] = {
    {offsetof(block_q2_K, d), 2, 0, true},
    {offsetof(block_q2_K, dmin), 2, kQ2KDmin, true},
    {offsetof(block_q2_K, scales), QK_K / 16, kQ2KScales, false},
    {offsetof(block_q2_K, qs), QK_K / 4, kQ2KQs, false},
};
constexpr Field kQ3K[] = {
    {offsetof(block_q3_K, d), 2, 0, true},
    {offsetof(block_q3_K, scales), K_SCALE_SIZE, kQ3KScales, false},
    {offsetof(block_q3_K, hmask), QK_K / 8, kQ3KHmask, false},
    {offsetof(block_q3_K, qs), QK_K / 4, kQ3KQs, false},
};
constexpr Field kIQ4XS[] = {
    {offsetof(block_iq4_xs, d), 2, 0, true},
    {offsetof(block_iq4_xs, scales_h), 2, kIQ4XSScalesH, true},
    {offsetof(block_iq4_xs, scales_l), QK_K / 64, kIQ4XSScalesL, false},
    {offsetof(block_iq4_xs, qs), QK_K / 2, kIQ4XSQs, false},
};

struct Fields {
    const Field* begin;
    const Field* end;
};
Fields fields_of(DType t) {
    if (t == DType::Q4_K) return {std::begin(kQ4K), std::end(kQ4K)};
    if (t == DType::Q5_K) return {std::begin(kQ5K), std::end(kQ5K)};
    if (t == DType::IQ4_XS) return {std::begin(kIQ4XS), std::end(kIQ4XS)};
    if (t == DType::Q3_K) return {std::begin(kQ3K), std::end(kQ3K)};
    if (t == DType::Q2_K) return {std::begin(kQ2K), std::end(kQ2K)};
    return {std::begin(kQ6K), std::end(kQ6K)};
}

void check_shape(DType t, int64_t rows, int64_t k) {
    TESSERA_CHECK(repackable(t), "rows8 K-quant repack: type %s has no interleaved-rows layout (only Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS)",
                  type_name(t));
    TESSERA_CHECK(rows > 0 && k > 0 && k % kBlockValues == 0,
                  "rows8 K-quant repack: %lld rows of %lld values (k must be a positive multiple of 256)",
                  (long long)rows, (long long)k);
}

// Calls copy(record offset, real row, offset in that row, bytes) for every piece of every real row: an fp16
// (2 bytes, row n at dst + 2n) or a 4-byte chunk j of an interleaved field (at dst + 32 j + 4n). Every field's
// length is a multiple of 4, so pieces never straddle a chunk.
template <class Copy>
void for_each_piece(DType t, int64_t rows, int64_t k, Copy copy) {
    check_shape(t, rows, k);
    const int64_t nb = k / kBlockValues, strips = (rows + kStripRows - 1) / kStripRows;
    const size_t rec = record_bytes(t), block = type_traits(t).block_bytes;
    const Fields fs = fields_of(t);
    for (int64_t p = 0; p < strips; ++p)
        for (int64_t b = 0; b < nb; ++b) {
            const size_t r = size_t(p * nb + b) * rec;
            for (int n = 0; n < kStripRows && p * kStripRows + n < rows; ++n)
                for (const Field* f = fs.begin; f != fs.end; ++f) {
                    const size_t g = size_t(b) * block + f->src;
                    if (f->scalar) {
                        copy(r + f->dst + 2 * size_t(n), p * kStripRows + n, g, size_t(2));
                        continue;
                    }
                    for (size_t j = 0; j < f->bytes; j += 4)
                        copy(r + f->dst + 8 * j + 4 * size_t(n), p * kStripRows + n, g + j, size_t(4));
                }
        }
}

}  // namespace

bool repackable(DType t) {
    return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K || t == DType::IQ4_XS;
}

size_t record_bytes(DType t) { return kStripRows * type_traits(t).block_bytes; }

size_t packed_bytes(DType t, int64_t rows, int64_t k) {
    const int64_t strips = (rows + kStripRows - 1) / kStripRows;
    return size_t(strips) * size_t(k / kBlockValues) * record_bytes(t);
}

void repack(DType t, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst) {
    check_shape(t, rows, k);
    auto* d = static_cast<uint8_t*>(dst);
    const auto* s = static_cast<const uint8_t*>(src);
    if (rows % kStripRows) {  // a last partial strip: its padding rows are every byte 0 (d = 0: they add nothing)
        const size_t strip = size_t(k / kBlockValues) * record_bytes(t);
        std::memset(d + size_t(rows / kStripRows) * strip, 0, strip);
    }
    for_each_piece(t, rows, k, [&](size_t rec, int64_t row, size_t off, size_t bytes) {
        std::memcpy(d + rec, s + size_t(row) * src_row_stride + off, bytes);
    });
}

void unpack(DType t, const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride) {
    auto* d = static_cast<uint8_t*>(dst);
    const auto* s = static_cast<const uint8_t*>(src);
    for_each_piece(t, rows, k, [&](size_t rec, int64_t row, size_t off, size_t bytes) {
        std::memcpy(d + size_t(row) * dst_row_stride + off, s + rec, bytes);
    });
}

}  // namespace tessera::cpu::rows8_k_layout
