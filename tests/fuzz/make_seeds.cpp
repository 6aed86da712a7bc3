// Makes a small seed corpus for fuzz_gguf: miniature copies of real GGUF files (every key kept, arrays cut to
// a few elements, at most a dozen tensors shrunk to one or two blocks per row) plus a few hand-picked shapes.
// Real files are megabytes; small seeds keep each fuzz execution fast while keeping the real structure.
//   make_seeds OUT_DIR FILE.gguf...
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"

using namespace tessera;

namespace {

GGUFValue shrink(const GGUFValue& v, size_t max_elems) {
    GGUFValue out = v;
    if (v.type == GGUFType::ARRAY) {
        out.arr.clear();
        for (size_t i = 0; i < v.arr.size() && i < max_elems; ++i) out.arr.push_back(shrink(v.arr[i], max_elems));
    } else if (v.type == GGUFType::STRING && out.s.size() > 64) {
        out.s.resize(64);  // chat templates run to kilobytes
    }
    return out;
}

void miniature(const std::string& src, const std::string& dst) {
    auto f = GGUFFile::open(src);
    GGUFWriter w;
    for (const auto& k : f->keys()) w.set(k, shrink(*f->find(k), 6));
    std::vector<std::vector<uint8_t>> keep;
    size_t n = 0;
    for (const auto& t : f->tensors()) {
        if (n++ == 12) break;
        const TypeTraits& tr = type_traits(t.type);
        std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
        ne[0] = tr.block_size * (t.ne[0] / tr.block_size > 1 ? 2 : 1);
        for (size_t d = 1; d < ne.size(); ++d) ne[d] = ne[d] > 2 ? 2 : ne[d];
        size_t bytes = row_bytes(t.type, ne[0]);
        for (size_t d = 1; d < ne.size(); ++d) bytes *= size_t(ne[d]);
        keep.emplace_back(static_cast<const uint8_t*>(t.data), static_cast<const uint8_t*>(t.data) + bytes);
        w.add_tensor(t.name, t.type, ne, keep.back().data(), bytes);
    }
    w.write(dst);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: make_seeds OUT_DIR FILE.gguf...\n");
        return 2;
    }
    const std::string out = argv[1];
    int made = 0;
    for (int i = 2; i < argc; ++i) {
        std::string base = argv[i];
        base = base.substr(base.find_last_of('/') + 1);
        try {
            miniature(argv[i], out + "/mini-" + base);
            ++made;
        } catch (const Error& e) {
            std::fprintf(stderr, "make_seeds: skipping %s: %s\n", argv[i], e.what());
        }
    }
    // Hand-picked shapes: v3 with every value type and a non-default alignment; nothing at all.
    GGUFWriter w;
    GGUFValue nested;
    nested.type = GGUFType::ARRAY;
    nested.elem_type = GGUFType::ARRAY;
    nested.arr.resize(1);
    nested.arr[0].type = GGUFType::ARRAY;
    nested.arr[0].elem_type = GGUFType::INT64;
    w.set("a.nested", nested);
    w.set_u32("a.u32", 7);
    w.set_i32("a.i32", -7);
    w.set_u64("a.u64", 1);
    w.set_f32("a.f32", 0.5f);
    w.set_bool("a.bool", true);
    w.set_str("a.str", "x");
    w.set_arr_str("a.strs", {"a", "b"});
    w.set_arr_f32("a.f32s", {1, 2});
    w.set_arr_i32("a.i32s", {1, -2});
    w.set_arr_u32("a.u32s", {3});
    w.set_alignment(64);
    std::vector<uint8_t> data(256 * 4, 1);
    w.add_tensor("f32", DType::F32, {4, 2}, data.data(), 32);
    w.add_tensor("q8", DType::Q8_0, {32}, data.data(), 34);
    w.add_tensor("q4k", DType::Q4_K, {256}, data.data(), 144);
    w.write(out + "/all-types.gguf");
    GGUFWriter().write(out + "/empty.gguf");
    std::printf("make_seeds: %d miniature files + 2 hand-made in %s\n", made, out.c_str());
    return 0;
}
