// GGUF files (v2 and v3), byte-compatible with llama.cpp: a validating,
// memory-mapping reader and a v3 writer. Every count, length, shape and offset
// read from a file is checked against the file's size before it is used.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/types.h"

namespace tessera {

enum class GGUFType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_type_name(GGUFType t);

// Limits the reader enforces; the writer refuses anything the reader would reject.
inline constexpr size_t kGGUFMaxNameBytes = 63;            // tensor names: llama.cpp's GGML_MAX_NAME (64) counts the NUL
inline constexpr size_t kGGUFMaxAlignment = size_t(1) << 20;  // general.alignment: power of two, 1 .. 1 MiB
inline constexpr int kGGUFMaxArrayDepth = 8;               // arrays of arrays nest at most this deep
inline constexpr uint64_t kGGUFMaxArrayElements = uint64_t(1) << 24;  // all array elements of one file together

// Checked on load: keys and tensor names are non-empty valid UTF-8 without NUL bytes, tensor names at most
// kGGUFMaxNameBytes. String values are NOT checked for UTF-8: token pieces may be byte fragments; the
// tokenizer decides. A mapped file that shrinks while in use (another process truncating it) is outside
// what any reader can defend against: it raises SIGBUS.
//
// One metadata value. Scalars hold their value; arrays hold their element type and elements
// (strings as std::string, numbers widened to int64/uint64/double, nested arrays recursively).
struct GGUFValue {
    GGUFType type = GGUFType::UINT8;
    GGUFType elem_type = GGUFType::UINT8;  // for ARRAY
    uint64_t u = 0;                        // unsigned ints and bool
    int64_t i = 0;                         // signed ints
    double f = 0;                          // floats
    std::string s;                         // STRING
    std::vector<GGUFValue> arr;            // ARRAY elements
};

class GGUFFile {
public:
    struct TensorInfo {
        std::string name;
        DType type;
        int n_dims;
        int64_t ne[4];          // unused dims are 1
        uint64_t offset;        // relative to the data section
        size_t nbytes;
        const void* data;       // inside the mapping
        int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }  // checked not to overflow
    };

    // Maps and validates the file; throws tessera::Error naming the file and the problem.
    static std::unique_ptr<GGUFFile> open(const std::string& path);
    // Parses a copy of `size` bytes (tests, fuzzing); `name` is used in error messages.
    static std::unique_ptr<GGUFFile> from_memory(const void* data, size_t size, const std::string& name);
    ~GGUFFile();

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    size_t alignment() const { return alignment_; }
    // Start of the tensor data section (aligned). A file without tensors may end before it, as llama.cpp's
    // vocab-only files do, so only use it together with tensors.
    size_t data_offset() const { return data_offset_; }
    size_t file_size() const { return size_; }
    const void* file_data() const { return base_; }
    // Tells the OS the bytes [data, data + bytes) of the mapping are no longer needed (a weight copied
    // elsewhere at load): the whole pages inside the range leave this process's resident set (they stay in the
    // OS's file cache, clean and reclaimable, like any file read), and reading them again maps them back.
    // Nothing for a file held in memory (from_memory). Returns the bytes released (whole pages).
    size_t release_pages(const void* data, size_t bytes) const;

    // ---- metadata ----
    const std::vector<std::string>& keys() const { return key_order_; }  // in file order
    bool has(const std::string& key) const { return kv_.count(key) != 0; }
    const GGUFValue* find(const std::string& key) const;
    // Typed access. T: bool, integer types, float, double, std::string. Integers convert between
    // widths and signedness when the value fits; any other mismatch throws, naming the key and
    // the stored type ("model.gguf: key 'llama.block_count' is a string, not an integer").
    template <class T> T get(const std::string& key) const;
    template <class T> T get_or(const std::string& key, T fallback) const;
    // Arrays of the above (T = std::string for string arrays).
    template <class T> std::vector<T> get_array(const std::string& key) const;

    // ---- tensors ----
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(const std::string& name) const;

    // Converts a value to a readable string (long arrays abbreviated to `max_elems`).
    static std::string value_to_string(const GGUFValue& v, size_t max_elems = 8);

private:
    GGUFFile() = default;
    void parse();

    std::string path_;
    const uint8_t* base_ = nullptr;
    size_t size_ = 0;
    void* mapping_ = nullptr;          // munmap on destruction when mapped
    std::vector<uint8_t> owned_copy_;  // from_memory keeps its bytes here
    uint32_t version_ = 0;
    size_t alignment_ = 32;
    size_t data_offset_ = 0;
    std::vector<std::string> key_order_;
    std::unordered_map<std::string, GGUFValue> kv_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

// Writes GGUF v3. Keys and tensors are written in the order they were added; write -> open is the identity.
class GGUFWriter {
public:
    void set(const std::string& key, const GGUFValue& value);  // replaces an existing key in place
    void set_u32(const std::string& key, uint32_t v);
    void set_i32(const std::string& key, int32_t v);
    void set_u64(const std::string& key, uint64_t v);
    void set_f32(const std::string& key, float v);
    void set_bool(const std::string& key, bool v);
    void set_str(const std::string& key, const std::string& v);
    void set_arr_str(const std::string& key, const std::vector<std::string>& v);
    void set_arr_f32(const std::string& key, const std::vector<float>& v);
    void set_arr_i32(const std::string& key, const std::vector<int32_t>& v);
    void set_arr_u32(const std::string& key, const std::vector<uint32_t>& v);
    // The data is copied at write() time from `data`, which must stay valid until then.
    void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, const void* data,
                    size_t nbytes);
    // Fills `dst` with the tensor's bytes (exactly its size for type and shape). write() calls it when the
    // tensor's turn comes, into one buffer reused for every such tensor, so a file of any size is written
    // with one tensor in memory at a time.
    using Fill = std::function<void(uint8_t* dst)>;
    // A tensor whose bytes are made at write() time by `fill`; returns its size in bytes.
    size_t add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne, Fill fill);
    void set_alignment(size_t alignment);  // also written as general.alignment when not 32
    // Writes to path (via a temporary file renamed into place, so a failure leaves no half file). A symlink
    // is written through: its target is replaced and the link stays. See output_target() for what is refused.
    void write(const std::string& path) const;

    // The regular file write(path) would replace: path itself (which need not exist yet) or, for a symlink,
    // the file it points to. Throws Error naming the problem when path exists and is not a regular file or
    // a symlink to one (a device, a FIFO, a directory, a dangling link): replacing such a node with a file
    // would destroy it. Commands call it before long work, so they fail before it rather than after.
    static std::string output_target(const std::string& path);

private:
    struct PendingTensor {
        std::string name;
        DType type;
        std::vector<int64_t> ne;
        const void* data;  // null when fill makes the bytes
        size_t nbytes;
        Fill fill;
    };
    size_t checked_tensor_bytes(const std::string& name, DType type, const std::vector<int64_t>& ne) const;
    std::vector<std::pair<std::string, GGUFValue>> kv_;
    std::vector<PendingTensor> tensors_;
    size_t alignment_ = 32;
};

}  // namespace tessera
