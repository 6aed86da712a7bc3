// GGUF reader and writer: hand-built files (valid and hostile, byte by byte, independent of the writer),
// the llama.cpp GGUF CVE classes, truncation and corruption, typed access, write -> read identity, every
// shared file loading, re-writing shared files, and `tessera inspect`.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <unistd.h>

#include "core/error.h"
#include "core/gguf.h"
#include "tests/testing.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

// shared_path()/cli_path() come from testing.cpp, which is compiled into a library without the
// TESSERA_SHARED_DIR / TESSERA_CLI definitions (they are set per test executable), so they fall back to
// "../shared" (relative to the working directory) and "tessera" (PATH). This file gets the definitions.
#ifdef TESSERA_SHARED_DIR
std::string shared_path(const std::string& rel) { return std::string(TESSERA_SHARED_DIR) + "/" + rel; }
bool shared_available() { return fs::is_directory(TESSERA_SHARED_DIR); }
#else
std::string shared_path(const std::string& rel) { return testing::shared_path(rel); }
bool shared_available() { return testing::shared_available(); }
#endif
#ifdef TESSERA_CLI
std::string cli_path() { return TESSERA_CLI; }
#else
std::string cli_path() { return testing::cli_path(); }
#endif

// ---------------------------------------------------------------- building files by hand

// Bytes of a GGUF file written field by field, so malformed files can say exactly what is wrong.
struct Raw {
    std::vector<uint8_t> b;

    template <class T> Raw& put(T x) {
        const size_t at = b.size();
        b.resize(at + sizeof(T));
        std::memcpy(b.data() + at, &x, sizeof(T));
        return *this;
    }
    Raw& u8(uint8_t x) { return put(x); }
    Raw& u32(uint32_t x) { return put(x); }
    Raw& u64(uint64_t x) { return put(x); }
    Raw& i64(int64_t x) { return put(x); }
    Raw& f32(float x) { return put(x); }
    Raw& str(const std::string& s) {
        u64(s.size());
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    Raw& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
        b.insert(b.end(), {'G', 'G', 'U', 'F'});
        return u32(version).u64(n_tensors).u64(n_kv);
    }
    Raw& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
    Raw& kv_str(const std::string& key, const std::string& v) { return str(key).u32(8).str(v); }
    Raw& tensor(const std::string& name, std::vector<int64_t> ne, uint32_t type, uint64_t offset) {
        str(name).u32(uint32_t(ne.size()));
        for (int64_t d : ne) i64(d);
        return u32(type).u64(offset);
    }
    Raw& pad(size_t align = 32) {
        while (b.size() % align) b.push_back(0);
        return *this;
    }
    Raw& zeros(size_t n) {
        b.resize(b.size() + n, 0);
        return *this;
    }
};

// The message parsing `bytes` throws with, or "" when it parses.
std::string parse_error(const std::vector<uint8_t>& bytes, size_t n = SIZE_MAX) {
    try {
        GGUFFile::from_memory(bytes.data(), std::min(n, bytes.size()), "bad.gguf");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// The file must be rejected with a tessera::Error naming the file and containing each of `parts`.
void check_rejects(const Raw& r, std::initializer_list<const char*> parts) {
    const std::string msg = parse_error(r.b);
    INFO("message: " << msg);
    REQUIRE_MESSAGE(!msg.empty(), "the file was accepted");
    CHECK(msg.rfind("bad.gguf: ", 0) == 0);
    for (const char* p : parts) CHECK_MESSAGE(msg.find(p) != std::string::npos, "missing '" << p << "'");
}

// A valid file with one tensor `name` of the given shape/type at offset 0, followed by `data_bytes` of data.
Raw one_tensor(std::vector<int64_t> ne, uint32_t type, uint64_t offset, size_t data_bytes,
               const std::string& name = "w") {
    Raw r;
    r.header(3, 1, 0).tensor(name, ne, type, offset).pad().zeros(data_bytes);
    return r;
}

constexpr uint32_t kF32 = 0, kQ4_0 = 2, kQ8_0 = 8;

// ---------------------------------------------------------------- values

GGUFValue val_u(GGUFType t, uint64_t u) {
    GGUFValue v;
    v.type = t;
    v.u = u;
    return v;
}
GGUFValue val_i(GGUFType t, int64_t i) {
    GGUFValue v;
    v.type = t;
    v.i = i;
    return v;
}
GGUFValue val_f(GGUFType t, double f) {
    GGUFValue v;
    v.type = t;
    v.f = f;
    return v;
}
GGUFValue val_s(const std::string& s) {
    GGUFValue v;
    v.type = GGUFType::STRING;
    v.s = s;
    return v;
}
GGUFValue val_arr(GGUFType et, std::vector<GGUFValue> elems) {
    GGUFValue v;
    v.type = GGUFType::ARRAY;
    v.elem_type = et;
    v.arr = std::move(elems);
    return v;
}

// Deep equality; floats compared bit for bit. Says where they differ.
bool same_value(const GGUFValue& a, const GGUFValue& b, std::string& why) {
    if (a.type != b.type) {
        why = std::string("type ") + gguf_type_name(a.type) + " vs " + gguf_type_name(b.type);
        return false;
    }
    switch (a.type) {
        case GGUFType::UINT8: case GGUFType::UINT16: case GGUFType::UINT32: case GGUFType::UINT64:
        case GGUFType::BOOL:
            if (a.u != b.u) why = std::to_string(a.u) + " vs " + std::to_string(b.u);
            return a.u == b.u;
        case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64:
            if (a.i != b.i) why = std::to_string(a.i) + " vs " + std::to_string(b.i);
            return a.i == b.i;
        case GGUFType::FLOAT32: case GGUFType::FLOAT64:
            if (std::memcmp(&a.f, &b.f, sizeof(double)) != 0) why = "float bits differ";
            return std::memcmp(&a.f, &b.f, sizeof(double)) == 0;
        case GGUFType::STRING:
            if (a.s != b.s) why = "string '" + a.s.substr(0, 40) + "' vs '" + b.s.substr(0, 40) + "'";
            return a.s == b.s;
        case GGUFType::ARRAY:
            if (a.elem_type != b.elem_type || a.arr.size() != b.arr.size()) {
                why = "array element type or length differs";
                return false;
            }
            for (size_t i = 0; i < a.arr.size(); ++i)
                if (!same_value(a.arr[i], b.arr[i], why)) {
                    why = "element " + std::to_string(i) + ": " + why;
                    return false;
                }
            return true;
    }
    return false;
}

// Both files hold the same keys in the same order with the same values, and the same tensors
// (name, type, shape, bytes) in the same order.
void check_same_content(const GGUFFile& a, const GGUFFile& b) {
    REQUIRE(a.keys() == b.keys());
    for (const auto& k : a.keys()) {
        std::string why;
        CHECK_MESSAGE(same_value(*a.find(k), *b.find(k), why), "key " << k << ": " << why);
    }
    REQUIRE(a.tensors().size() == b.tensors().size());
    for (size_t i = 0; i < a.tensors().size(); ++i) {
        const auto& x = a.tensors()[i];
        const auto& y = b.tensors()[i];
        INFO("tensor " << x.name);
        CHECK(x.name == y.name);
        CHECK(x.type == y.type);
        CHECK(x.n_dims == y.n_dims);
        for (int d = 0; d < 4; ++d) CHECK(x.ne[d] == y.ne[d]);
        REQUIRE(x.nbytes == y.nbytes);
        CHECK(std::memcmp(x.data, y.data, x.nbytes) == 0);
    }
}

// A scratch directory removed at the end of the test.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/tessera_test_gguf_XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

std::vector<std::string> shared_gguf_files() {
    std::vector<std::string> out;
    for (const char* dir : {"models", "golden", "vocab"}) {
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(shared_path(dir), ec))
            if (e.path().extension() == ".gguf") out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// A small writer-made file exercising several value types and two tensors. The last tensor's size is a
// multiple of 32, so the file has no trailing padding and every proper prefix is truncated data.
struct SmallFile {
    std::vector<float> a = testing::random_floats(8, 1);
    std::vector<uint8_t> q;  // Q8_0, 2 blocks
    std::vector<float> b = testing::random_floats(16, 2);
    std::vector<uint8_t> bytes;

    explicit SmallFile(const TempDir& dir) {
        q.resize(2 * 34);
        for (size_t i = 0; i < q.size(); ++i) q[i] = uint8_t(i * 7 + 3);
        GGUFWriter w;
        w.set_str("general.architecture", "llama");
        w.set_u32("llama.block_count", 2);
        w.set_f32("llama.rope.freq_base", 10000.0f);
        w.set_bool("tokenizer.ggml.add_bos_token", true);
        w.set_arr_str("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
        w.set_arr_f32("tokenizer.ggml.scores", {0.0f, -1.0f, -2.0f, -3.5f});
        w.set_arr_i32("tokenizer.ggml.token_type", {2, 3, 3, 1});
        w.add_tensor("a", DType::F32, {8}, a.data(), 32);
        w.add_tensor("q", DType::Q8_0, {32, 2}, q.data(), q.size());
        w.add_tensor("b", DType::F32, {4, 4}, b.data(), 64);
        const std::string path = dir.file("small.gguf");
        w.write(path);
        bytes = testing::read_file(path);
    }
};

}  // namespace

// ================================================================ valid files by hand

TEST_CASE("gguf: a hand-built v3 file parses to exactly what was written") {
    Raw r;
    r.header(3, 2, 3);
    r.kv_str("general.architecture", "llama");
    r.kv_u32("llama.context_length", 2048);
    r.str("arr").u32(9).u32(5).u64(3).u32(uint32_t(-1)).u32(0).u32(7);  // int32 array [-1, 0, 7]
    r.tensor("tok_embd.weight", {4, 2}, kF32, 0);
    r.tensor("blk.0.q", {32}, kQ8_0, 32);
    r.pad();
    const size_t data_start = r.b.size();
    for (int i = 0; i < 8; ++i) r.f32(float(i) + 0.5f);  // 32 bytes
    for (int i = 0; i < 34; ++i) r.u8(uint8_t(i));
    auto f = GGUFFile::from_memory(r.b.data(), r.b.size(), "hand.gguf");
    CHECK(f->version() == 3);
    CHECK(f->alignment() == 32);
    CHECK(f->data_offset() == data_start);
    CHECK(f->keys() == std::vector<std::string>{"general.architecture", "llama.context_length", "arr"});
    CHECK(f->get<std::string>("general.architecture") == "llama");
    CHECK(f->get<uint32_t>("llama.context_length") == 2048);
    CHECK(f->get_array<int32_t>("arr") == std::vector<int32_t>{-1, 0, 7});
    REQUIRE(f->tensors().size() == 2);
    const auto* t = f->find_tensor("tok_embd.weight");
    REQUIRE(t != nullptr);
    CHECK(t->type == DType::F32);
    CHECK(t->n_dims == 2);
    CHECK(t->ne[0] == 4);
    CHECK(t->ne[1] == 2);
    CHECK(t->ne[2] == 1);
    CHECK(t->ne[3] == 1);
    CHECK(t->n_elements() == 8);
    CHECK(t->nbytes == 32);
    CHECK(static_cast<const uint8_t*>(t->data) == static_cast<const uint8_t*>(f->file_data()) + data_start);
    float x;
    std::memcpy(&x, static_cast<const uint8_t*>(t->data) + 12, 4);
    CHECK(x == 3.5f);
    const auto* q = f->find_tensor("blk.0.q");
    REQUIRE(q != nullptr);
    CHECK(q->nbytes == 34);  // one Q8_0 block: fp16 scale + 32 int8
    CHECK(static_cast<const uint8_t*>(q->data)[5] == 5);
    CHECK(f->find_tensor("missing") == nullptr);
}

TEST_CASE("gguf: version 2 files load; a vocab-only file may end before the aligned data offset") {
    Raw r;
    r.header(2, 0, 1).kv_str("tokenizer.ggml.model", "llama");  // 24 + 8+20+4+8+5 = 69 bytes, not aligned
    auto f = GGUFFile::from_memory(r.b.data(), r.b.size(), "v2.gguf");
    CHECK(f->version() == 2);
    CHECK(f->tensors().empty());
    CHECK(f->get<std::string>("tokenizer.ggml.model") == "llama");
}

TEST_CASE("gguf: general.alignment moves the data section and tensor offsets") {
    Raw r;
    r.header(3, 2, 1).kv_u32("general.alignment", 64);
    r.tensor("a", {4}, kF32, 0).tensor("b", {4}, kF32, 64).pad(64);
    const size_t start = r.b.size();
    r.zeros(64 + 16);
    auto f = GGUFFile::from_memory(r.b.data(), r.b.size(), "a64.gguf");
    CHECK(f->alignment() == 64);
    CHECK(f->data_offset() == start);
    CHECK(f->data_offset() % 64 == 0);
    // An offset that is 32- but not 64-aligned is refused.
    Raw bad;
    bad.header(3, 1, 1).kv_u32("general.alignment", 64).tensor("a", {4}, kF32, 32).pad(64).zeros(64);
    check_rejects(bad, {"tensor #0 'a'", "not a multiple of the alignment 64"});
}

// ================================================================ header

TEST_CASE("gguf: bad magic, versions and endianness are named") {
    CHECK(parse_error({}).find("not a GGUF file") != std::string::npos);
    {
        Raw r;
        r.b = {'G', 'G', 'U'};
        check_rejects(r, {"not a GGUF file"});
    }
    {
        Raw r;
        r.b = {'G', 'G', 'M', 'L', 3, 0, 0, 0};
        check_rejects(r, {"not a GGUF file", "47 47 4d 4c"});
    }
    {
        Raw r;
        r.u32(0x67676a74u).zeros(20);  // 'ggjt' as llama.cpp's old writer stored it
        check_rejects(r, {"pre-GGUF"});
    }
    {
        Raw r;
        r.header(1, 0, 0);
        check_rejects(r, {"version 1", "no longer supported"});
    }
    {
        Raw r;
        r.header(4, 0, 0);
        check_rejects(r, {"unsupported GGUF version 4"});
    }
    {
        Raw r;
        r.header(0, 0, 0);
        check_rejects(r, {"unsupported GGUF version 0"});
    }
    {
        Raw r;
        r.header(0x03000000u, 0, 0);  // version 3 written big-endian
        check_rejects(r, {"big-endian", "version 3"});
    }
    {
        Raw r;
        r.header(3, 0, 0);
        r.b.resize(20);  // cut inside the key/value count
        check_rejects(r, {"truncated", "metadata key/value count"});
    }
}

// ================================================================ the llama.cpp GGUF CVE classes

TEST_CASE("gguf CVE class: string length overflow") {
    SUBCASE("key length of 2^64-1") {
        Raw r;
        r.header(3, 0, 1).u64(UINT64_MAX).zeros(16);
        check_rejects(r, {"metadata entry #0", "key length 18446744073709551615", "bytes left"});
    }
    SUBCASE("key length one past the end") {
        Raw r;
        r.header(3, 0, 1).u64(15).zeros(14);
        check_rejects(r, {"key length 15 is more than the 14 bytes left"});
    }
    SUBCASE("string value length overflow") {
        Raw r;
        r.header(3, 0, 1).str("general.name").u32(8).u64(UINT64_MAX - 7).zeros(8);
        check_rejects(r, {"key 'general.name'", "string value length"});
    }
    SUBCASE("string inside an array") {
        Raw r;
        r.header(3, 0, 1).str("tokenizer.ggml.tokens").u32(9).u32(8).u64(2).str("ok").u64(1ull << 40).zeros(8);
        check_rejects(r, {"key 'tokenizer.ggml.tokens'", "element 1", "string value length 1099511627776"});
    }
    SUBCASE("tensor name length overflow") {
        Raw r;
        r.header(3, 1, 0).u64(UINT64_MAX).zeros(40);
        check_rejects(r, {"tensor #0", "tensor name length"});
    }
}

TEST_CASE("gguf CVE class: n_dims too large (and zero)") {
    check_rejects(one_tensor({4, 1, 1, 1, 1}, kF32, 0, 16), {"tensor #0 'w'", "5 dimensions", "1 to 4"});
    {
        Raw r;
        r.header(3, 1, 0).str("w").u32(UINT32_MAX).i64(4).u32(0).u64(0).zeros(64);
        check_rejects(r, {"4294967295 dimensions"});
    }
    {
        Raw r;
        r.header(3, 1, 0).str("w").u32(0).u32(0).u64(0).zeros(64);
        check_rejects(r, {"0 dimensions"});
    }
}

TEST_CASE("gguf CVE class: huge tensor and key counts are refused before any allocation") {
    for (uint64_t n : {uint64_t(1) << 63, UINT64_MAX, uint64_t(1000)}) {
        Raw r;
        r.header(3, n, 0).zeros(64);
        check_rejects(r, {"tensors", "bytes left"});
        Raw k;
        k.header(3, 0, n).zeros(64);
        check_rejects(k, {"metadata keys", "bytes left"});
    }
    // The tensor count is checked again once the metadata is read: 2 tensors cannot fit in what is left.
    Raw r;
    r.header(3, 2, 1).kv_str("general.name", std::string(40, 'x')).zeros(40);
    check_rejects(r, {"2 tensors", "after the metadata"});
}

TEST_CASE("gguf CVE class: element-count and byte-size overflow") {
    SUBCASE("element count over 2^63") {
        check_rejects(one_tensor({int64_t(1) << 32, int64_t(1) << 32}, kF32, 0, 0), {"more than 2^63 elements"});
        check_rejects(one_tensor({INT64_MAX, 2}, kF32, 0, 0), {"more than 2^63 elements"});
    }
    SUBCASE("F32 bytes over 2^64 while the element count fits") {
        check_rejects(one_tensor({int64_t(1) << 31, int64_t(1) << 31}, kF32, 0, 0), {"more than 2^64 bytes"});
    }
    SUBCASE("sizes that fit 64 bits but not the file") {
        check_rejects(one_tensor({int64_t(1) << 40}, kF32, 0, 64), {"outside the", "data section"});
    }
    SUBCASE("offset + size wraps around 2^64") {
        check_rejects(one_tensor({8}, kF32, UINT64_MAX - 31, 64), {"outside the"});
    }
    SUBCASE("two tensors whose sizes sum past 2^64") {
        Raw r;
        r.header(3, 2, 0);
        r.tensor("a", {int64_t(1) << 61}, kF32, 0).tensor("b", {int64_t(1) << 61}, kF32, uint64_t(1) << 63);
        r.pad().zeros(64);
        check_rejects(r, {"'a'", "outside the"});
    }
}

TEST_CASE("gguf CVE class: row-size overflow for quantized types") {
    // llama.cpp's CVE: a row size computed as ne0 * block_bytes / block_size wraps before the division.
    // ne0 = 32 * (9^-1 mod 2^58): ne0 * 18 = 64 (mod 2^64), so the naive formula says the row is 2 bytes
    // and the tensor fits in the file. Its true size is ne0 / 32 * 18 = 2882303761517117442 bytes.
    check_rejects(one_tensor({5124095576030431008LL}, kQ4_0, 0, 64),
                  {"tensor #0 'w'", "+2882303761517117442 bytes", "outside the 64-byte data section"});
    // 2^62 elements of Q4_0: 2^57 blocks of 18 bytes = 2594073385365405696 bytes, reported exactly.
    check_rejects(one_tensor({int64_t(1) << 62}, kQ4_0, 0, 64), {"+2594073385365405696 bytes", "outside the"});
    // Quantized types take under 2 bytes per element, so once the element count fits in 63 bits their byte
    // size fits in 64: what matters is that it is exact. Q8_0, 2^40 x 2^22: 2^57 blocks of 34 bytes.
    check_rejects(one_tensor({int64_t(1) << 40, int64_t(1) << 22}, kQ8_0, 0, 64),
                  {"+4899916394579099648 bytes", "outside the"});
    // A row that is not a whole number of blocks.
    check_rejects(one_tensor({33, 2}, kQ4_0, 0, 64), {"first dimension 33", "block size 32"});
    check_rejects(one_tensor({100}, 12 /*Q4_K*/, 0, 256), {"first dimension 100", "q4_K", "256"});
}

TEST_CASE("gguf CVE class: alignment and padding") {
    auto with_alignment = [](uint32_t type, uint64_t value, bool wide) {
        Raw r;
        r.header(3, 1, 1).str("general.alignment").u32(type);
        if (wide) r.u64(value);
        else r.u32(uint32_t(value));
        r.tensor("w", {8}, kF32, 0).pad().zeros(64);
        return r;
    };
    check_rejects(with_alignment(4, 0, false), {"key 'general.alignment'", "not a power of two"});
    check_rejects(with_alignment(4, 48, false), {"alignment 48 is not a power of two"});
    check_rejects(with_alignment(4, 1u << 31, false), {"alignment 2147483648", "larger than"});
    check_rejects(with_alignment(4, 0xFFFFFFFFu, false), {"not a power of two"});
    check_rejects(with_alignment(10, 32, true), {"must be a uint32", "uint64"});
    // Padding to a large alignment runs past the end of a short file.
    {
        Raw r;
        r.header(3, 1, 1).kv_u32("general.alignment", 1u << 20).tensor("w", {8}, kF32, 0).zeros(64);
        check_rejects(r, {"data section would start at byte 1048576", "past the end"});
    }
    // Alignment 1 is a valid power of two: no padding at all.
    {
        Raw r;
        r.header(3, 1, 1).kv_u32("general.alignment", 1).tensor("w", {2}, kF32, 0);
        const size_t start = r.b.size();
        r.f32(1).f32(2);
        auto f = GGUFFile::from_memory(r.b.data(), r.b.size(), "a1.gguf");
        CHECK(f->data_offset() == start);
    }
}

// ================================================================ tensor infos

TEST_CASE("gguf: tensor type ids") {
    check_rejects(one_tensor({32}, 4, 0, 64), {"q4_2", "removed"});
    check_rejects(one_tensor({256}, 16, 0, 256), {"iq2_xxs", "does not support"});
    check_rejects(one_tensor({32}, 40, 0, 64), {"unknown type id 40"});
    // The 4-bit grid types: rows must hold whole blocks (IQ4_XS: 256 values, IQ4_NL / MXFP4: 32).
    check_rejects(one_tensor({32, 2}, uint32_t(DType::IQ4_XS), 0, 320), {"first dimension 32", "block size 256"});
    check_rejects(one_tensor({48}, uint32_t(DType::IQ4_NL), 0, 64), {"first dimension 48", "block size 32"});
    check_rejects(one_tensor({16, 3}, uint32_t(DType::MXFP4), 0, 64), {"first dimension 16", "block size 32"});
    check_rejects(one_tensor({32}, UINT32_MAX, 0, 64), {"unknown type id 4294967295"});
    // Every type tessera knows loads, with the byte size its traits give.
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                    DType::Q8_0, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K,
                    DType::IQ4_NL, DType::IQ4_XS, DType::MXFP4, DType::I8, DType::I16, DType::I32, DType::I64,
                    DType::F64}) {
        const auto& tr = type_traits(t);
        Raw r = one_tensor({tr.block_size * 2, 3}, uint32_t(t), 0, tr.block_bytes * 6);
        INFO(tr.name);
        auto f = GGUFFile::from_memory(r.b.data(), r.b.size(), "t.gguf");
        CHECK(f->tensors()[0].nbytes == tr.block_bytes * 6);
    }
}

TEST_CASE("gguf: dimensions must be positive") {
    check_rejects(one_tensor({0}, kF32, 0, 64), {"dimension 0 is 0"});
    check_rejects(one_tensor({4, -1}, kF32, 0, 64), {"dimension 1 is -1"});
    check_rejects(one_tensor({4, INT64_MIN}, kF32, 0, 64), {"dimension 1 is -9223372036854775808"});
}

TEST_CASE("gguf: tensor data must be aligned, inside the file and not overlapping") {
    check_rejects(one_tensor({8}, kF32, 16, 64), {"data offset 16 is not a multiple of the alignment 32"});
    check_rejects(one_tensor({8}, kF32, 32, 40), {"'w'", "outside the 40-byte data section"});
    check_rejects(one_tensor({8}, kF32, 0, 31), {"outside the 31-byte data section"});
    {
        Raw r;
        r.header(3, 2, 0).tensor("a", {16}, kF32, 0).tensor("b", {8}, kF32, 32).pad().zeros(64);
        check_rejects(r, {"'a'", "'b'", "overlap"});
    }
    {  // Out of order but disjoint is fine.
        Raw r;
        r.header(3, 2, 0).tensor("a", {8}, kF32, 32).tensor("b", {8}, kF32, 0).pad().zeros(64);
        auto f = GGUFFile::from_memory(r.b.data(), r.b.size(), "ok.gguf");
        CHECK(static_cast<const uint8_t*>(f->find_tensor("a")->data) ==
              static_cast<const uint8_t*>(f->find_tensor("b")->data) + 32);
    }
}

TEST_CASE("gguf: tensor names") {
    check_rejects(one_tensor({8}, kF32, 0, 32, std::string(64, 'n')), {"64 bytes long", "63"});
    {
        Raw ok = one_tensor({8}, kF32, 0, 32, std::string(63, 'n'));
        CHECK(parse_error(ok.b).empty());
    }
    check_rejects(one_tensor({8}, kF32, 0, 32, ""), {"tensor #0", "empty"});
    check_rejects(one_tensor({8}, kF32, 0, 32, std::string("a\0b", 3)), {"NUL"});
    check_rejects(one_tensor({8}, kF32, 0, 32, "bad\xff"), {"not valid UTF-8", "bad\\xff"});
    check_rejects(one_tensor({8}, kF32, 0, 32, "\xc0\x80"), {"not valid UTF-8"});  // overlong NUL
    CHECK(parse_error(one_tensor({8}, kF32, 0, 32, "blk.0.ffn_\xc3\xa9").b).empty());  // é is fine
    {
        Raw r;
        r.header(3, 2, 0).tensor("w", {8}, kF32, 0).tensor("w", {8}, kF32, 32).pad().zeros(64);
        check_rejects(r, {"tensor #1 'w'", "duplicate tensor name"});
    }
}

// ================================================================ metadata

TEST_CASE("gguf: keys") {
    {
        Raw r;
        r.header(3, 0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2);
        check_rejects(r, {"key 'a.b'", "duplicate key"});
    }
    {
        Raw r;
        r.header(3, 0, 1).kv_u32("", 1);
        check_rejects(r, {"metadata entry #0", "empty"});
    }
    {
        Raw r;
        r.header(3, 0, 1).kv_u32("k\xed\xa0\x80", 1);  // a UTF-16 surrogate encoded in UTF-8
        check_rejects(r, {"not valid UTF-8"});
    }
    {
        Raw r;
        r.header(3, 0, 1).kv_u32(std::string("k\0", 2), 1);
        check_rejects(r, {"NUL"});
    }
    {  // Control bytes in names are escaped in messages, never printed raw.
        Raw r;
        r.header(3, 0, 2).kv_u32("\x1b[31m", 1).kv_u32("\x1b[31m", 2);
        const std::string msg = parse_error(r.b);
        CHECK(msg.find('\x1b') == std::string::npos);
        CHECK(msg.find("\\x1b[31m") != std::string::npos);
    }
}

TEST_CASE("gguf: value types") {
    {
        Raw r;
        r.header(3, 0, 1).str("k").u32(13).u32(0);
        check_rejects(r, {"key 'k'", "value type 13"});
    }
    {
        Raw r;
        r.header(3, 0, 1).str("k").u32(7).u8(2);
        check_rejects(r, {"key 'k'", "bool value is 2"});
    }
    {
        Raw r;
        r.header(3, 0, 1).str("k").u32(9).u32(77).u64(0);
        check_rejects(r, {"key 'k'", "array element type 77"});
    }
    {  // Array counts are bounded by the bytes left before anything is allocated.
        Raw r;
        r.header(3, 0, 1).str("k").u32(9).u32(10).u64(uint64_t(1) << 61).zeros(16);
        check_rejects(r, {"array of 2305843009213693952 uint64 elements", "8 bytes per element"});
        Raw s;
        s.header(3, 0, 1).str("k").u32(9).u32(8).u64(UINT64_MAX / 2).zeros(16);
        check_rejects(s, {"string elements"});
        Raw a;
        a.header(3, 0, 1).str("k").u32(9).u32(9).u64(2).zeros(12);  // room for one empty sub-array only
        check_rejects(a, {"array of 2 array elements", "12 bytes per element"});
    }
    {  // Truncated scalars.
        Raw r;
        r.header(3, 0, 1).str("k").u32(12).u32(0);
        check_rejects(r, {"key 'k'", "truncated", "float64 value"});
    }
}

TEST_CASE("gguf: nested arrays are bounded in depth") {
    auto nested = [](int levels) {
        // `levels` arrays inside each other, the innermost holding one uint8.
        Raw r;
        r.header(3, 0, 1).str("deep").u32(9);
        for (int l = 0; l < levels - 1; ++l) r.u32(9).u64(1);
        r.u32(0).u64(1).u8(42);
        return r;
    };
    Raw ok = nested(kGGUFMaxArrayDepth);
    auto f = GGUFFile::from_memory(ok.b.data(), ok.b.size(), "deep.gguf");
    const GGUFValue* v = f->find("deep");
    for (int l = 0; l < kGGUFMaxArrayDepth; ++l) {
        REQUIRE(v->type == GGUFType::ARRAY);
        REQUIRE(v->arr.size() == 1);
        v = &v->arr[0];
    }
    CHECK(v->type == GGUFType::UINT8);
    CHECK(v->u == 42);
    check_rejects(nested(kGGUFMaxArrayDepth + 1), {"key 'deep'", "nested more than 8 deep"});
    check_rejects(nested(100000), {"nested more than"});
}

TEST_CASE("gguf: typed access converts integers that fit and names the key and stored type otherwise") {
    Raw r;
    r.header(3, 0, 9);
    r.kv_u32("u32", 300);
    r.str("i8").u32(1).u8(uint8_t(-5));
    r.str("u64big").u32(10).u64(uint64_t(1) << 40);
    r.str("f64").u32(12).put(2.5);
    r.str("f32").u32(6).f32(0.25f);
    r.str("flag").u32(7).u8(1);
    r.kv_str("name", "tiny");
    r.str("ids").u32(9).u32(4).u64(3).u32(1).u32(2).u32(0x80000000u);
    r.str("toks").u32(9).u32(8).u64(2).str("a").str("\xe2\x96\x81" "b");
    auto f = GGUFFile::from_memory(r.b.data(), r.b.size(), "m.gguf");

    CHECK(f->get<uint32_t>("u32") == 300);
    CHECK(f->get<int>("u32") == 300);
    CHECK(f->get<int64_t>("u32") == 300);
    CHECK(f->get<uint16_t>("u32") == 300);
    CHECK(f->get<int8_t>("i8") == -5);
    CHECK(f->get<int64_t>("i8") == -5);
    CHECK(f->get<uint64_t>("u64big") == (uint64_t(1) << 40));
    CHECK(f->get<double>("f64") == 2.5);
    CHECK(f->get<float>("f64") == 2.5f);
    CHECK(f->get<float>("f32") == 0.25f);
    CHECK(f->get<bool>("flag") == true);
    CHECK(f->get<std::string>("name") == "tiny");
    CHECK(f->get_or<uint32_t>("missing", 77) == 77);
    CHECK(f->get_or<uint32_t>("u32", 77) == 300);
    CHECK(f->get_or<std::string>("missing", "dflt") == "dflt");
    CHECK(f->has("u32"));
    CHECK(!f->has("missing"));
    CHECK(f->get_array<uint32_t>("ids") == std::vector<uint32_t>{1, 2, 0x80000000u});
    CHECK(f->get_array<int64_t>("ids") == std::vector<int64_t>{1, 2, 0x80000000ll});
    CHECK(f->get_array<std::string>("toks") == std::vector<std::string>{"a", "\xe2\x96\x81" "b"});

    auto msg = [&](auto fn) -> std::string {
        try {
            fn();
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    };
    CHECK(msg([&] { f->get<uint8_t>("u32"); }) == "m.gguf: key 'u32' holds 300, which does not fit in uint8");
    CHECK(msg([&] { f->get<uint32_t>("i8"); }) == "m.gguf: key 'i8' holds -5, which does not fit in uint32");
    CHECK(msg([&] { f->get<int32_t>("u64big"); }) ==
          "m.gguf: key 'u64big' holds 1099511627776, which does not fit in int32");
    CHECK(msg([&] { f->get<uint32_t>("name"); }) == "m.gguf: key 'name' is a string, not an integer");
    CHECK(msg([&] { f->get<std::string>("u32"); }) == "m.gguf: key 'u32' is a uint32, not a string");
    CHECK(msg([&] { f->get<float>("u32"); }) == "m.gguf: key 'u32' is a uint32, not a float");
    CHECK(msg([&] { f->get<bool>("u32"); }) == "m.gguf: key 'u32' is a uint32, not a bool");
    CHECK(msg([&] { f->get<int>("flag"); }) == "m.gguf: key 'flag' is a bool, not an integer");
    CHECK(msg([&] { f->get<uint32_t>("ids"); }) == "m.gguf: key 'ids' is an array of uint32, not an integer");
    CHECK(msg([&] { f->get<uint32_t>("nope"); }) == "m.gguf: key 'nope' not found");
    CHECK(msg([&] { f->get_array<uint32_t>("u32"); }) == "m.gguf: key 'u32' is a uint32, not an array");
    CHECK(msg([&] { f->get_array<int32_t>("ids"); }) ==
          "m.gguf: key 'ids' element 2 holds 2147483648, which does not fit in int32");
    CHECK(msg([&] { f->get_array<float>("toks"); }) == "m.gguf: key 'toks' element 0 is a string, not a float");
    CHECK(msg([&] { f->get_array<std::string>("nope"); }) == "m.gguf: key 'nope' not found");
    CHECK(msg([&] { f->get_or<uint8_t>("u32", 1); }).find("does not fit in uint8") != std::string::npos);
}

TEST_CASE("gguf: value_to_string abbreviates long arrays and escapes strings") {
    std::vector<GGUFValue> many;
    for (int i = 0; i < 100; ++i) many.push_back(val_i(GGUFType::INT32, i - 3));
    CHECK(GGUFFile::value_to_string(val_arr(GGUFType::INT32, many), 4) == "[-3, -2, -1, 0, ... (100 total)]");
    CHECK(GGUFFile::value_to_string(val_arr(GGUFType::INT32, {many[0], many[1]})) == "[-3, -2]");
    CHECK(GGUFFile::value_to_string(val_s("a\"b\n\x01")) == "\"a\\\"b\\n\\x01\"");
    CHECK(GGUFFile::value_to_string(val_f(GGUFType::FLOAT32, 0.1f)) == "0.1");
    CHECK(GGUFFile::value_to_string(val_f(GGUFType::FLOAT64, 1e300)) == "1e+300");
    CHECK(GGUFFile::value_to_string(val_u(GGUFType::BOOL, 1)) == "true");
    CHECK(GGUFFile::value_to_string(val_u(GGUFType::UINT64, UINT64_MAX)) == "18446744073709551615");
    CHECK(GGUFFile::value_to_string(val_arr(GGUFType::ARRAY, {val_arr(GGUFType::STRING, {val_s("x")})})) ==
          "[[\"x\"]]");
}

// ================================================================ truncation and corruption

TEST_CASE("gguf: every truncation of a small valid file is an Error, never a crash") {
    TempDir dir;
    SmallFile small(dir);
    REQUIRE(parse_error(small.bytes).empty());
    for (size_t n = 0; n < small.bytes.size(); ++n) {
        const std::string msg = parse_error(small.bytes, n);
        INFO("truncated to " << n << " of " << small.bytes.size() << " bytes");
        REQUIRE(!msg.empty());
        CHECK(msg.rfind("bad.gguf: ", 0) == 0);
    }
}

TEST_CASE("gguf: random byte corruption gives an Error or a consistent file, never a crash") {
    TempDir dir;
    SmallFile small(dir);
    std::mt19937_64 rng(12345);
    int accepted = 0, rejected = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        std::vector<uint8_t> b = small.bytes;
        const int flips = 1 + int(rng() % 4);
        for (int k = 0; k < flips; ++k) {
            // Most interesting bytes are in the header and infos; hit them more often than the data.
            const size_t pos = rng() % 2 ? rng() % std::min<size_t>(b.size(), 400) : rng() % b.size();
            b[pos] = rng() % 3 == 0 ? uint8_t(0xFF) : uint8_t(rng());
        }
        try {
            auto f = GGUFFile::from_memory(b.data(), b.size(), "x.gguf");
            ++accepted;
            for (const auto& k : f->keys()) (void)GGUFFile::value_to_string(*f->find(k));
            const auto* base = static_cast<const uint8_t*>(f->file_data());
            for (const auto& t : f->tensors()) {
                const auto* p = static_cast<const uint8_t*>(t.data);
                REQUIRE(p >= base);
                REQUIRE(size_t(p - base) + t.nbytes <= f->file_size());
            }
        } catch (const Error&) {
            ++rejected;
        }
    }
    MESSAGE("corrupted files accepted: " << accepted << ", rejected: " << rejected);
    CHECK(rejected > 0);
}

TEST_CASE("gguf: truncating a shared model at section boundaries and random offsets") {
    if (!shared_available()) {
        MESSAGE("skipped: ../shared is missing");
        return;
    }
    const std::string path = shared_path("models/stories260K.gguf");
    const auto bytes = testing::read_file(path);
    auto f = GGUFFile::open(path);
    // Section boundaries: inside the header, just after it, data offset - 1, at the data offset, the last byte.
    std::vector<size_t> cuts = {0, 3, 4, 8, 23, 24, 25, f->data_offset() - 1, f->data_offset()};
    for (const auto& t : f->tensors()) {
        size_t start = static_cast<const uint8_t*>(t.data) - static_cast<const uint8_t*>(f->file_data());
        cuts.push_back(start + t.nbytes - 1);  // cuts off the last byte of each tensor
    }
    std::mt19937_64 rng(7);
    for (int i = 0; i < 20; ++i) cuts.push_back(rng() % f->data_offset());
    for (size_t n : cuts) {
        INFO("cut at " << n);
        CHECK(!parse_error(bytes, n).empty());
    }
}

// ================================================================ writer

TEST_CASE("gguf writer: write -> read gives back every value type, nested arrays and tensors") {
    TempDir dir;
    GGUFWriter w;
    std::vector<std::pair<std::string, GGUFValue>> kvs = {
        {"t.u8", val_u(GGUFType::UINT8, 255)},
        {"t.i8", val_i(GGUFType::INT8, -128)},
        {"t.u16", val_u(GGUFType::UINT16, 65535)},
        {"t.i16", val_i(GGUFType::INT16, -32768)},
        {"t.u32", val_u(GGUFType::UINT32, 4000000000u)},
        {"t.i32", val_i(GGUFType::INT32, INT32_MIN)},
        {"t.f32", val_f(GGUFType::FLOAT32, double(-1.5e-7f))},
        {"t.bool", val_u(GGUFType::BOOL, 0)},
        {"t.str", val_s(std::string("bytes \0\xff\x01 ok", 12))},
        {"t.empty_str", val_s("")},
        {"t.u64", val_u(GGUFType::UINT64, UINT64_MAX)},
        {"t.i64", val_i(GGUFType::INT64, INT64_MIN)},
        {"t.f64", val_f(GGUFType::FLOAT64, 3.141592653589793)},
        {"t.arr_empty", val_arr(GGUFType::FLOAT32, {})},
        {"t.arr_bool", val_arr(GGUFType::BOOL, {val_u(GGUFType::BOOL, 1), val_u(GGUFType::BOOL, 0)})},
        {"t.arr_i16", val_arr(GGUFType::INT16, {val_i(GGUFType::INT16, -2), val_i(GGUFType::INT16, 300)})},
        {"t.arr_f64", val_arr(GGUFType::FLOAT64, {val_f(GGUFType::FLOAT64, -0.0), val_f(GGUFType::FLOAT64, 1e300)})},
        {"t.nested", val_arr(GGUFType::ARRAY, {val_arr(GGUFType::STRING, {val_s("a"), val_s("bc")}),
                                               val_arr(GGUFType::UINT8, {val_u(GGUFType::UINT8, 9)}),
                                               val_arr(GGUFType::ARRAY, {val_arr(GGUFType::INT64, {})})})},
    };
    for (const auto& [k, v] : kvs) w.set(k, v);
    w.set_u32("t.u32", 17);  // replaces in place: order stays
    kvs[4].second.u = 17;
    w.set_alignment(64);
    kvs.emplace_back("general.alignment", val_u(GGUFType::UINT32, 64));

    // Tensors of several types and ranks with recognizable bytes.
    struct T { std::string name; DType type; std::vector<int64_t> ne; std::vector<uint8_t> data; };
    std::vector<T> ts = {{"f32_1d", DType::F32, {7}, {}},         {"f16_2d", DType::F16, {3, 5}, {}},
                         {"bf16_3d", DType::BF16, {2, 3, 4}, {}}, {"q4_0", DType::Q4_0, {64, 3}, {}},
                         {"q8_0_4d", DType::Q8_0, {32, 2, 1, 2}, {}}, {"q4_K", DType::Q4_K, {256, 2}, {}},
                         {"q6_K", DType::Q6_K, {256}, {}},        {"i32", DType::I32, {5}, {}}};
    std::mt19937 rng(3);
    for (auto& t : ts) {
        size_t n = row_bytes(t.type, t.ne[0]);
        for (size_t d = 1; d < t.ne.size(); ++d) n *= size_t(t.ne[d]);
        t.data.resize(n);
        for (auto& b : t.data) b = uint8_t(rng());
        w.add_tensor(t.name, t.type, t.ne, t.data.data(), t.data.size());
    }
    const std::string path = dir.file("all.gguf");
    w.write(path);

    // The bytes start with the v3 header written by hand here, independent of the reader.
    const auto raw = testing::read_file(path);
    Raw head;
    head.header(3, ts.size(), kvs.size());
    REQUIRE(raw.size() > head.b.size());
    CHECK(std::equal(head.b.begin(), head.b.end(), raw.begin()));

    auto f = GGUFFile::open(path);
    CHECK(f->version() == 3);
    CHECK(f->alignment() == 64);
    CHECK(f->data_offset() % 64 == 0);
    REQUIRE(f->keys().size() == kvs.size());
    for (size_t i = 0; i < kvs.size(); ++i) {
        INFO("key " << kvs[i].first);
        CHECK(f->keys()[i] == kvs[i].first);
        std::string why;
        CHECK_MESSAGE(same_value(*f->find(kvs[i].first), kvs[i].second, why), why);
    }
    REQUIRE(f->tensors().size() == ts.size());
    uint64_t expected_offset = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
        const auto& got = f->tensors()[i];
        INFO("tensor " << ts[i].name);
        CHECK(got.name == ts[i].name);
        CHECK(got.type == ts[i].type);
        CHECK(got.n_dims == int(ts[i].ne.size()));
        for (int d = 0; d < 4; ++d) CHECK(got.ne[d] == (d < int(ts[i].ne.size()) ? ts[i].ne[d] : 1));
        CHECK(got.offset == expected_offset);  // packed in order, each padded to 64 as llama.cpp lays them out
        expected_offset += (ts[i].data.size() + 63) / 64 * 64;
        REQUIRE(got.nbytes == ts[i].data.size());
        CHECK(std::memcmp(got.data, ts[i].data.data(), got.nbytes) == 0);
    }
    CHECK(f->file_size() == f->data_offset() + expected_offset);

    // No temporary files are left beside the result.
    int entries = 0;
    for (const auto& e : fs::directory_iterator(dir.path)) entries += e.is_regular_file();
    CHECK(entries == 1);
}

TEST_CASE("gguf writer: refuses what the reader would reject, leaving no file behind") {
    TempDir dir;
    std::vector<float> data(64);
    auto err = [](auto fn) -> std::string {
        try {
            fn();
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    };
    GGUFWriter w;
    CHECK(err([&] { w.add_tensor(std::string(64, 'x'), DType::F32, {4}, data.data(), 16); }).find("64 bytes long") !=
          std::string::npos);
    CHECK(err([&] { w.add_tensor("a", DType::F32, {4}, data.data(), 12); }).find("takes 16 bytes, but 12") !=
          std::string::npos);
    CHECK(err([&] { w.add_tensor("a", DType::Q4_0, {16}, data.data(), 9); }).find("block size") != std::string::npos);
    CHECK(err([&] { w.add_tensor("a", DType::F32, {4, 0}, data.data(), 0); }).find("dimension 1 is 0") !=
          std::string::npos);
    CHECK(err([&] { w.add_tensor("a", DType::F32, {1, 1, 1, 1, 1}, data.data(), 4); }).find("5 dimensions") !=
          std::string::npos);
    CHECK(err([&] { w.add_tensor("a", DType(16), {256}, data.data(), 66); }).find("iq2_xxs") != std::string::npos);
    w.add_tensor("a", DType::F32, {4}, data.data(), 16);
    CHECK(err([&] { w.add_tensor("a", DType::F32, {4}, data.data(), 16); }).find("added twice") != std::string::npos);
    CHECK(err([&] { w.set_alignment(48); }).find("not a power of two") != std::string::npos);
    CHECK(err([&] { w.set_alignment(size_t(1) << 21); }).find("not a power of two in 1 .. 1048576") !=
          std::string::npos);
    CHECK(err([&] { w.set("", val_u(GGUFType::UINT32, 1)); }).find("empty") != std::string::npos);
    CHECK(err([&] { w.set("k", val_u(GGUFType::UINT8, 256)); }).find("does not fit in uint8") != std::string::npos);
    CHECK(err([&] { w.set("k", val_arr(GGUFType::UINT32, {val_s("x")})); })
              .find("element 0 is a string in an array of uint32") != std::string::npos);
    CHECK(err([&] { w.set("general.alignment", val_u(GGUFType::UINT64, 64)); }).find("must be a uint32") !=
          std::string::npos);
    GGUFValue deep = val_u(GGUFType::UINT8, 1);
    for (int i = 0; i <= kGGUFMaxArrayDepth; ++i) deep = val_arr(deep.type, {deep});
    CHECK(err([&] { w.set("deep", deep); }).find("nested more than") != std::string::npos);

    // A write that cannot complete names the path and leaves nothing behind.
    const std::string bad = dir.file("no/such/dir/x.gguf");
    CHECK(err([&] { w.write(bad); }).find(bad) == 0);
    int entries = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir.path)) entries += e.is_regular_file();
    CHECK(entries == 0);
}

// ================================================================ shared files

TEST_CASE("gguf: every shared GGUF file loads") {
    if (!shared_available()) {
        MESSAGE("skipped: ../shared is missing");
        return;
    }
    const auto files = shared_gguf_files();
    CHECK(files.size() >= 28);  // 2 models + 16 golden + 10 vocab at the time of writing
    for (const auto& path : files) {
        INFO(path);
        std::unique_ptr<GGUFFile> f;
        CHECK_NOTHROW(f = GGUFFile::open(path));
        if (!f) continue;
        CHECK(f->has("general.architecture"));
        for (const auto& k : f->keys()) CHECK(f->find(k) != nullptr);
    }
}

TEST_CASE("gguf: facts about the shared models read through typed access") {
    if (!shared_available()) {
        MESSAGE("skipped: ../shared is missing");
        return;
    }
    // From ../shared/models/README.md.
    auto s = GGUFFile::open(shared_path("models/stories260K.gguf"));
    CHECK(s->get<std::string>("general.architecture") == "llama");
    CHECK(s->get<uint32_t>("llama.block_count") == 5);
    CHECK(s->get<uint32_t>("llama.embedding_length") == 64);
    CHECK(s->get<uint32_t>("llama.attention.head_count") == 8);
    CHECK(s->get<uint32_t>("llama.attention.head_count_kv") == 4);
    CHECK(s->get<uint32_t>("tokenizer.ggml.bos_token_id") == 1);
    CHECK(s->get<uint32_t>("tokenizer.ggml.eos_token_id") == 2);
    CHECK(s->get<uint32_t>("tokenizer.ggml.unknown_token_id") == 0);
    CHECK(!s->has("llama.rope.freq_base"));
    CHECK(s->get_array<std::string>("tokenizer.ggml.tokens").size() == 512);
    CHECK(s->find_tensor("output.weight") != nullptr);
    CHECK(s->find_tensor("token_embd.weight") != nullptr);
    CHECK(s->find_tensor("token_embd.weight")->type == DType::F32);

    auto t = GGUFFile::open(shared_path("models/llama-2-tiny-random.gguf"));
    CHECK(t->get_array<std::string>("tokenizer.ggml.tokens").size() == 32000);
    CHECK(t->get<uint32_t>("llama.block_count") == 1);
    CHECK(t->get<uint32_t>("llama.embedding_length") == 8);
    bool has_f16 = false;
    for (const auto& ti : t->tensors()) has_f16 |= ti.type == DType::F16;
    CHECK(has_f16);
}

TEST_CASE("gguf writer: re-writing every shared file gives the same content, byte for byte") {
    if (!shared_available()) {
        MESSAGE("skipped: ../shared is missing");
        return;
    }
    TempDir dir;
    for (const auto& path : shared_gguf_files()) {
        INFO(path);
        auto src = GGUFFile::open(path);
        GGUFWriter w;
        for (const auto& k : src->keys()) w.set(k, *src->find(k));
        for (const auto& t : src->tensors())
            w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.nbytes);
        const std::string out = dir.file("copy.gguf");
        w.write(out);
        auto copy = GGUFFile::open(out);
        check_same_content(*src, *copy);
        // llama.cpp lays out v3 files the same way (insertion order, each tensor padded to the alignment),
        // so a faithful writer reproduces them exactly.
        if (src->version() == 3) {
            const auto a = testing::read_file(path);
            const auto b = testing::read_file(out);
            CHECK(a.size() == b.size());
            CHECK((a == b));
        }
    }
}

// ================================================================ tessera inspect

TEST_CASE("tessera inspect: text and JSON for a shared model; errors for a bad file") {
    TempDir dir;
    std::string out;
    if (shared_available()) {
        const std::string model = shared_path("models/stories260K.gguf");
        const int rc = testing::run_command(cli_path() + " inspect " + model, &out);
        INFO(cli_path() << " inspect: " << out);
        REQUIRE(rc == 0);
        CHECK(out.find("version") != std::string::npos);
        CHECK(out.find("general.architecture") != std::string::npos);
        CHECK(out.find("\"llama\"") != std::string::npos);
        CHECK(out.find("token_embd.weight") != std::string::npos);
        CHECK(out.find("(512 total)") != std::string::npos);  // the vocab array is abbreviated
        CHECK(out.find("f32") != std::string::npos);

        out.clear();
        REQUIRE(testing::run_command(cli_path() + " inspect --json " + model, &out) == 0);
        CHECK(out.find("\"tensors\"") != std::string::npos);
        CHECK(out.find("\"general.architecture\"") != std::string::npos);
        CHECK(out.find("\"name\": \"token_embd.weight\"") != std::string::npos);
        CHECK(out.front() == '{');
        // Braces and brackets outside strings balance: one well-formed document.
        int depth = 0;
        bool in_str = false, esc = false, ok = true;
        for (char c : out) {
            if (in_str) {
                if (esc) esc = false;
                else if (c == '\\') esc = true;
                else if (c == '"') in_str = false;
                else if (static_cast<unsigned char>(c) < 0x20) ok = false;  // raw control byte inside a string
            } else if (c == '"') in_str = true;
            else if (c == '{' || c == '[') ++depth;
            else if (c == '}' || c == ']') ok &= --depth >= 0;
        }
        CHECK(ok);
        CHECK(depth == 0);
        CHECK(!in_str);
    }
    // A hostile file: an error naming the file and the problem, exit status 1.
    const std::string bad = dir.file("bad.gguf");
    {
        Raw r;
        r.header(3, 1, 0).str("w").u32(9).zeros(64);
        FILE* fp = std::fopen(bad.c_str(), "wb");
        REQUIRE(fp);
        std::fwrite(r.b.data(), 1, r.b.size(), fp);
        std::fclose(fp);
    }
    out.clear();
    CHECK(testing::run_command(cli_path() + " inspect " + bad, &out) == 1);
    CHECK(out.find("error") != std::string::npos);
    CHECK(out.find(bad) != std::string::npos);
    CHECK(out.find("9 dimensions") != std::string::npos);
    out.clear();
    CHECK(testing::run_command(cli_path() + " inspect " + dir.file("missing.gguf"), &out) == 1);
    CHECK(out.find("cannot open") != std::string::npos);
}
