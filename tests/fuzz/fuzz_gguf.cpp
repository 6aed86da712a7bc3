// libFuzzer target for the GGUF reader. Any input must either parse or throw tessera::Error; a crash,
// sanitizer report, leak, other exception or a broken invariant below is a finding.
//
// Invariants on accepted files:
//  - every tensor's bytes lie inside the file, are aligned and touchable; find_tensor finds each by name;
//  - every key is found, formats, and typed access either converts or throws tessera::Error;
//  - the writer accepts everything the reader accepted, and writing + re-reading gives the same content.
// Built and run by tests/fuzz/run.sh (`make fuzz`).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

#include "core/error.h"
#include "core/gguf.h"

using namespace tessera;

namespace {

[[noreturn]] void broken(const char* what) {
    std::fprintf(stderr, "fuzz_gguf: invariant broken: %s\n", what);
    std::abort();
}

template <class F> void expect_value_or_error(F fn) {
    try {
        fn();
    } catch (const Error&) {
    }
}

void walk_metadata(const GGUFFile& f) {
    for (const auto& k : f.keys()) {
        const GGUFValue* v = f.find(k);
        if (!v) broken("listed key not found");
        volatile size_t n = GGUFFile::value_to_string(*v, 8).size();
        (void)n;
        expect_value_or_error([&] { (void)f.get<uint32_t>(k); });
        expect_value_or_error([&] { (void)f.get<int64_t>(k); });
        expect_value_or_error([&] { (void)f.get<int8_t>(k); });
        expect_value_or_error([&] { (void)f.get<float>(k); });
        expect_value_or_error([&] { (void)f.get<bool>(k); });
        expect_value_or_error([&] { (void)f.get<std::string>(k); });
        expect_value_or_error([&] { (void)f.get_array<std::string>(k); });
        expect_value_or_error([&] { (void)f.get_array<int32_t>(k); });
        expect_value_or_error([&] { (void)f.get_array<double>(k); });
    }
}

void walk_tensors(const GGUFFile& f) {
    const auto* base = static_cast<const uint8_t*>(f.file_data());
    uint64_t sum = 0;
    for (const auto& t : f.tensors()) {
        if (f.find_tensor(t.name) != &t) broken("find_tensor does not find a listed tensor");
        const auto* p = static_cast<const uint8_t*>(t.data);
        if (p < base + f.data_offset() || size_t(p - base) > f.file_size() || t.nbytes > f.file_size() - size_t(p - base))
            broken("tensor data outside the file");
        if ((size_t(p - base) - f.data_offset()) % f.alignment() != 0) broken("tensor data not aligned");
        if (t.n_dims < 1 || t.n_dims > 4 || t.n_elements() <= 0) broken("bad shape accepted");
        if (row_bytes(t.type, t.ne[0]) * size_t(t.ne[1]) * size_t(t.ne[2]) * size_t(t.ne[3]) != t.nbytes)
            broken("nbytes disagrees with the shape");
        sum += p[0] + p[t.nbytes - 1];  // touch both ends: ASan checks the copy's bounds
        (void)type_name(t.type);
    }
    volatile uint64_t keep = sum;
    (void)keep;
}

void round_trip(const GGUFFile& f) {
    GGUFWriter w;
    try {
        for (const auto& k : f.keys()) w.set(k, *f.find(k));
        for (const auto& t : f.tensors())
            w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), t.data, t.nbytes);
    } catch (const Error& e) {
        std::fprintf(stderr, "writer refused: %s\n", e.what());
        broken("the writer refuses a file the reader accepted");
    }
    static std::string path = [] {
        const char* dir = std::getenv("FUZZ_TMPDIR");
        return std::string(dir ? dir : "/tmp") + "/fuzz_gguf_" + std::to_string(getpid()) + ".gguf";
    }();
    try {
        w.write(path);
    } catch (const Error& e) {
        std::fprintf(stderr, "write failed: %s\n", e.what());
        broken("writing an accepted file failed");
    }
    std::unique_ptr<GGUFFile> g;
    try {
        g = GGUFFile::open(path);
    } catch (const Error& e) {
        std::fprintf(stderr, "re-read failed: %s\n", e.what());
        broken("the reader rejects what the writer wrote");
    }
    if (g->keys() != f.keys()) broken("keys differ after a round trip");
    for (const auto& k : f.keys())
        if (GGUFFile::value_to_string(*f.find(k), SIZE_MAX) != GGUFFile::value_to_string(*g->find(k), SIZE_MAX))
            broken("a value differs after a round trip");
    if (g->tensors().size() != f.tensors().size()) broken("tensor count differs after a round trip");
    for (size_t i = 0; i < f.tensors().size(); ++i) {
        const auto& a = f.tensors()[i];
        const auto& b = g->tensors()[i];
        if (a.name != b.name || a.type != b.type || a.nbytes != b.nbytes || std::memcmp(a.ne, b.ne, sizeof a.ne) != 0 ||
            std::memcmp(a.data, b.data, a.nbytes) != 0)
            broken("a tensor differs after a round trip");
    }
    unlink(path.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::unique_ptr<GGUFFile> f;
    try {
        f = GGUFFile::from_memory(data, size, "fuzz.gguf");
    } catch (const Error& e) {
        if (std::strncmp(e.what(), "fuzz.gguf: ", 11) != 0) broken("an error that does not name the file");
        return 0;
    }
    walk_metadata(*f);
    walk_tensors(*f);
    round_trip(*f);
    return 0;
}
