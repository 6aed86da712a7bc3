// The GGUF parser: validates a whole file (header, every key/value, every tensor's type, shape and byte
// range) before anything is used. Everything read off the file is hostile until checked: every count is
// bounded by the bytes left before anything is allocated for it, every size computation is overflow-checked.
//
// Layout (little-endian; v2 and v3 are the same on disk, v3 only added big-endian files, which we reject):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv
//   n_kv x   { string key, u32 value type, value }          string = u64 length + bytes (no NUL)
//   n_tensors x { string name, u32 n_dims, i64 ne[n_dims], u32 type, u64 offset }
//   padding to general.alignment (default 32), then the data section; offsets are relative to it.
//
// String values are not required to be UTF-8: some vocabularies hold byte fragments as token pieces, and
// llama.cpp does not check them either; the tokenizer decides what to do with them. Keys and tensor names
// must be valid UTF-8 without NUL bytes: they are looked up by name and printed.
#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "core/gguf_internal.h"

namespace tessera {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

using namespace gguf_detail;

namespace {

// The fewest bytes a key/value pair takes: key length (8) + at least one key byte + value type (4) + the
// smallest value (1). A tensor info: name length (8) + one byte + n_dims (4) + one dim (8) + type (4) + offset (8).
constexpr uint64_t kMinKVBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

class Cursor {
public:
    Cursor(const uint8_t* base, size_t size, const std::string& file) : base_(base), size_(size), file_(file) {}

    size_t pos() const { return pos_; }
    size_t left() const { return size_ - pos_; }

    // What is being read, for error messages ("key 'general.name'", "tensor #3 'x'").
    void set_context(std::string ctx) { ctx_ = std::move(ctx); }

    [[noreturn]] void fail(const std::string& what) const {
        std::string msg = file_ + ": ";
        if (!ctx_.empty()) msg += ctx_ + ": ";
        for (uint64_t idx : elem_path_) msg += "element " + std::to_string(idx) + ": ";
        throw Error(msg + what, Status::File);
    }

    void need(uint64_t n, const char* what) const {
        if (n > left())
            fail(format("file truncated: %s needs %llu bytes at byte %zu, but the file ends at byte %zu", what,
                        static_cast<unsigned long long>(n), pos_, size_));
    }

    template <class T> T read(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, base_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    std::string read_string(const char* what) {
        const uint64_t len = read<uint64_t>(what);
        if (len > left())
            fail(format("%s length %llu is more than the %zu bytes left in the file (at byte %zu)", what,
                        static_cast<unsigned long long>(len), left(), pos_ - 8));
        std::string s(reinterpret_cast<const char*>(base_ + pos_), size_t(len));
        pos_ += size_t(len);
        return s;
    }

    std::vector<uint64_t>& elem_path() { return elem_path_; }

private:
    const uint8_t* base_;
    size_t size_;
    size_t pos_ = 0;
    const std::string& file_;
    std::string ctx_;
    std::vector<uint64_t> elem_path_;  // indices into (nested) arrays while reading one
};

class ValueReader {
public:
    explicit ValueReader(Cursor& c) : c_(c) {}

    GGUFValue read(GGUFType type, int depth) {
        GGUFValue v;
        v.type = type;
        read_into(v, depth);
        return v;
    }

private:
    void read_into(GGUFValue& v, int depth) {
        switch (v.type) {
            case GGUFType::UINT8: v.u = c_.read<uint8_t>("a uint8 value"); return;
            case GGUFType::INT8: v.i = c_.read<int8_t>("an int8 value"); return;
            case GGUFType::UINT16: v.u = c_.read<uint16_t>("a uint16 value"); return;
            case GGUFType::INT16: v.i = c_.read<int16_t>("an int16 value"); return;
            case GGUFType::UINT32: v.u = c_.read<uint32_t>("a uint32 value"); return;
            case GGUFType::INT32: v.i = c_.read<int32_t>("an int32 value"); return;
            case GGUFType::UINT64: v.u = c_.read<uint64_t>("a uint64 value"); return;
            case GGUFType::INT64: v.i = c_.read<int64_t>("an int64 value"); return;
            case GGUFType::FLOAT32: v.f = c_.read<float>("a float32 value"); return;
            case GGUFType::FLOAT64: v.f = c_.read<double>("a float64 value"); return;
            case GGUFType::BOOL: {
                uint8_t b = c_.read<uint8_t>("a bool value");
                if (b > 1) c_.fail(format("bool value is %u; only 0 and 1 are valid", unsigned(b)));
                v.u = b;
                return;
            }
            case GGUFType::STRING: v.s = c_.read_string("string value"); return;
            case GGUFType::ARRAY: read_array(v, depth); return;
        }
        c_.fail(format("value type %u is not a GGUF value type", unsigned(v.type)));
    }

    void read_array(GGUFValue& v, int depth) {
        if (depth >= kGGUFMaxArrayDepth)
            c_.fail(format("arrays nested more than %d deep", kGGUFMaxArrayDepth));
        const uint32_t et = c_.read<uint32_t>("the array element type");
        if (!is_valid_value_type(et)) c_.fail(format("array element type %u is not a GGUF value type", et));
        v.elem_type = GGUFType(et);
        const uint64_t n = c_.read<uint64_t>("the array length");
        const uint64_t min = min_encoded_bytes(v.elem_type);
        // Bound the count by the bytes left before reserving anything for it.
        if (n > c_.left() / min)
            c_.fail(format("array of %llu %s elements needs at least %llu bytes per element, but only %zu bytes are "
                           "left in the file",
                           static_cast<unsigned long long>(n), gguf_type_name(v.elem_type),
                           static_cast<unsigned long long>(min), c_.left()));
        total_elems_ += n;
        if (total_elems_ > kGGUFMaxArrayElements)
            c_.fail(format("the file's arrays hold more than %llu elements in all; refusing to load that much "
                           "metadata",
                           static_cast<unsigned long long>(kGGUFMaxArrayElements)));
        v.arr.resize(size_t(n));
        auto& path = c_.elem_path();
        path.push_back(0);
        for (uint64_t i = 0; i < n; ++i) {
            path.back() = i;
            GGUFValue& e = v.arr[size_t(i)];
            e.type = v.elem_type;
            read_into(e, depth + 1);
        }
        path.pop_back();
    }

    Cursor& c_;
    uint64_t total_elems_ = 0;
};

}  // namespace

void GGUFFile::parse() {
    Cursor c(base_, size_, path_);

    // ---- header ----
    if (size_ < 4 || std::memcmp(base_, kMagic, 4) != 0) {
        if (size_ >= 4) {
            // Older llama.cpp formats wrote their magic as a little-endian uint32.
            uint32_t m;
            std::memcpy(&m, base_, 4);
            if (m == 0x67676d6cu || m == 0x67676d66u || m == 0x67676a74u)
                c.fail("this is a pre-GGUF ggml/ggmf/ggjt model file; convert it to GGUF");
            if (std::memcmp(base_, "FUGG", 4) == 0) c.fail("bad magic 'FUGG': a byte-swapped GGUF file?");
        }
        std::string got;
        for (size_t i = 0; i < 4 && i < size_; ++i) got += format("%02x ", base_[i]);
        c.fail("not a GGUF file: the first bytes are " + (got.empty() ? std::string("(none) ") : got) +
               "instead of 'GGUF' (47 47 55 46)");
    }
    c.read<uint32_t>("the magic");
    version_ = c.read<uint32_t>("the version");
    if ((version_ & 0xFFFFu) == 0 && version_ != 0) {
        // A big-endian writer stores small versions as 0x0N000000.
        c.fail(format("version field is 0x%08x: this looks like a big-endian GGUF file (version %u with its bytes "
                      "swapped); tessera reads little-endian files only",
                      version_, __builtin_bswap32(version_)));
    }
    if (version_ == 1) c.fail("GGUF version 1 is no longer supported (it used 32-bit counts); versions 2 and 3 are");
    if (version_ != 2 && version_ != 3)
        c.fail(format("unsupported GGUF version %u; tessera reads versions 2 and 3", version_));
    const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
    const uint64_t n_kv = c.read<uint64_t>("the metadata key/value count");
    if (n_kv > c.left() / kMinKVBytes)
        c.fail(format("header claims %llu metadata keys, more than the %zu bytes left could hold",
                      static_cast<unsigned long long>(n_kv), c.left()));
    if (n_tensors > c.left() / kMinTensorInfoBytes)
        c.fail(format("header claims %llu tensors, more than the %zu bytes left could hold",
                      static_cast<unsigned long long>(n_tensors), c.left()));

    // ---- metadata ----
    ValueReader values(c);
    key_order_.reserve(size_t(n_kv));
    kv_.reserve(size_t(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
        c.set_context(format("metadata entry #%llu", static_cast<unsigned long long>(k)));
        std::string key = c.read_string("key");
        if (std::string why = key_problem(key); !why.empty()) c.fail(why + " ('" + printable(key) + "')");
        c.set_context("key '" + printable(key) + "'");
        if (kv_.count(key)) c.fail("duplicate key");
        const uint32_t type = c.read<uint32_t>("the value type");
        if (!is_valid_value_type(type)) c.fail(format("value type %u is not a GGUF value type", type));
        GGUFValue v = values.read(GGUFType(type), 0);
        if (key == "general.alignment") {
            // llama.cpp requires a uint32 here.
            if (v.type != GGUFType::UINT32) c.fail(std::string("must be a uint32, not a ") + gguf_type_name(v.type));
            if (v.u == 0 || (v.u & (v.u - 1)) != 0)
                c.fail(format("alignment %llu is not a power of two", static_cast<unsigned long long>(v.u)));
            if (v.u > kGGUFMaxAlignment)
                c.fail(format("alignment %llu is larger than the %zu bytes tessera accepts",
                              static_cast<unsigned long long>(v.u), kGGUFMaxAlignment));
            alignment_ = size_t(v.u);
        }
        key_order_.push_back(key);
        kv_.emplace(std::move(key), std::move(v));
    }

    // ---- tensor infos ----
    c.set_context("");
    if (n_tensors > c.left() / kMinTensorInfoBytes)
        c.fail(format("header claims %llu tensors, but only %zu bytes are left after the metadata",
                      static_cast<unsigned long long>(n_tensors), c.left()));
    tensors_.reserve(size_t(n_tensors));
    tensor_index_.reserve(size_t(n_tensors));
    for (uint64_t t = 0; t < n_tensors; ++t) {
        c.set_context(format("tensor #%llu", static_cast<unsigned long long>(t)));
        TensorInfo ti{};
        ti.name = c.read_string("tensor name");
        if (std::string why = tensor_name_problem(ti.name); !why.empty()) c.fail(why + " ('" + printable(ti.name) + "')");
        c.set_context(format("tensor #%llu '%s'", static_cast<unsigned long long>(t), printable(ti.name).c_str()));
        if (tensor_index_.count(ti.name)) c.fail("duplicate tensor name");

        const uint32_t n_dims = c.read<uint32_t>("the dimension count");
        if (n_dims < 1 || n_dims > 4) c.fail(format("has %u dimensions; 1 to 4 are allowed", n_dims));
        ti.n_dims = int(n_dims);
        for (int d = 0; d < 4; ++d) ti.ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            ti.ne[d] = c.read<int64_t>("a dimension");
            if (ti.ne[d] <= 0)
                c.fail(format("dimension %u is %lld; dimensions must be positive", d, static_cast<long long>(ti.ne[d])));
        }
        const uint32_t type_id = c.read<uint32_t>("the tensor type");
        if (!is_known_type_id(type_id)) c.fail("has " + describe_unsupported_type(type_id));
        ti.type = DType(type_id);
        ti.offset = c.read<uint64_t>("the data offset");

        const TypeTraits& tr = type_traits(ti.type);
        if (ti.ne[0] % tr.block_size != 0)
            c.fail(format("first dimension %lld is not a multiple of %s's block size %lld",
                          static_cast<long long>(ti.ne[0]), tr.name, static_cast<long long>(tr.block_size)));
        int64_t count = 1;
        for (int d = 0; d < 4; ++d)
            if (__builtin_mul_overflow(count, ti.ne[d], &count))
                c.fail(format("shape [%lld, %lld, %lld, %lld] has more than 2^63 elements",
                              static_cast<long long>(ti.ne[0]), static_cast<long long>(ti.ne[1]),
                              static_cast<long long>(ti.ne[2]), static_cast<long long>(ti.ne[3])));
        // Bytes: blocks per row * block bytes * rows, each step checked.
        uint64_t bytes = uint64_t(ti.ne[0] / tr.block_size);
        bool overflow = __builtin_mul_overflow(bytes, uint64_t(tr.block_bytes), &bytes);
        for (int d = 1; d < 4 && !overflow; ++d) overflow = __builtin_mul_overflow(bytes, uint64_t(ti.ne[d]), &bytes);
        if (overflow || bytes > SIZE_MAX)
            c.fail(format("%s data of shape [%lld, %lld, %lld, %lld] is more than 2^64 bytes", tr.name,
                          static_cast<long long>(ti.ne[0]), static_cast<long long>(ti.ne[1]),
                          static_cast<long long>(ti.ne[2]), static_cast<long long>(ti.ne[3])));
        ti.nbytes = size_t(bytes);
        tensor_index_.emplace(ti.name, tensors_.size());
        tensors_.push_back(std::move(ti));
    }
    c.set_context("");

    // ---- data section ----
    // Padding: the data section starts at the next multiple of the alignment (which is <= 1 MiB, so the
    // sum cannot wrap, but check it like everything else).
    size_t data_offset = 0;
    if (__builtin_add_overflow(c.pos(), alignment_ - 1, &data_offset))
        c.fail("alignment padding overflows");
    data_offset -= data_offset % alignment_;
    data_offset_ = data_offset;
    if (!tensors_.empty() && data_offset_ > size_)
        c.fail(format("the data section would start at byte %zu (after padding to %zu), past the end of the file "
                      "at byte %zu",
                      data_offset_, alignment_, size_));
    const size_t data_size = tensors_.empty() ? 0 : size_ - data_offset_;

    for (size_t t = 0; t < tensors_.size(); ++t) {
        TensorInfo& ti = tensors_[t];
        c.set_context(format("tensor #%zu '%s'", t, printable(ti.name).c_str()));
        if (ti.offset % alignment_ != 0)
            c.fail(format("data offset %llu is not a multiple of the alignment %zu",
                          static_cast<unsigned long long>(ti.offset), alignment_));
        uint64_t end = 0;
        if (__builtin_add_overflow(ti.offset, uint64_t(ti.nbytes), &end) || end > data_size)
            c.fail(format("data [%llu, +%zu bytes) lies outside the %zu-byte data section (file is %zu bytes, "
                          "data starts at byte %zu)",
                          static_cast<unsigned long long>(ti.offset), ti.nbytes, data_size, size_, data_offset_));
        ti.data = base_ + data_offset_ + size_t(ti.offset);
    }

    // No two tensors may share bytes: sort by offset and compare neighbours.
    std::vector<size_t> order(tensors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
        const TensorInfo& prev = tensors_[order[k - 1]];
        const TensorInfo& cur = tensors_[order[k]];
        if (prev.offset + prev.nbytes > cur.offset) {
            c.set_context("");
            c.fail(format("tensors '%s' [%llu, +%zu) and '%s' [%llu, +%zu) overlap", printable(prev.name).c_str(),
                          static_cast<unsigned long long>(prev.offset), prev.nbytes, printable(cur.name).c_str(),
                          static_cast<unsigned long long>(cur.offset), cur.nbytes));
        }
    }
}

}  // namespace tessera
