// The interleaved-rows weight layout (see rows8_layout.h): repack and its inverse, plain loops over bytes.
#include "backends/cpu/rows8_layout.h"

#include <cstring>

#include "core/error.h"
#include "core/quant.h"

namespace tessera::cpu::rows8_layout {

namespace {

// Bytes of values per block: Q4_0's and IQ4_NL's 16 nibble bytes, Q8_0's 32 int8 values.
int value_bytes(DType t) { return t == DType::Q8_0 ? kBlockValues : kBlockValues / 2; }

// Record byte (after the scales) of row n's GGUF qs byte j: 4-byte chunk j / 4 of row n goes to 32 (j / 4) + 4n.
constexpr int q_pos(int n, int j) { return 32 * (j / 4) + 4 * n + j % 4; }

// Q4_0, IQ4_NL and Q8_0 blocks alike: the f16 scale d, then the value bytes.
constexpr size_t kQsOffset = 2;
static_assert(sizeof(block_q4_0) == kQsOffset + kBlockValues / 2 && sizeof(block_iq4_nl) == sizeof(block_q4_0) &&
              sizeof(block_q8_0) == kQsOffset + kBlockValues);
size_t block_bytes(DType t) { return kQsOffset + size_t(value_bytes(t)); }

void check_shape(DType t, int64_t rows, int64_t k) {
    TESSERA_CHECK(repackable(t), "rows8 repack: type %s has no interleaved-rows layout (only Q4_0, Q8_0, IQ4_NL)", type_name(t));
    TESSERA_CHECK(rows > 0 && k > 0 && k % kBlockValues == 0,
                  "rows8 repack: %lld rows of %lld values (k must be a positive multiple of 32)", (long long)rows,
                  (long long)k);
}

}  // namespace

bool repackable(DType t) { return t == DType::Q4_0 || t == DType::Q8_0 || t == DType::IQ4_NL; }

size_t record_bytes(DType t) { return kScaleBytes + size_t(kStripRows * value_bytes(t)); }

size_t packed_bytes(DType t, int64_t rows, int64_t k) {
    const int64_t strips = (rows + kStripRows - 1) / kStripRows;
    return size_t(strips) * size_t(k / kBlockValues) * record_bytes(t);
}

void repack(DType t, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst) {
    check_shape(t, rows, k);
    const int64_t nb = k / kBlockValues, strips = (rows + kStripRows - 1) / kStripRows;
    const size_t rec = record_bytes(t);
    const int nq = value_bytes(t);
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t p = 0; p < strips; ++p)
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* r = d + size_t(p * nb + b) * rec;
            for (int n = 0; n < kStripRows; ++n) {
                const int64_t row = p * kStripRows + n;
                uint8_t scale[2] = {0, 0};
                uint8_t qs[kBlockValues];
                if (row < rows) {
                    const uint8_t* blk = s + size_t(row) * src_row_stride + size_t(b) * block_bytes(t);
                    std::memcpy(scale, blk, 2);
                    std::memcpy(qs, blk + kQsOffset, size_t(nq));
                } else {  // padding: value 0 (IQ4_NL: a level) under scale 0 (Q4_0: nibbles 8)
                    std::memset(qs, t == DType::Q4_0 ? 0x88 : 0x00, size_t(nq));
                }
                std::memcpy(r + 2 * n, scale, 2);
                for (int j = 0; j < nq; ++j) r[kScaleBytes + q_pos(n, j)] = qs[j];
            }
        }
}

void unpack(DType t, const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride) {
    check_shape(t, rows, k);
    const int64_t nb = k / kBlockValues, strips = (rows + kStripRows - 1) / kStripRows;
    const size_t rec = record_bytes(t);
    const int nq = value_bytes(t);
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t p = 0; p < strips; ++p)
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* r = s + size_t(p * nb + b) * rec;
            for (int n = 0; n < kStripRows; ++n) {
                const int64_t row = p * kStripRows + n;
                if (row >= rows) break;
                uint8_t* blk = d + size_t(row) * dst_row_stride + size_t(b) * block_bytes(t);
                std::memcpy(blk, r + 2 * n, 2);
                for (int j = 0; j < nq; ++j) blk[kQsOffset + size_t(j)] = r[kScaleBytes + q_pos(n, j)];
            }
        }
}

}  // namespace tessera::cpu::rows8_layout
