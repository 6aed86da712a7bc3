// The GGUF v3 writer. It refuses anything the reader would reject (bad names, shapes, sizes, values), so
// write -> open always succeeds and gives back what was written. Tensor data is laid out in insertion
// order, each tensor padded to the alignment, as llama.cpp lays it out.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

#include "core/error.h"
#include "core/gguf.h"
#include "core/gguf_internal.h"
#include "core/temp_files.h"

namespace tessera {

using namespace gguf_detail;

namespace {

bool fits(const GGUFValue& v) {
    switch (v.type) {
        case GGUFType::UINT8: return v.u <= 0xFFu;
        case GGUFType::UINT16: return v.u <= 0xFFFFu;
        case GGUFType::UINT32: return v.u <= 0xFFFFFFFFu;
        case GGUFType::BOOL: return v.u <= 1;
        case GGUFType::INT8: return v.i >= INT8_MIN && v.i <= INT8_MAX;
        case GGUFType::INT16: return v.i >= INT16_MIN && v.i <= INT16_MAX;
        case GGUFType::INT32: return v.i >= INT32_MIN && v.i <= INT32_MAX;
        default: return true;
    }
}

// Checks that a value can be written and read back as itself; counts array elements.
void check_value(const GGUFValue& v, const std::string& key, int depth, uint64_t& elems) {
    if (!is_valid_value_type(uint32_t(v.type)))
        throw Error(format("GGUFWriter: key '%s': value type %u is not a GGUF value type", printable(key).c_str(),
                           unsigned(v.type)));
    if (!fits(v))
        throw Error(format("GGUFWriter: key '%s': value %llu / %lld does not fit in %s", printable(key).c_str(),
                           static_cast<unsigned long long>(v.u), static_cast<long long>(v.i),
                           gguf_type_name(v.type)));
    if (v.type != GGUFType::ARRAY) return;
    if (depth >= kGGUFMaxArrayDepth)
        throw Error(format("GGUFWriter: key '%s': arrays nested more than %d deep", printable(key).c_str(),
                           kGGUFMaxArrayDepth));
    if (!is_valid_value_type(uint32_t(v.elem_type)))
        throw Error(format("GGUFWriter: key '%s': array element type %u is not a GGUF value type",
                           printable(key).c_str(), unsigned(v.elem_type)));
    elems += v.arr.size();
    if (elems > kGGUFMaxArrayElements)
        throw Error(format("GGUFWriter: more than %llu array elements in all; the reader would refuse the file",
                           static_cast<unsigned long long>(kGGUFMaxArrayElements)));
    for (size_t i = 0; i < v.arr.size(); ++i) {
        if (v.arr[i].type != v.elem_type)
            throw Error(format("GGUFWriter: key '%s': element %zu is a %s in an array of %s", printable(key).c_str(),
                               i, gguf_type_name(v.arr[i].type), gguf_type_name(v.elem_type)));
        check_value(v.arr[i], key, depth + 1, elems);
    }
}

class Encoder {
public:
    std::vector<uint8_t> bytes;

    template <class T> void put(T x) {
        const size_t at = bytes.size();
        bytes.resize(at + sizeof(T));
        std::memcpy(bytes.data() + at, &x, sizeof(T));
    }
    void put_string(const std::string& s) {
        put<uint64_t>(s.size());
        bytes.insert(bytes.end(), s.begin(), s.end());
    }
    void put_value(const GGUFValue& v) {
        switch (v.type) {
            case GGUFType::UINT8: put<uint8_t>(uint8_t(v.u)); return;
            case GGUFType::INT8: put<int8_t>(int8_t(v.i)); return;
            case GGUFType::UINT16: put<uint16_t>(uint16_t(v.u)); return;
            case GGUFType::INT16: put<int16_t>(int16_t(v.i)); return;
            case GGUFType::UINT32: put<uint32_t>(uint32_t(v.u)); return;
            case GGUFType::INT32: put<int32_t>(int32_t(v.i)); return;
            case GGUFType::UINT64: put<uint64_t>(v.u); return;
            case GGUFType::INT64: put<int64_t>(v.i); return;
            case GGUFType::FLOAT32: put<float>(float(v.f)); return;
            case GGUFType::FLOAT64: put<double>(v.f); return;
            case GGUFType::BOOL: put<uint8_t>(v.u ? 1 : 0); return;
            case GGUFType::STRING: put_string(v.s); return;
            case GGUFType::ARRAY:
                put<uint32_t>(uint32_t(v.elem_type));
                put<uint64_t>(v.arr.size());
                for (const auto& e : v.arr) put_value(e);
                return;
        }
    }
};

GGUFValue scalar(GGUFType t) {
    GGUFValue v;
    v.type = t;
    return v;
}

template <class T, class F> GGUFValue array_of(GGUFType et, const std::vector<T>& xs, F set) {
    GGUFValue v;
    v.type = GGUFType::ARRAY;
    v.elem_type = et;
    v.arr.resize(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
        v.arr[i].type = et;
        set(v.arr[i], xs[i]);
    }
    return v;
}

// Writes everything or throws; the caller removes the temporary file on failure.
void write_all(int fd, const void* data, size_t n, const std::string& path) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
        ssize_t w = ::write(fd, p, n > (size_t(1) << 30) ? (size_t(1) << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) throw Error(path + ": write failed: " + std::strerror(w < 0 ? errno : EIO));
        p += w;
        n -= size_t(w);
    }
}

}  // namespace

void GGUFWriter::set(const std::string& key, const GGUFValue& value) {
    if (std::string why = key_problem(key); !why.empty())
        throw Error("GGUFWriter: " + why + " ('" + printable(key) + "')");
    uint64_t elems = 0;
    check_value(value, key, 0, elems);
    if (key == "general.alignment") {
        if (value.type != GGUFType::UINT32)
            throw Error(std::string("GGUFWriter: general.alignment must be a uint32, not a ") +
                        gguf_type_name(value.type));
        if (value.u == 0 || (value.u & (value.u - 1)) != 0 || value.u > kGGUFMaxAlignment)
            throw Error(format("GGUFWriter: alignment %llu is not a power of two in 1 .. %zu",
                               static_cast<unsigned long long>(value.u), kGGUFMaxAlignment));
        alignment_ = size_t(value.u);
    }
    for (auto& kv : kv_)
        if (kv.first == key) {
            kv.second = value;
            return;
        }
    kv_.emplace_back(key, value);
}

void GGUFWriter::set_u32(const std::string& key, uint32_t x) {
    GGUFValue v = scalar(GGUFType::UINT32);
    v.u = x;
    set(key, v);
}
void GGUFWriter::set_i32(const std::string& key, int32_t x) {
    GGUFValue v = scalar(GGUFType::INT32);
    v.i = x;
    set(key, v);
}
void GGUFWriter::set_u64(const std::string& key, uint64_t x) {
    GGUFValue v = scalar(GGUFType::UINT64);
    v.u = x;
    set(key, v);
}
void GGUFWriter::set_f32(const std::string& key, float x) {
    GGUFValue v = scalar(GGUFType::FLOAT32);
    v.f = x;
    set(key, v);
}
void GGUFWriter::set_bool(const std::string& key, bool x) {
    GGUFValue v = scalar(GGUFType::BOOL);
    v.u = x ? 1 : 0;
    set(key, v);
}
void GGUFWriter::set_str(const std::string& key, const std::string& x) {
    GGUFValue v = scalar(GGUFType::STRING);
    v.s = x;
    set(key, v);
}
void GGUFWriter::set_arr_str(const std::string& key, const std::vector<std::string>& xs) {
    set(key, array_of(GGUFType::STRING, xs, [](GGUFValue& e, const std::string& x) { e.s = x; }));
}
void GGUFWriter::set_arr_f32(const std::string& key, const std::vector<float>& xs) {
    set(key, array_of(GGUFType::FLOAT32, xs, [](GGUFValue& e, float x) { e.f = x; }));
}
void GGUFWriter::set_arr_i32(const std::string& key, const std::vector<int32_t>& xs) {
    set(key, array_of(GGUFType::INT32, xs, [](GGUFValue& e, int32_t x) { e.i = x; }));
}
void GGUFWriter::set_arr_u32(const std::string& key, const std::vector<uint32_t>& xs) {
    set(key, array_of(GGUFType::UINT32, xs, [](GGUFValue& e, uint32_t x) { e.u = x; }));
}

size_t GGUFWriter::checked_tensor_bytes(const std::string& name, DType type, const std::vector<int64_t>& ne) const {
    const std::string pname = printable(name);
    if (std::string why = tensor_name_problem(name); !why.empty())
        throw Error("GGUFWriter: tensor '" + pname + "': " + why);
    for (const auto& t : tensors_)
        if (t.name == name) throw Error("GGUFWriter: tensor '" + pname + "' added twice");
    if (!is_known_type_id(uint32_t(type)))
        throw Error("GGUFWriter: tensor '" + pname + "': " + describe_unsupported_type(uint32_t(type)));
    if (ne.empty() || ne.size() > 4)
        throw Error(format("GGUFWriter: tensor '%s': %zu dimensions; 1 to 4 are allowed", pname.c_str(), ne.size()));
    for (size_t d = 0; d < ne.size(); ++d)
        if (ne[d] <= 0)
            throw Error(format("GGUFWriter: tensor '%s': dimension %zu is %lld; dimensions must be positive",
                               pname.c_str(), d, static_cast<long long>(ne[d])));
    // row_bytes checks the block size; the rows multiply with overflow checks.
    uint64_t bytes = row_bytes(type, ne[0]);
    int64_t count = ne[0];
    for (size_t d = 1; d < ne.size(); ++d)
        if (__builtin_mul_overflow(bytes, uint64_t(ne[d]), &bytes) || __builtin_mul_overflow(count, ne[d], &count))
            throw Error("GGUFWriter: tensor '" + pname + "': size overflows");
    if (bytes > uint64_t(SIZE_MAX)) throw Error("GGUFWriter: tensor '" + pname + "': size overflows");
    return size_t(bytes);
}

void GGUFWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, const void* data,
                            size_t nbytes) {
    const size_t bytes = checked_tensor_bytes(name, type, ne);
    const std::string pname = printable(name);
    if (bytes != nbytes)
        throw Error(format("GGUFWriter: tensor '%s': %s of this shape takes %zu bytes, but %zu were given",
                           pname.c_str(), type_name(type), bytes, nbytes));
    if (data == nullptr) throw Error("GGUFWriter: tensor '" + pname + "': no data");
    tensors_.push_back({name, type, ne, data, nbytes, nullptr});
}

size_t GGUFWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, Fill fill) {
    const size_t bytes = checked_tensor_bytes(name, type, ne);
    if (!fill) throw Error("GGUFWriter: tensor '" + printable(name) + "': no data");
    tensors_.push_back({name, type, ne, nullptr, bytes, std::move(fill)});
    return bytes;
}

void GGUFWriter::set_alignment(size_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > kGGUFMaxAlignment)
        throw Error(format("GGUFWriter: alignment %zu is not a power of two in 1 .. %zu", alignment, kGGUFMaxAlignment));
    alignment_ = alignment;
    bool present = false;
    for (const auto& kv : kv_) present |= kv.first == "general.alignment";
    if (alignment != kDefaultAlignment || present) set_u32("general.alignment", uint32_t(alignment));
}

void GGUFWriter::write(const std::string& path) const {
    // set() bounded each value; the reader also bounds the file's arrays all together.
    uint64_t elems = 0;
    for (const auto& kv : kv_) check_value(kv.second, kv.first, 0, elems);

    auto pad_to = [&](uint64_t n) { return (n + alignment_ - 1) / alignment_ * alignment_; };

    Encoder e;
    e.bytes.insert(e.bytes.end(), kMagic, kMagic + 4);
    e.put<uint32_t>(3);
    e.put<uint64_t>(tensors_.size());
    e.put<uint64_t>(kv_.size());
    for (const auto& [key, value] : kv_) {
        e.put_string(key);
        e.put<uint32_t>(uint32_t(value.type));
        e.put_value(value);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors_) {
        e.put_string(t.name);
        e.put<uint32_t>(uint32_t(t.ne.size()));
        for (int64_t d : t.ne) e.put<int64_t>(d);
        e.put<uint32_t>(uint32_t(t.type));
        e.put<uint64_t>(offset);
        offset = pad_to(offset + t.nbytes);
    }
    // The data section starts aligned. With no tensors there is no data section and llama.cpp's writers
    // end the file right after the metadata; do the same so such files round-trip byte for byte.
    if (!tensors_.empty()) e.bytes.resize(pad_to(e.bytes.size()), 0);

    // Temporary file beside the file it replaces (a symlink's target, so the link stays), renamed over
    // it only when complete. An existing file keeps its permission bits.
    const std::string target = output_target(path);
    struct stat old_st;
    const mode_t mode = ::stat(target.c_str(), &old_st) == 0 ? (old_st.st_mode & 07777) : 0644;
    std::string tmp = target + ".tmp.XXXXXX";
    int fd = mkstemp(tmp.data());
    if (fd < 0) throw Error(path + ": cannot create a temporary file beside it: " + std::strerror(errno));
    const TempFileRegistration removed_on_signal(tmp.c_str());
    try {
        fchmod(fd, mode);
        write_all(fd, e.bytes.data(), e.bytes.size(), path);
        static const uint8_t zeros[kGGUFMaxAlignment > 4096 ? 4096 : kGGUFMaxAlignment] = {};
        std::vector<uint8_t> filled;  // one buffer for every tensor made by a Fill, as large as the largest
        for (const auto& t : tensors_) {
            const void* data = t.data;
            if (t.fill) {
                if (filled.size() < t.nbytes) {
                    filled.clear();
                    filled.shrink_to_fit();
                    filled.resize(t.nbytes);
                }
                t.fill(filled.data());
                data = filled.data();
            }
            write_all(fd, data, t.nbytes, path);
            size_t pad = size_t(pad_to(t.nbytes) - t.nbytes);
            while (pad > 0) {
                size_t n = pad < sizeof zeros ? pad : sizeof zeros;
                write_all(fd, zeros, n, path);
                pad -= n;
            }
        }
        if (::close(fd) != 0) {
            fd = -1;
            throw Error(path + ": close failed: " + std::strerror(errno));
        }
        fd = -1;
        if (std::rename(tmp.c_str(), target.c_str()) != 0)
            throw Error(path + ": cannot rename the temporary file into place: " + std::strerror(errno));
    } catch (...) {
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
}

std::string GGUFWriter::output_target(const std::string& path) {
    if (path.empty()) throw Error("GGUFWriter: the output path is empty");
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return path;  // a new file
        throw Error(path + ": " + std::strerror(errno));
    }
    std::string target = path;
    if (S_ISLNK(st.st_mode)) {
        char* real = ::realpath(path.c_str(), nullptr);
        if (!real)
            throw Error(path + ": a symbolic link that cannot be followed (" + std::strerror(errno) +
                        "); refusing to replace it");
        target = real;
        std::free(real);
        if (::stat(target.c_str(), &st) != 0) throw Error(path + ": " + target + ": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        const char* what = S_ISDIR(st.st_mode)    ? "a directory"
                           : S_ISCHR(st.st_mode)  ? "a character device"
                           : S_ISBLK(st.st_mode)  ? "a block device"
                           : S_ISFIFO(st.st_mode) ? "a FIFO"
                           : S_ISSOCK(st.st_mode) ? "a socket"
                                                  : "not a regular file";
        throw Error(path + (target != path ? " (-> " + target + ")" : std::string()) + " is " + what +
                    "; the output must be a regular file (it is written to a temporary file that then replaces it)");
    }
    return target;
}

}  // namespace tessera
