// A software model of Intel AMX (palette 1: eight tiles of up to 16 rows x 64 bytes), for machines without
// it: this project's development machine has none, so the amx kernels are compiled a second time against
// this model (the "emulated twin" level) and tested here, and the same source runs on the real tiles.
//
// Semantics follow the Intel SDM's pseudocode for LDTILECFG, TILELOADD, TILESTORED, TILEZERO, TILERELEASE,
// TDPB[SU][SU]D and TDPBF16PS:
// - A tile has `rows` rows of `colsb` bytes. Loads fill rows x colsb from memory and zero the rest of the
//   tile; stores write rows x colsb bytes.
// - Products: C (M x N int32/fp32) += A (M x K 4-byte groups) * B (K x N 4-byte groups). B is in the "VNNI"
//   layout: row k of B holds, for each output column n, the 4 consecutive bytes (or 2 bf16) that pair with
//   A's 4-byte group k. M = C.rows = A.rows, K = A.colsb / 4 = B.rows, N = C.colsb / 4 = B.colsb / 4.
// - Integer dot products add four byte products into the int32 lane with wraparound (no saturation).
// - TDPBF16PS: per output lane, the even and the odd bf16 products are each summed over k in fp32 (one
//   rounding per step, as an FMA), then added together and to C; inputs that are denormal count as zero and
//   denormal results are flushed to zero; round to nearest even regardless of MXCSR.
// Anything the hardware faults on (#UD / #GP: a tile used before LDTILECFG, shapes that do not fit, a bad
// configuration) throws amx_emu::Fault naming the problem, so misuse fails a test instead of computing
// garbage.
//
// The state is per thread, as the real tile registers are. It has internal linkage (one copy per translation
// unit): kernels configure, use and release the tiles within one source file, as they must anyway.
//
// Including this header after <immintrin.h> makes the _tile_* intrinsic names (GCC's spelling, tile numbers
// as the first arguments) refer to this model, so one kernel source serves both builds. In a kernel-level
// build the model lives in that level's namespace, like every other symbol of the level's objects (test
// cpu_level_symbols); elsewhere (its own test) in tessera::amx_emu.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#ifdef TESSERA_CPU_LEVEL
#define TESSERA_AMX_EMU_NS tessera::cpu::TESSERA_CPU_LEVEL::amx_emu
#else
#define TESSERA_AMX_EMU_NS tessera::amx_emu
#endif

namespace TESSERA_AMX_EMU_NS {

constexpr int kTiles = 8;
constexpr int kMaxRows = 16;
constexpr int kMaxColsb = 64;

struct Fault : std::logic_error {
    using std::logic_error::logic_error;
};

// The 64-byte memory operand of LDTILECFG (palette 1 layout).
struct TileConfig {
    uint8_t palette_id = 0;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG takes 64 bytes");

struct Tile {
    int rows = 0, colsb = 0;
    alignas(64) uint8_t data[kMaxRows][kMaxColsb] = {};
};

struct State {
    bool configured = false;
    Tile tile[kTiles];
};

namespace {
thread_local State g_state;
}

inline State& state() { return g_state; }

[[noreturn]] inline void fault(const std::string& what) { throw Fault("AMX emulation: " + what); }

inline Tile& tile_checked(int t, const char* insn) {
    State& s = state();
    if (t < 0 || t >= kTiles) fault(std::string(insn) + ": tile " + std::to_string(t) + " does not exist (tmm0..tmm7)");
    if (!s.configured) fault(std::string(insn) + ": tiles used before LDTILECFG (or after TILERELEASE)");
    Tile& tl = s.tile[t];
    if (tl.rows == 0) fault(std::string(insn) + ": tile " + std::to_string(t) + " is not configured (rows = 0)");
    return tl;
}

// LDTILECFG. Palette 0 returns the tiles to the init state; palette 1 checks every field as the SDM's #GP
// conditions do and zeroes all tile data.
inline void tile_loadconfig(const void* mem) {
    TileConfig c;
    std::memcpy(&c, mem, sizeof c);
    State& s = state();
    if (c.palette_id == 0) {
        s = State{};
        return;
    }
    if (c.palette_id != 1) fault("LDTILECFG: palette " + std::to_string(c.palette_id) + " is not supported (only 1)");
    for (uint8_t b : c.reserved)
        if (b != 0) fault("LDTILECFG: reserved bytes 2..15 must be zero");
    if (c.start_row != 0) fault("LDTILECFG: start_row must be zero outside an interrupted tile load");
    for (int t = kTiles; t < 16; ++t)
        if (c.rows[t] != 0 || c.colsb[t] != 0) fault("LDTILECFG: palette 1 has 8 tiles; tile " + std::to_string(t) + " must be zero");
    State next;
    for (int t = 0; t < kTiles; ++t) {
        const int rows = c.rows[t], colsb = c.colsb[t];
        if (rows > kMaxRows || colsb > kMaxColsb)
            fault("LDTILECFG: tile " + std::to_string(t) + " is " + std::to_string(rows) + " rows x " + std::to_string(colsb) +
                  " bytes; the most is 16 x 64");
        if ((rows == 0) != (colsb == 0))
            fault("LDTILECFG: tile " + std::to_string(t) + " has rows or bytes per row zero but not both");
        next.tile[t].rows = rows;
        next.tile[t].colsb = colsb;
    }
    next.configured = true;
    s = next;
}

// STTILECFG: the configuration in use (all zero when unconfigured).
inline void tile_storeconfig(void* mem) {
    TileConfig c;
    const State& s = state();
    if (s.configured) {
        c.palette_id = 1;
        for (int t = 0; t < kTiles; ++t) {
            c.rows[t] = uint8_t(s.tile[t].rows);
            c.colsb[t] = uint16_t(s.tile[t].colsb);
        }
    }
    std::memcpy(mem, &c, sizeof c);
}

inline void tile_release() { state() = State{}; }

inline void tile_zero(int t) { std::memset(tile_checked(t, "TILEZERO").data, 0, sizeof(Tile::data)); }

inline void tile_loadd(int t, const void* base, long long stride) {
    Tile& tl = tile_checked(t, "TILELOADD");
    std::memset(tl.data, 0, sizeof tl.data);
    for (int r = 0; r < tl.rows; ++r)
        std::memcpy(tl.data[r], static_cast<const uint8_t*>(base) + r * stride, size_t(tl.colsb));
}

inline void tile_stored(int t, void* base, long long stride) {
    const Tile& tl = tile_checked(t, "TILESTORED");
    for (int r = 0; r < tl.rows; ++r) std::memcpy(static_cast<uint8_t*>(base) + r * stride, tl.data[r], size_t(tl.colsb));
}

// The shape checks shared by the dot-product instructions (#UD in the SDM).
inline void check_dot_shapes(int c, int a, int b, const char* insn) {
    if (c == a || c == b || a == b) fault(std::string(insn) + ": the three tile operands must be distinct");
    const Tile& C = tile_checked(c, insn);
    const Tile& A = tile_checked(a, insn);
    const Tile& B = tile_checked(b, insn);
    auto name = [&](const char* what, int v) { return std::string(insn) + ": " + what + " " + std::to_string(v); };
    if (C.colsb % 4 || A.colsb % 4 || B.colsb % 4) fault(name("bytes per row must be multiples of 4; C has", C.colsb));
    if (C.colsb != B.colsb) fault(name("C and B must have the same bytes per row (N); C has", C.colsb) + ", B " + std::to_string(B.colsb));
    if (A.colsb / 4 != B.rows)
        fault(name("A's 4-byte groups per row must equal B's rows (K); A has", A.colsb / 4) + ", B " + std::to_string(B.rows));
    if (C.rows != A.rows) fault(name("C and A must have the same rows (M); C has", C.rows) + ", A " + std::to_string(A.rows));
}

// TDPB[SU][SU]D: C.int32[m][n] += sum over k and i < 4 of A.byte[m][4k + i] * B.byte[k][4n + i], each byte
// signed or unsigned as the instruction says, the sum wrapping in 32 bits.
template <bool ASigned, bool BSigned>
inline void tile_dpb(int c, int a, int b, const char* insn) {
    check_dot_shapes(c, a, b, insn);
    State& s = state();
    Tile& C = s.tile[c];
    const Tile& A = s.tile[a];
    const Tile& B = s.tile[b];
    const int K = A.colsb / 4, N = C.colsb / 4;
    auto byte = [](uint8_t v, bool is_signed) { return is_signed ? int32_t(int8_t(v)) : int32_t(v); };
    for (int m = 0; m < C.rows; ++m) {
        uint32_t acc[16];
        std::memcpy(acc, C.data[m], sizeof acc);
        for (int k = 0; k < K; ++k)
            for (int n = 0; n < N; ++n) {
                int32_t sum = 0;  // four products of at most 255 * 255: no overflow here
                for (int i = 0; i < 4; ++i) sum += byte(A.data[m][4 * k + i], ASigned) * byte(B.data[k][4 * n + i], BSigned);
                acc[n] += uint32_t(sum);  // unsigned: wraps as the hardware does, without C++'s signed overflow
            }
        std::memset(C.data[m], 0, kMaxColsb);
        std::memcpy(C.data[m], acc, size_t(C.colsb));
    }
}

inline void tile_dpbssd(int c, int a, int b) { tile_dpb<true, true>(c, a, b, "TDPBSSD"); }
inline void tile_dpbsud(int c, int a, int b) { tile_dpb<true, false>(c, a, b, "TDPBSUD"); }
inline void tile_dpbusd(int c, int a, int b) { tile_dpb<false, true>(c, a, b, "TDPBUSD"); }
inline void tile_dpbuud(int c, int a, int b) { tile_dpb<false, false>(c, a, b, "TDPBUUD"); }

// A bf16 as the fp32 with those upper 16 bits; denormal inputs read as zero (DAZ).
inline float bf16_daz(uint16_t h) {
    if ((h & 0x7f80u) == 0) h &= 0x8000u;
    const uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// Denormal results become zero of the same sign (FTZ).
inline float ftz(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }

// TDPBF16PS (see the header comment for the order of the additions).
inline void tile_dpbf16ps(int c, int a, int b) {
    check_dot_shapes(c, a, b, "TDPBF16PS");
    State& s = state();
    Tile& C = s.tile[c];
    const Tile& A = s.tile[a];
    const Tile& B = s.tile[b];
    const int K = A.colsb / 4, N = C.colsb / 4;
    auto bf16_at = [](const uint8_t* row, int i) {
        uint16_t h;
        std::memcpy(&h, row + 2 * i, 2);
        return bf16_daz(h);
    };
    for (int m = 0; m < C.rows; ++m) {
        float even[16] = {}, odd[16] = {}, out[16];
        std::memcpy(out, C.data[m], sizeof out);
        for (int k = 0; k < K; ++k)
            for (int n = 0; n < N; ++n) {
                even[n] = ftz(std::fma(bf16_at(A.data[m], 2 * k), bf16_at(B.data[k], 2 * n), even[n]));
                odd[n] = ftz(std::fma(bf16_at(A.data[m], 2 * k + 1), bf16_at(B.data[k], 2 * n + 1), odd[n]));
            }
        for (int n = 0; n < N; ++n) {
            float c_in = out[n];
            if (std::fpclassify(c_in) == FP_SUBNORMAL) c_in = std::copysign(0.0f, c_in);
            out[n] = ftz(c_in + ftz(even[n] + odd[n]));
        }
        std::memset(C.data[m], 0, kMaxColsb);
        std::memcpy(C.data[m], out, size_t(C.colsb));
    }
}

}  // namespace TESSERA_AMX_EMU_NS

// The intrinsic spellings, mapped onto the model (GCC's <immintrin.h> may already define some as macros).
#undef _tile_loadd
#undef _tile_stream_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbssd
#undef _tile_dpbsud
#undef _tile_dpbusd
#undef _tile_dpbuud
#undef _tile_dpbf16ps
#define _tile_loadconfig(cfg) ::TESSERA_AMX_EMU_NS::tile_loadconfig(cfg)
#define _tile_storeconfig(cfg) ::TESSERA_AMX_EMU_NS::tile_storeconfig(cfg)
#define _tile_release() ::TESSERA_AMX_EMU_NS::tile_release()
#define _tile_zero(t) ::TESSERA_AMX_EMU_NS::tile_zero(t)
#define _tile_loadd(t, base, stride) ::TESSERA_AMX_EMU_NS::tile_loadd(t, base, stride)
#define _tile_stream_loadd(t, base, stride) ::TESSERA_AMX_EMU_NS::tile_loadd(t, base, stride)
#define _tile_stored(t, base, stride) ::TESSERA_AMX_EMU_NS::tile_stored(t, base, stride)
#define _tile_dpbssd(c, a, b) ::TESSERA_AMX_EMU_NS::tile_dpbssd(c, a, b)
#define _tile_dpbsud(c, a, b) ::TESSERA_AMX_EMU_NS::tile_dpbsud(c, a, b)
#define _tile_dpbusd(c, a, b) ::TESSERA_AMX_EMU_NS::tile_dpbusd(c, a, b)
#define _tile_dpbuud(c, a, b) ::TESSERA_AMX_EMU_NS::tile_dpbuud(c, a, b)
#define _tile_dpbf16ps(c, a, b) ::TESSERA_AMX_EMU_NS::tile_dpbf16ps(c, a, b)
