// The AMX tile model (backends/cpu/amx_emu.h) against plain matrix products written out here: every
// integer variant's signedness and 32-bit wraparound, bf16 pairs with DAZ/FTZ, the B operand's VNNI layout,
// partial tiles (rows and bytes per row below the maximum), and the faults misuse must raise. The amx kernel
// level is tested on top of this model, so the model itself must be right first.
#include <doctest/doctest.h>

#include <cstdint>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/amx_emu.h"

namespace {

using tessera::amx_emu::Fault;
using tessera::amx_emu::TileConfig;

TileConfig config(std::initializer_list<std::pair<int, int>> shapes) {  // (rows, colsb) for tiles 0, 1, ...
    TileConfig c;
    c.palette_id = 1;
    int t = 0;
    for (auto [rows, colsb] : shapes) {
        c.rows[t] = uint8_t(rows);
        c.colsb[t] = uint16_t(colsb);
        ++t;
    }
    return c;
}

// B as a plain K x N matrix (K = 4 * groups) -> the VNNI layout the tile expects: row g holds, for each
// column n, the four values of rows 4g .. 4g + 3.
std::vector<uint8_t> vnni(const std::vector<uint8_t>& plain, int K, int N) {
    std::vector<uint8_t> out(size_t(K) * N);
    for (int k = 0; k < K; ++k)
        for (int n = 0; n < N; ++n) out[size_t(k / 4) * (4 * N) + 4 * n + k % 4] = plain[size_t(k) * N + n];
    return out;
}

template <bool ASigned, bool BSigned>
void check_int8(void (*dp)(int, int, int), int M, int K, int N, uint32_t c_start) {
    std::mt19937 rng(uint32_t(M * 1000 + K * 10 + N));
    std::vector<uint8_t> A(size_t(M) * K), B(size_t(K) * N);
    for (auto& v : A) v = uint8_t(rng());
    for (auto& v : B) v = uint8_t(rng());
    auto val = [](uint8_t v, bool s) { return s ? int64_t(int8_t(v)) : int64_t(v); };

    const TileConfig cfg = config({{M, 4 * N}, {M, K}, {K / 4, 4 * N}});
    _tile_loadconfig(&cfg);
    std::vector<uint32_t> C(size_t(M) * N, c_start);
    _tile_loadd(0, C.data(), 4 * N);
    _tile_loadd(1, A.data(), K);
    const std::vector<uint8_t> Bv = vnni(B, K, N);
    _tile_loadd(2, Bv.data(), 4 * N);
    dp(0, 1, 2);
    dp(0, 1, 2);  // accumulates: twice the product on top of c_start
    std::vector<uint32_t> out(size_t(M) * N, 0xdeadbeef);
    _tile_stored(0, out.data(), 4 * N);
    _tile_release();

    for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
            int64_t dot = 0;
            for (int k = 0; k < K; ++k) dot += val(A[size_t(m) * K + k], ASigned) * val(B[size_t(k) * N + n], BSigned);
            const uint32_t want = uint32_t(uint64_t(c_start) + 2 * uint64_t(dot));  // modulo 2^32
            REQUIRE_MESSAGE(out[size_t(m) * N + n] == want, "m " << m << " n " << n << " M " << M << " K " << K << " N " << N);
        }
}

uint16_t bf16_of(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return uint16_t(bits >> 16);  // exact for the values used below (their low 16 bits are zero)
}

}  // namespace

TEST_CASE("amx emulation: integer tile products equal the plain matmul, each signedness, partial tiles") {
    using namespace tessera::amx_emu;
    const int shapes[][3] = {{16, 64, 16}, {5, 12, 7}, {1, 4, 1}, {16, 32, 3}, {9, 64, 16}};
    for (const auto& s : shapes) {
        const int M = s[0], K = s[1], N = s[2];
        check_int8<true, true>(tile_dpbssd, M, K, N, 0);
        check_int8<true, false>(tile_dpbsud, M, K, N, 7);
        check_int8<false, true>(tile_dpbusd, M, K, N, 0x80000000u);
        check_int8<false, false>(tile_dpbuud, M, K, N, 0);
    }
}

TEST_CASE("amx emulation: int32 accumulation wraps around instead of saturating") {
    // 255 * 255 * 64 = 4161600 per product; starting 1000 below 2^32 must wrap to 4161600 - 1000 - ... exactly.
    using namespace tessera::amx_emu;
    const TileConfig cfg = config({{1, 4}, {1, 64}, {16, 4}});
    _tile_loadconfig(&cfg);
    std::vector<uint8_t> A(64, 255), B(64, 255);
    uint32_t c = 0xffffffffu - 1000u;
    _tile_loadd(0, &c, 4);
    _tile_loadd(1, A.data(), 64);
    _tile_loadd(2, B.data(), 4);
    _tile_dpbuud(0, 1, 2);
    _tile_stored(0, &c, 4);
    _tile_release();
    CHECK(c == uint32_t(uint64_t(0xffffffffu - 1000u) + 255ull * 255ull * 64ull));
    CHECK(c == 255u * 255u * 64u - 1001u);
}

TEST_CASE("amx emulation: bf16 pair products in fp32, denormal inputs as zero") {
    using namespace tessera::amx_emu;
    const int M = 3, K = 6, N = 5;  // K bf16 values per row = 3 pairs
    std::mt19937 rng(5);
    std::vector<float> A(size_t(M) * K), B(size_t(K) * N);
    for (auto& v : A) v = float(int(rng() % 17) - 8) * 0.5f;  // small halves: every sum below is exact
    for (auto& v : B) v = float(int(rng() % 9) - 4);
    A[1] = 1e-39f;  // a denormal (exactly representable as bf16): must count as zero
    REQUIRE(bf16_of(A[1]) != 0);
    std::vector<uint16_t> Ah(A.size()), Bv(B.size());
    for (size_t i = 0; i < A.size(); ++i) Ah[i] = bf16_of(A[i]);
    for (int k = 0; k < K; ++k)  // VNNI for 2-byte values: row k/2 holds, per column, the pair (2j, 2j + 1)
        for (int n = 0; n < N; ++n) Bv[size_t(k / 2) * (2 * N) + 2 * n + k % 2] = bf16_of(B[size_t(k) * N + n]);

    const TileConfig cfg = config({{M, 4 * N}, {M, 2 * K}, {K / 2, 4 * N}});
    _tile_loadconfig(&cfg);
    std::vector<float> C(size_t(M) * N, 0.25f);
    _tile_loadd(0, C.data(), 4 * N);
    _tile_loadd(1, Ah.data(), 2 * K);
    _tile_loadd(2, Bv.data(), 4 * N);
    _tile_dpbf16ps(0, 1, 2);
    _tile_stored(0, C.data(), 4 * N);
    _tile_release();
    for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
            double want = 0.25;
            for (int k = 0; k < K; ++k)
                if (!(m == 0 && k == 1)) want += double(A[size_t(m) * K + k]) * B[size_t(k) * N + n];
            CHECK_MESSAGE(C[size_t(m) * N + n] == float(want), "m " << m << " n " << n);
        }
}

TEST_CASE("amx emulation: bf16 denormal inputs count as zero, denormal results flush to zero") {
    using namespace tessera::amx_emu;
    // One output lane, one pair: a0 * b0 + a1 * b1 with C = 0.
    auto dot = [](float a0, float a1, float b0, float b1) {
        const TileConfig cfg = config({{1, 4}, {1, 4}, {1, 4}});
        _tile_loadconfig(&cfg);
        const uint16_t a[2] = {bf16_of(a0), bf16_of(a1)}, b[2] = {bf16_of(b0), bf16_of(b1)};
        float c = 0;
        _tile_loadd(0, &c, 4);
        _tile_loadd(1, a, 4);
        _tile_loadd(2, b, 4);
        _tile_dpbf16ps(0, 1, 2);
        _tile_stored(0, &c, 4);
        _tile_release();
        return c;
    };
    const float denormal = 1e-39f, big = std::ldexp(1.0f, 100);
    CHECK(dot(denormal, 0, big, 0) == 0.0f);          // would be ~1.3e-9 without DAZ
    CHECK(dot(std::ldexp(1.0f, -70), 0, std::ldexp(1.0f, -60), 0) == 0.0f);  // 2^-130 is denormal: FTZ
    CHECK(dot(std::ldexp(1.0f, -60), 0, std::ldexp(1.0f, -60), 0) == std::ldexp(1.0f, -120));  // normal: kept
    CHECK(dot(3, 5, 7, 11) == 76.0f);
}

TEST_CASE("amx emulation: loads zero what the shape leaves out, stores write only the shape") {
    using namespace tessera::amx_emu;
    const TileConfig cfg = config({{3, 8}});
    _tile_loadconfig(&cfg);
    std::vector<uint8_t> src(16 * 64, 0xab);
    _tile_loadd(0, src.data(), 64);
    const Tile& t = state().tile[0];
    for (int r = 0; r < kMaxRows; ++r)
        for (int c = 0; c < kMaxColsb; ++c) REQUIRE(t.data[r][c] == (r < 3 && c < 8 ? 0xab : 0));
    std::vector<uint8_t> dst(16 * 64, 0x11);
    _tile_zero(0);
    _tile_stored(0, dst.data(), 10);  // stride 10: rows at 0, 10, 20, 8 bytes each
    for (int i = 0; i < 16 * 64; ++i) {
        const bool written = i < 28 && i % 10 < 8;
        REQUIRE_MESSAGE(dst[size_t(i)] == (written ? 0 : 0x11), "byte " << i);
    }
    TileConfig back;
    _tile_storeconfig(&back);
    CHECK(std::memcmp(&back, &cfg, sizeof cfg) == 0);
    _tile_release();
    _tile_storeconfig(&back);
    CHECK(back.palette_id == 0);
}

TEST_CASE("amx emulation: misuse faults as the hardware does") {
    using namespace tessera::amx_emu;
    uint8_t buf[1024] = {};
    _tile_release();
    CHECK_THROWS_AS(_tile_loadd(0, buf, 64), Fault);  // before LDTILECFG
    TileConfig bad = config({{17, 64}});
    CHECK_THROWS_AS(_tile_loadconfig(&bad), Fault);  // too many rows
    bad = config({{16, 65}});
    CHECK_THROWS_AS(_tile_loadconfig(&bad), Fault);  // too many bytes per row
    bad = config({{4, 0}});
    CHECK_THROWS_AS(_tile_loadconfig(&bad), Fault);  // rows without bytes
    bad = config({{4, 16}});
    bad.reserved[3] = 1;
    CHECK_THROWS_AS(_tile_loadconfig(&bad), Fault);
    bad = config({{4, 16}});
    bad.palette_id = 2;
    CHECK_THROWS_AS(_tile_loadconfig(&bad), Fault);

    TileConfig cfg = config({{16, 64}, {16, 64}, {16, 64}, {8, 64}, {16, 32}});
    _tile_loadconfig(&cfg);
    CHECK_THROWS_AS(_tile_loadd(5, buf, 64), Fault);   // tile 5 not configured
    CHECK_THROWS_AS(_tile_dpbssd(0, 0, 1), Fault);     // operands not distinct
    CHECK_NOTHROW(_tile_dpbssd(0, 1, 2));              // 16 x 16 groups x 16: fits
    CHECK_THROWS_AS(_tile_dpbssd(0, 1, 3), Fault);     // A has 16 groups, B 8 rows
    CHECK_THROWS_AS(_tile_dpbssd(4, 1, 2), Fault);     // C 32 bytes per row, B 64
    _tile_release();
    CHECK_THROWS_AS(_tile_zero(0), Fault);             // after TILERELEASE
}
