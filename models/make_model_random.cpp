// make-model's random tensors (declared in make_model.h): values that depend only on (seed, tensor name,
// element index), made while the file is written, one tensor in memory at a time.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "core/half.h"
#include "core/quant.h"
#include "core/types.h"
#include "models/make_model.h"

namespace tessera {

namespace {

// splitmix64: a value per (tensor, element) so files do not depend on the thread count.
inline uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Uniform in [-a, a].
inline float uniform(uint64_t seed, uint64_t i, float a) {
    const uint64_t r = mix(seed ^ mix(i));
    return a * (float(double(r >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f);
}

uint64_t name_hash(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

// n random bytes for super-block `block` of a tensor (its 8-byte words are mix(seed ^ mix(block), k)).
void random_bytes(uint64_t seed, uint64_t block, uint8_t* dst, size_t n) {
    const uint64_t base = seed ^ mix(block);
    for (size_t k = 0; k * 8 < n; ++k) {
        const uint64_t r = mix(base + k);
        std::memcpy(dst + k * 8, &r, n - k * 8 < 8 ? n - k * 8 : 8);
    }
}

// Q4_K and Q6_K rows made as blocks, not through the quantizer. Their reference quantizers search each
// sub-block's scale (20 and 19 trial scales), about 4 M values/s on one core here: a 30B-parameter Q4_K_M
// file would take hours. Quantizing uniform values gives, up to rounding, levels spread evenly over the
// grid under equal scales; these blocks are that directly: every level drawn at random, every sub-block
// scale the largest, and d (and dmin) set so the values span [-a, a] with the standard deviation of the
// uniform values they stand for. Returns false for the other types (their quantizers are cheap).
bool random_block_row(DType type, uint64_t seed, int64_t row_index, int64_t row, float a, uint8_t* dst) {
    if (row % QK_K != 0) return false;  // the quantizer then names the misfit
    const int64_t nb = row / QK_K;
    if (type == DType::Q4_K) {
        // value = d * 63 * q - dmin * 63, q in 0..15: step 2b / 15 from -b to b. Sixteen equally likely
        // levels on [-b, b] have variance b^2 * 17 / 45; a uniform [-a, a] has a^2 / 3.
        const float b = a * std::sqrt(15.0f / 17.0f);
        for (int64_t i = 0; i < nb; ++i) {
            block_q4_K blk;
            blk.d = fp32_to_fp16(2.0f * b / 15.0f / 63.0f);
            blk.dmin = fp32_to_fp16(b / 63.0f);
            std::memset(blk.scales, 0xFF, sizeof blk.scales);  // every 6-bit scale and min is 63
            random_bytes(seed, uint64_t(row_index * nb + i), blk.qs, sizeof blk.qs);
            std::memcpy(dst + size_t(i) * sizeof blk, &blk, sizeof blk);
        }
        return true;
    }
    if (type == DType::Q6_K) {
        // value = d * 127 * (q - 32), q in 0..63: step b / 32 from -b to b * 31 / 32. Sixty-four equally
        // likely levels have variance b^2 * 1365 / 4096 (mean -b / 64, negligible).
        const float b = a * std::sqrt(4096.0f / (3.0f * 1365.0f));
        for (int64_t i = 0; i < nb; ++i) {
            block_q6_K blk;
            uint8_t bits[sizeof blk.ql + sizeof blk.qh];
            random_bytes(seed, uint64_t(row_index * nb + i), bits, sizeof bits);
            std::memcpy(blk.ql, bits, sizeof blk.ql);
            std::memcpy(blk.qh, bits + sizeof blk.ql, sizeof blk.qh);
            for (auto& s : blk.scales) s = 127;
            blk.d = fp32_to_fp16(b / 32.0f / 127.0f);
            std::memcpy(dst + size_t(i) * sizeof blk, &blk, sizeof blk);
        }
        return true;
    }
    return false;
}

}  // namespace

size_t add_random_tensor(GGUFWriter& w, const std::string& name, DType type, std::vector<int64_t> ne, float sd,
                         uint64_t seed) {
    const FromFloatFn from = type_traits(type).from_float;
    TESSERA_CHECK(from != nullptr, "make-model: type %s cannot be written", type_name(type));
    const int64_t row = ne[0];
    int64_t rows = 1;
    for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
    const size_t rb = row_bytes(type, row);
    const uint64_t s = seed ^ name_hash(name);
    const float a = sd * std::sqrt(3.0f);
    return w.add_tensor(name, type, ne, [=](uint8_t* dst) {
#pragma omp parallel
        {
            std::vector<float> buf(static_cast<size_t>(row));
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; ++r) {
                uint8_t* out = dst + size_t(r) * rb;
                if (random_block_row(type, s, r, row, a, out)) continue;
                for (int64_t i = 0; i < row; ++i) buf[size_t(i)] = uniform(s, uint64_t(r * row + i), a);
                from(buf.data(), out, row);
            }
        }
    });
}

size_t add_filled_tensor(GGUFWriter& w, const std::string& name, int64_t n, float value) {
    return w.add_tensor(name, DType::F32, {n}, [=](uint8_t* dst) {
        for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * 4, &value, 4);
    });
}

}  // namespace tessera
