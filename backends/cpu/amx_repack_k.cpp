// The K-quants' AMX layout (see amx_repack_k.h): repack and its inverse, plain loops over bytes. Each GGUF
// block is read into its 256 unsigned values and its scale bytes, which both directions move as they are.
#include "backends/cpu/amx_repack_k.h"

#include <cstring>

#include "backends/cpu/amx_repack.h"
#include "core/error.h"
#include "core/quant.h"

namespace tessera::cpu::amx_layout {

namespace {

constexpr int kChunks = QK_K / kBlockValues;           // 8 chunks of 32 values per super-block
constexpr int kVnniBytes = kPanelRows * kBlockValues;  // 512: one chunk's B tile

// Position in a chunk's 512 VNNI bytes of value v (< 32) of panel row n (< 16), as amx_repack.cpp's.
constexpr int vnni_pos(int n, int v) { return (v / 4) * (4 * kPanelRows) + 4 * n + v % 4; }

// The 256 values of one block, unsigned (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63), in value order.
void block_values(DType t, const uint8_t* blk, uint8_t* q) {
    if (t == DType::Q6_K) {
        const auto* b = reinterpret_cast<const block_q6_K*>(blk);
        for (int v = 0; v < QK_K; ++v) {  // v = 128 h + 32 quarter + l
            const int h = v / 128, quarter = (v % 128) / 32, l = v % 32;
            const uint8_t lo = b->ql[64 * h + l + 32 * (quarter & 1)];
            q[v] = uint8_t(((quarter < 2 ? lo : lo >> 4) & 0xF) | (((b->qh[32 * h + l] >> (2 * quarter)) & 3) << 4));
        }
        return;
    }
    // Q4_K / Q5_K: value v = 64 j + 32 high + l is nibble `high` of qs[32 j + l]; Q5_K's fifth bit is bit v / 32
    // of qh[l].
    const uint8_t* qs = t == DType::Q4_K ? reinterpret_cast<const block_q4_K*>(blk)->qs : reinterpret_cast<const block_q5_K*>(blk)->qs;
    for (int v = 0; v < QK_K; ++v) {
        const uint8_t byte = qs[32 * (v / 64) + v % 32];
        q[v] = (v % 64) < 32 ? byte & 0xF : byte >> 4;
        if (t == DType::Q5_K) q[v] |= uint8_t(((reinterpret_cast<const block_q5_K*>(blk)->qh[v % 32] >> (v / 32)) & 1) << 4);
    }
}

// The inverse of block_values: writes every value bit of the block (the other fields are left as they are).
void set_block_values(DType t, const uint8_t* q, uint8_t* blk) {
    if (t == DType::Q6_K) {
        auto* b = reinterpret_cast<block_q6_K*>(blk);
        std::memset(b->ql, 0, sizeof b->ql);
        std::memset(b->qh, 0, sizeof b->qh);
        for (int v = 0; v < QK_K; ++v) {
            const int h = v / 128, quarter = (v % 128) / 32, l = v % 32;
            b->ql[64 * h + l + 32 * (quarter & 1)] |= uint8_t((q[v] & 0xF) << (quarter < 2 ? 0 : 4));
            b->qh[32 * h + l] |= uint8_t(((q[v] >> 4) & 3) << (2 * quarter));
        }
        return;
    }
    uint8_t* qs = t == DType::Q4_K ? reinterpret_cast<block_q4_K*>(blk)->qs : reinterpret_cast<block_q5_K*>(blk)->qs;
    std::memset(qs, 0, QK_K / 2);
    if (t == DType::Q5_K) std::memset(reinterpret_cast<block_q5_K*>(blk)->qh, 0, QK_K / 8);
    for (int v = 0; v < QK_K; ++v) {
        qs[32 * (v / 64) + v % 32] |= uint8_t((q[v] & 0xF) << ((v % 64) < 32 ? 0 : 4));
        if (t == DType::Q5_K) reinterpret_cast<block_q5_K*>(blk)->qh[v % 32] |= uint8_t(((q[v] >> 4) & 1) << (v / 32));
    }
}

size_t block_bytes(DType t) { return type_traits(t).block_bytes; }

}  // namespace

bool is_k_quant(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }

size_t k_record_bytes(DType t) { return size_t(kPanelRows) * block_bytes(t); }

KRecordParts k_record_parts(DType t) {
    const size_t halves = 2 * kPanelRows, nibbles = size_t(kChunks) * kVnniBytes / 2;
    if (t == DType::Q6_K) return {0, 0, halves, halves + 16 * kPanelRows, halves + 16 * kPanelRows + nibbles};
    const size_t scales = 2 * halves, after = scales + size_t(K_SCALE_SIZE) * kPanelRows + nibbles;
    return {0, halves, scales, scales + size_t(K_SCALE_SIZE) * kPanelRows, t == DType::Q5_K ? after : 0};
}

void repack_k(DType t, const void* src, size_t src_row_stride, int64_t rows, int64_t k, void* dst) {
    const int64_t nsb = k / QK_K, panels = (rows + kPanelRows - 1) / kPanelRows;
    const size_t rec = k_record_bytes(t);
    const KRecordParts part = k_record_parts(t);
    const uint8_t* s = static_cast<const uint8_t*>(src);
    uint8_t* d = static_cast<uint8_t*>(dst);
    std::memset(dst, 0, size_t(panels * nsb) * rec);
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t b = 0; b < nsb; ++b) {
            uint8_t* r = d + size_t(p * nsb + b) * rec;
            uint8_t vnni[kChunks][kVnniBytes] = {};  // padding rows: value 0
            for (int n = 0; n < kPanelRows; ++n) {
                const int64_t row = p * kPanelRows + n;
                if (row >= rows) break;
                const uint8_t* blk = s + size_t(row) * src_row_stride + size_t(b) * block_bytes(t);
                uint8_t q[QK_K];
                block_values(t, blk, q);
                for (int v = 0; v < QK_K; ++v) vnni[v / kBlockValues][vnni_pos(n, v % kBlockValues)] = q[v];
                if (t == DType::Q6_K) {
                    const auto* b6 = reinterpret_cast<const block_q6_K*>(blk);
                    std::memcpy(r + part.d + 2 * n, &b6->d, 2);
                    for (int sb = 0; sb < QK_K / 16; ++sb) r[part.scales + size_t(sb * kPanelRows + n)] = uint8_t(b6->scales[sb]);
                } else {  // Q4_K and Q5_K begin alike: d, dmin, scales[12]
                    const auto* b4 = reinterpret_cast<const block_q4_K*>(blk);
                    std::memcpy(r + part.d + 2 * n, &b4->d, 2);
                    std::memcpy(r + part.dmin + 2 * n, &b4->dmin, 2);
                    std::memcpy(r + part.scales + size_t(K_SCALE_SIZE) * n, b4->scales, K_SCALE_SIZE);
                }
            }
            for (int c = 0; c < kChunks; ++c) {
                uint8_t* nib = r + part.nibbles + size_t(c) * (kVnniBytes / 2);
                for (int j = 0; j < kVnniBytes / 2; ++j) nib[j] = uint8_t((vnni[c][j] & 0xF) | ((vnni[c][j + kVnniBytes / 2] & 0xF) << 4));
                if (t == DType::Q5_K) {
                    uint8_t* hi = r + part.high + size_t(c) * (kVnniBytes / 8);
                    for (int j = 0; j < kVnniBytes; ++j) hi[j % 64] |= uint8_t(((vnni[c][j] >> 4) & 1) << (j / 64));
                } else if (t == DType::Q6_K) {
                    uint8_t* hi = r + part.high + size_t(c) * (kVnniBytes / 4);
                    for (int j = 0; j < kVnniBytes; ++j) hi[j % 128] |= uint8_t(((vnni[c][j] >> 4) & 3) << (2 * (j / 128)));
                }
            }
        }
}

void unpack_k(DType t, const void* src, int64_t rows, int64_t k, void* dst, size_t dst_row_stride) {
    const int64_t nsb = k / QK_K, panels = (rows + kPanelRows - 1) / kPanelRows;
    const size_t rec = k_record_bytes(t);
    const KRecordParts part = k_record_parts(t);
    const uint8_t* s = static_cast<const uint8_t*>(src);
    uint8_t* d = static_cast<uint8_t*>(dst);
    for (int64_t p = 0; p < panels; ++p)
        for (int64_t b = 0; b < nsb; ++b) {
            const uint8_t* r = s + size_t(p * nsb + b) * rec;
            uint8_t vnni[kChunks][kVnniBytes];
            for (int c = 0; c < kChunks; ++c) {
                const uint8_t* nib = r + part.nibbles + size_t(c) * (kVnniBytes / 2);
                for (int j = 0; j < kVnniBytes; ++j) {
                    uint8_t v = j < kVnniBytes / 2 ? nib[j] & 0xF : nib[j - kVnniBytes / 2] >> 4;
                    if (t == DType::Q5_K) v |= uint8_t(((r[part.high + size_t(c) * (kVnniBytes / 8) + j % 64] >> (j / 64)) & 1) << 4);
                    if (t == DType::Q6_K) v |= uint8_t(((r[part.high + size_t(c) * (kVnniBytes / 4) + j % 128] >> (2 * (j / 128))) & 3) << 4);
                    vnni[c][j] = v;
                }
            }
            for (int n = 0; n < kPanelRows; ++n) {
                const int64_t row = p * kPanelRows + n;
                if (row >= rows) break;
                uint8_t* blk = d + size_t(row) * dst_row_stride + size_t(b) * block_bytes(t);
                uint8_t q[QK_K];
                for (int v = 0; v < QK_K; ++v) q[v] = vnni[v / kBlockValues][vnni_pos(n, v % kBlockValues)];
                set_block_values(t, q, blk);
                if (t == DType::Q6_K) {
                    auto* b6 = reinterpret_cast<block_q6_K*>(blk);
                    std::memcpy(&b6->d, r + part.d + 2 * n, 2);
                    for (int sb = 0; sb < QK_K / 16; ++sb) b6->scales[sb] = int8_t(r[part.scales + size_t(sb * kPanelRows + n)]);
                } else {
                    auto* b4 = reinterpret_cast<block_q4_K*>(blk);
                    std::memcpy(&b4->d, r + part.d + 2 * n, 2);
                    std::memcpy(&b4->dmin, r + part.dmin + 2 * n, 2);
                    std::memcpy(b4->scales, r + part.scales + size_t(K_SCALE_SIZE) * n, K_SCALE_SIZE);
                }
            }
        }
}

}  // namespace tessera::cpu::amx_layout
