// GGUF: opening files, typed metadata access and value formatting. The parser itself is gguf_parse.cpp,
// the writer gguf_write.cpp.
#include "core/gguf.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <sys/mman.h>
#include <sys/stat.h>
#include <type_traits>
#include <unistd.h>
#include <utility>

#include "core/error.h"
#include "core/gguf_internal.h"

namespace tessera {

const char* gguf_type_name(GGUFType t) {
    switch (t) {
        case GGUFType::UINT8: return "uint8";
        case GGUFType::INT8: return "int8";
        case GGUFType::UINT16: return "uint16";
        case GGUFType::INT16: return "int16";
        case GGUFType::UINT32: return "uint32";
        case GGUFType::INT32: return "int32";
        case GGUFType::FLOAT32: return "float32";
        case GGUFType::BOOL: return "bool";
        case GGUFType::STRING: return "string";
        case GGUFType::ARRAY: return "array";
        case GGUFType::UINT64: return "uint64";
        case GGUFType::INT64: return "int64";
        case GGUFType::FLOAT64: return "float64";
    }
    return "unknown";
}

namespace gguf_detail {

size_t scalar_bytes(GGUFType t) {
    switch (t) {
        case GGUFType::UINT8: case GGUFType::INT8: case GGUFType::BOOL: return 1;
        case GGUFType::UINT16: case GGUFType::INT16: return 2;
        case GGUFType::UINT32: case GGUFType::INT32: case GGUFType::FLOAT32: return 4;
        case GGUFType::UINT64: case GGUFType::INT64: case GGUFType::FLOAT64: return 8;
        case GGUFType::STRING: case GGUFType::ARRAY: return 0;
    }
    return 0;
}

size_t min_encoded_bytes(GGUFType t) {
    if (t == GGUFType::STRING) return 8;      // uint64 length, possibly no bytes
    if (t == GGUFType::ARRAY) return 4 + 8;   // element type + count, possibly no elements
    return scalar_bytes(t);
}

bool valid_utf8(const std::string& s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t n = s.size(), i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) { ++i; continue; }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (n - i < len) return false;
        for (size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

std::string printable(const std::string& s, size_t max_bytes) {
    const bool utf8 = valid_utf8(s);
    std::string out;
    const size_t n = s.size() < max_bytes ? s.size() : max_bytes;
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7F || (c >= 0x80 && !utf8)) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else if (c == '\\' || c == '\'') {
            out += '\\';
            out += char(c);
        } else {
            out += char(c);
        }
    }
    if (s.size() > n) {
        // Do not end in the middle of a UTF-8 sequence.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
        if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
        out += "...(" + std::to_string(s.size()) + " bytes)";
    }
    return out;
}

std::string tensor_name_problem(const std::string& name) {
    if (name.empty()) return "the name is empty";
    if (name.size() > kGGUFMaxNameBytes)
        return "the name is " + std::to_string(name.size()) + " bytes long; the most llama.cpp accepts is " +
               std::to_string(kGGUFMaxNameBytes) + " (GGML_MAX_NAME 64 including the NUL)";
    if (name.find('\0') != std::string::npos) return "the name contains a NUL byte";
    if (!valid_utf8(name)) return "the name is not valid UTF-8";
    return "";
}

std::string key_problem(const std::string& key) {
    if (key.empty()) return "the key is empty";
    if (key.find('\0') != std::string::npos) return "the key contains a NUL byte";
    if (!valid_utf8(key)) return "the key is not valid UTF-8";
    return "";
}

std::string describe_unsupported_type(uint32_t id) {
    // llama.cpp's ggml_type ids that tessera has no traits for. Removed ids were once written to files.
    struct Known { uint32_t id; const char* name; bool removed; };
    static const Known known[] = {
        {4, "q4_2", true},        {5, "q4_3", true},        {16, "iq2_xxs", false},    {17, "iq2_xs", false},
        {18, "iq3_xxs", false},   {19, "iq1_s", false},     {21, "iq3_s", false},      {22, "iq2_s", false},
        {29, "iq1_m", false},     {31, "q4_0_4_4", true},   {32, "q4_0_4_8", true},    {33, "q4_0_8_8", true},
        {34, "tq1_0", false},     {35, "tq2_0", false},     {36, "iq4_nl_4_4", true},  {37, "iq4_nl_4_8", true},
        {38, "iq4_nl_8_8", true},
    };
    for (const auto& k : known)
        if (k.id == id)
            return std::string("type id ") + std::to_string(id) + " (" + k.name + ")" +
                   (k.removed ? ", which llama.cpp has removed" : ", which tessera does not support");
    return "unknown type id " + std::to_string(id);
}

}  // namespace gguf_detail

using namespace gguf_detail;

// ---------------------------------------------------------------- opening

std::unique_ptr<GGUFFile> GGUFFile::open(const std::string& path) {
    std::unique_ptr<GGUFFile> f(new GGUFFile());
    f->path_ = path;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    TESSERA_CHECK_AS(File, fd >= 0, "%s: cannot open: %s", path.c_str(), std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        throw Error(path + ": cannot stat: " + std::strerror(e), Status::File);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(path + ": not a regular file", Status::File);
    }
    if (st.st_size == 0) {
        ::close(fd);
        throw Error(path + ": the file is empty, not a GGUF file", Status::File);
    }
    f->size_ = size_t(st.st_size);
    // Read-only private mapping: weights stay in the page cache and are used in place.
    void* m = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    ::close(fd);  // the mapping keeps the file alive
    TESSERA_CHECK_AS(File, m != MAP_FAILED, "%s: cannot map %zu bytes: %s", path.c_str(), f->size_, std::strerror(e));
    f->mapping_ = m;
    f->base_ = static_cast<const uint8_t*>(m);
    f->parse();  // on throw the unique_ptr unmaps
    return f;
}

std::unique_ptr<GGUFFile> GGUFFile::from_memory(const void* data, size_t size, const std::string& name) {
    std::unique_ptr<GGUFFile> f(new GGUFFile());
    f->path_ = name;
    TESSERA_CHECK(data != nullptr || size == 0, "%s: null data", name.c_str());
    f->owned_copy_.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
    f->base_ = f->owned_copy_.data();
    f->size_ = size;
    f->parse();
    return f;
}

size_t GGUFFile::release_pages(const void* data, size_t bytes) const {
    if (!mapping_ || bytes == 0) return 0;
    const auto page = uintptr_t(sysconf(_SC_PAGESIZE));
    const auto begin = (uintptr_t(data) + page - 1) / page * page, end = (uintptr_t(data) + bytes) / page * page;
    const auto lo = uintptr_t(base_), hi = uintptr_t(base_) + size_;
    if (begin >= end || begin < lo || end > hi) return 0;
    // The mapping is private and never written, so its pages are the file's: dropping them frees nothing
    // that cannot be read again. A refusal only keeps the pages (and is reported as 0 bytes released).
    return madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED) == 0 ? size_t(end - begin) : 0;
}

GGUFFile::~GGUFFile() {
    if (mapping_) munmap(mapping_, size_);
}

const GGUFValue* GGUFFile::find(const std::string& key) const {
    auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
}

const GGUFFile::TensorInfo* GGUFFile::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------- typed access

namespace {

bool is_unsigned_int(GGUFType t) {
    return t == GGUFType::UINT8 || t == GGUFType::UINT16 || t == GGUFType::UINT32 || t == GGUFType::UINT64;
}
bool is_signed_int(GGUFType t) {
    return t == GGUFType::INT8 || t == GGUFType::INT16 || t == GGUFType::INT32 || t == GGUFType::INT64;
}
bool is_float(GGUFType t) { return t == GGUFType::FLOAT32 || t == GGUFType::FLOAT64; }

// "a string", "an array of uint32", "a uint32": how a stored value is named in messages.
std::string stored_kind(const GGUFValue& v) {
    if (v.type == GGUFType::ARRAY) return std::string("an array of ") + gguf_type_name(v.elem_type);
    const char* n = gguf_type_name(v.type);
    bool vowel = n[0] == 'i' || n[0] == 'a';  // "an int8", but "a uint32"
    return std::string(vowel ? "an " : "a ") + n;
}

template <class T> const char* wanted_kind() {
    if constexpr (std::is_same_v<T, std::string>) return "a string";
    else if constexpr (std::is_same_v<T, bool>) return "a bool";
    else if constexpr (std::is_floating_point_v<T>) return "a float";
    else return "an integer";
}

template <class T> std::string int_type_name() {
    return std::string(std::is_signed_v<T> ? "int" : "uint") + std::to_string(sizeof(T) * 8);
}

// Converts one value (a scalar or an array element); `what` names it in the message
// ("key 'x'" or "key 'x' element 3").
template <class T> T convert(const GGUFValue& v, const std::string& file, const std::string& what) {
    auto mismatch = [&]() {
        return Error(file + ": " + what + " is " + stored_kind(v) + ", not " + wanted_kind<T>(), Status::File);
    };
    if constexpr (std::is_same_v<T, std::string>) {
        if (v.type != GGUFType::STRING) throw mismatch();
        return v.s;
    } else if constexpr (std::is_same_v<T, bool>) {
        if (v.type != GGUFType::BOOL) throw mismatch();
        return v.u != 0;
    } else if constexpr (std::is_floating_point_v<T>) {
        if (!is_float(v.type)) throw mismatch();
        return static_cast<T>(v.f);
    } else {
        static_assert(std::is_integral_v<T>);
        if (is_unsigned_int(v.type)) {
            if (!std::in_range<T>(v.u))
                throw Error(file + ": " + what + " holds " + std::to_string(v.u) + ", which does not fit in " +
                            int_type_name<T>(), Status::File);
            return static_cast<T>(v.u);
        }
        if (is_signed_int(v.type)) {
            if (!std::in_range<T>(v.i))
                throw Error(file + ": " + what + " holds " + std::to_string(v.i) + ", which does not fit in " +
                            int_type_name<T>(), Status::File);
            return static_cast<T>(v.i);
        }
        throw mismatch();
    }
}

}  // namespace

template <class T> T GGUFFile::get(const std::string& key) const {
    const GGUFValue* v = find(key);
    if (!v) throw Error(path_ + ": key '" + printable(key) + "' not found", Status::File);
    return convert<T>(*v, path_, "key '" + printable(key) + "'");
}

template <class T> T GGUFFile::get_or(const std::string& key, T fallback) const {
    const GGUFValue* v = find(key);
    if (!v) return fallback;
    return convert<T>(*v, path_, "key '" + printable(key) + "'");
}

template <class T> std::vector<T> GGUFFile::get_array(const std::string& key) const {
    const GGUFValue* v = find(key);
    if (!v) throw Error(path_ + ": key '" + printable(key) + "' not found", Status::File);
    const std::string what = "key '" + printable(key) + "'";
    if (v->type != GGUFType::ARRAY)
        throw Error(path_ + ": " + what + " is " + stored_kind(*v) + ", not an array", Status::File);
    std::vector<T> out;
    out.reserve(v->arr.size());
    for (size_t i = 0; i < v->arr.size(); ++i) {
        const GGUFValue& e = v->arr[i];
        // Check the element type once per element cheaply; build the long message only on failure.
        try {
            out.push_back(convert<T>(e, path_, what));
        } catch (const Error&) {
            convert<T>(e, path_, what + " element " + std::to_string(i));  // rethrows with the index
            throw;
        }
    }
    return out;
}

#define TESSERA_GGUF_INSTANTIATE(T)                                                  \
    template T GGUFFile::get<T>(const std::string&) const;                           \
    template T GGUFFile::get_or<T>(const std::string&, T) const;                     \
    template std::vector<T> GGUFFile::get_array<T>(const std::string&) const;
TESSERA_GGUF_INSTANTIATE(bool)
TESSERA_GGUF_INSTANTIATE(signed char)
TESSERA_GGUF_INSTANTIATE(unsigned char)
TESSERA_GGUF_INSTANTIATE(short)
TESSERA_GGUF_INSTANTIATE(unsigned short)
TESSERA_GGUF_INSTANTIATE(int)
TESSERA_GGUF_INSTANTIATE(unsigned int)
TESSERA_GGUF_INSTANTIATE(long)
TESSERA_GGUF_INSTANTIATE(unsigned long)
TESSERA_GGUF_INSTANTIATE(long long)
TESSERA_GGUF_INSTANTIATE(unsigned long long)
TESSERA_GGUF_INSTANTIATE(float)
TESSERA_GGUF_INSTANTIATE(double)
TESSERA_GGUF_INSTANTIATE(std::string)
#undef TESSERA_GGUF_INSTANTIATE

// ---------------------------------------------------------------- formatting

namespace {

std::string quote(const std::string& s, size_t max_bytes) {
    std::string out = "\"";
    const bool utf8 = valid_utf8(s);
    const size_t n = s.size() < max_bytes ? s.size() : max_bytes;
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\r': out += "\\r"; break;
            default:
                if (c < 0x20 || c == 0x7F || (c >= 0x80 && !utf8)) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\x%02x", c);
                    out += buf;
                } else {
                    out += char(c);
                }
        }
    }
    if (s.size() > n) {
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
        if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
        out += "...";
    }
    return out + "\"";
}

template <class F> std::string shortest(F x) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, r.ptr);
}

void append_value(std::string& out, const GGUFValue& v, size_t max_elems) {
    switch (v.type) {
        case GGUFType::UINT8: case GGUFType::UINT16: case GGUFType::UINT32: case GGUFType::UINT64:
            out += std::to_string(v.u);
            return;
        case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64:
            out += std::to_string(v.i);
            return;
        case GGUFType::FLOAT32: out += shortest(static_cast<float>(v.f)); return;
        case GGUFType::FLOAT64: out += shortest(v.f); return;
        case GGUFType::BOOL: out += v.u ? "true" : "false"; return;
        case GGUFType::STRING: out += quote(v.s, 256); return;
        case GGUFType::ARRAY: {
            out += "[";
            const size_t n = v.arr.size() < max_elems ? v.arr.size() : max_elems;
            for (size_t i = 0; i < n; ++i) {
                if (i) out += ", ";
                append_value(out, v.arr[i], max_elems);
            }
            if (v.arr.size() > n) out += ", ... (" + std::to_string(v.arr.size()) + " total)";
            out += "]";
            return;
        }
    }
    out += "?";
}

}  // namespace

std::string GGUFFile::value_to_string(const GGUFValue& v, size_t max_elems) {
    std::string out;
    append_value(out, v, max_elems);
    return out;
}

}  // namespace tessera
