// The interleaved-rows weight layout (see rows8_layout.h): repack and its inverse, plain loops over bytes.
#include "backends/cpu/rows8_layout.h"

#include <cstring>

#include "core/error.h"
#include "core/quant.h"

namespace tessera::cpu::rows8_layout {

namespace {

constexpr int kQs = kBlockValues / 2;  // Q4_0 nibble bytes per block

// Record byte of row n's GGUF qs byte j (j < 16): 4-byte chunk j / 4 of row n goes to 32 (j / 4) + 4n.
constexpr int q4_pos(int n, int j) { return 32 * (j / 4) + 4 * n + j % 4; }

void check_shape(DType t, int64_t rows, int64_t k) {
    TESSERA_CHECK(repackable(t), "rows8 repack: type %s has no interleaved-rows layout (only Q4_0)", type_name(t));
    TESSERA_CHECK(rows > 0 && k > 0 && k % kBlockValues == 0,
                  "rows8 repack: %lld rows of %lld values (k must be a positive multiple of 32)", (long long)rows,
                  (long long)k);
}

}  // namespace

bool repackable(DType t) { return t == DType::Q4_0; }

size_t record_bytes(DType) { return kScaleBytes + kStripRows * kQs; }

size_t packed_bytes(DType t, int64_t rows, int64_t k) {
    const int64_t strips = (rows + kStripRows - 1) / kStripRows;
    return size_t(strips) * size_t(k / kBlockValues) * record_bytes(t);
}

void repack(DType t, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst) {
    check_shape(t, rows, k);
    const int64_t nb = k / kBlockValues, strips = (rows + kStripRows - 1) / kStripRows;
    const size_t rec = record_bytes(t);
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t p = 0; p < strips; ++p)
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* r = d + size_t(p * nb + b) * rec;
            for (int n = 0; n < kStripRows; ++n) {
                const int64_t row = p * kStripRows + n;
                half_bits scale = 0;
                uint8_t qs[kQs];
                if (row < rows) {
                    const auto* q = reinterpret_cast<const block_q4_0*>(s + size_t(row) * src_row_stride) + b;
                    scale = q->d;
                    std::memcpy(qs, q->qs, kQs);
                } else {
                    std::memset(qs, 0x88, kQs);  // padding: nibbles 8 (value 0) under scale 0
                }
                std::memcpy(r + 2 * n, &scale, 2);
                for (int j = 0; j < kQs; ++j) r[kScaleBytes + q4_pos(n, j)] = qs[j];
            }
        }
}

void unpack(DType t, const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride) {
    check_shape(t, rows, k);
    const int64_t nb = k / kBlockValues, strips = (rows + kStripRows - 1) / kStripRows;
    const size_t rec = record_bytes(t);
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    for (int64_t p = 0; p < strips; ++p)
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t* r = s + size_t(p * nb + b) * rec;
            for (int n = 0; n < kStripRows; ++n) {
                const int64_t row = p * kStripRows + n;
                if (row >= rows) break;
                auto* q = reinterpret_cast<block_q4_0*>(d + size_t(row) * dst_row_stride) + b;
                std::memcpy(&q->d, r + 2 * n, 2);
                for (int j = 0; j < kQs; ++j) q->qs[j] = r[kScaleBytes + q4_pos(n, j)];
            }
        }
}

}  // namespace tessera::cpu::rows8_layout
