// The backend interface: a backend owns buffers in its own memory, says which
// ops and types it supports, copies tensors in and out, and computes a graph.
// reference (the scalar oracle), cpu (xsimd + OpenMP) and cuda plug in here;
// core/ and models/ never name a concrete backend.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/graph.h"

namespace tessera {

class Backend;

class Buffer {
public:
    virtual ~Buffer() = default;
    virtual void* base() const = 0;  // in the owning backend's address space
    virtual size_t size() const = 0;
    virtual bool is_host() const = 0;  // base() is CPU-addressable
    // A device backend's kernels can address it: device memory, or host memory pinned and mapped for the
    // device (the buffers of a split between a GPU and the CPU).
    virtual bool device_accessible() const { return !is_host(); }
};

// Host memory: owned (64-byte aligned, zeroed) or borrowed (e.g. a read-only file mapping).
class HostBuffer final : public Buffer {
public:
    explicit HostBuffer(size_t size);                  // owned
    HostBuffer(void* borrowed, size_t size);           // not freed here
    ~HostBuffer() override;
    HostBuffer(const HostBuffer&) = delete;
    HostBuffer& operator=(const HostBuffer&) = delete;
    void* base() const override { return base_; }
    size_t size() const override { return size_; }
    bool is_host() const override { return true; }

private:
    void* base_ = nullptr;
    size_t size_ = 0;
    bool owned_ = false;
};

struct BackendOptions {
    int threads = 0;  // 0 = the default (physical cores)
    int device = 0;   // device index for device backends
    // cpu backend's kernel level: "" = TESSERA_CPU, else the best this CPU has; or portable|avx2|avx512|amx
    // (an unknown name, or a level this CPU lacks, is an error naming it).
    std::string cpu_level;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    // True when the backend computes on host memory (tensors it reads may live in HostBuffers).
    virtual bool is_host() const = 0;
    // Whether this backend can compute `node` with its sources' types and layouts.
    virtual bool supports(const Tensor& node) const = 0;
    virtual std::unique_ptr<Buffer> alloc_buffer(size_t bytes) = 0;
    // Copies bytes into / out of t's storage (t must have storage on this backend).
    virtual void set_tensor(Tensor& t, const void* src, size_t offset, size_t size) = 0;
    virtual void get_tensor(const Tensor& t, void* dst, size_t offset, size_t size) = 0;
    // Runs every node in order. Throws tessera::Error on an unsupported node or bad input (e.g. a row id
    // out of range), naming the node.
    virtual void compute(const Graph& graph) = 0;
    // Weights in a layout of the backend's own, made once when a model is loaded (the cpu backend's amx level
    // repacks Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K matrices for its AMX tiles). The backend repacks those of `weights` it has a layout
    // for into one buffer, which it returns, points them into it and marks them kFlagRepacked; null when it
    // keeps every weight as it is. The caller keeps the buffer as long as the tensors.
    // source_done(data, bytes), when given, is called (from any of the backend's threads) with a weight's old
    // storage as soon as its repacked copy is made, so the caller can drop those pages one weight at a time
    // and memory never holds the whole model twice while loading.
    using RepackSourceDone = std::function<void(const void* data, size_t bytes)>;
    virtual std::unique_ptr<Buffer> repack_weights(const std::vector<Tensor*>& weights,
                                                   const RepackSourceDone& source_done = {}) {
        (void)weights;
        (void)source_done;
        return nullptr;
    }
    // The instruction-set level of the kernels this backend runs ("avx2", ...), "" where that does not apply.
    virtual std::string kernel_level() const { return ""; }
    virtual void set_threads(int threads) { (void)threads; }
    virtual int threads() const { return 1; }
    // Memory this backend's kernel for `node` takes beyond the graph's buffers (its own scratch), for the
    // figures benchmarks print; 0 where it takes none.
    virtual size_t scratch_bytes(const Tensor& node) const { return 0; }
};

// The registry: "reference", "cpu", and "cuda" when built with it and a device is present.
std::unique_ptr<Backend> create_backend(const std::string& name, const BackendOptions& options = {});
// Names of backends compiled in (whether or not a device is present).
std::vector<std::string> compiled_backends();
// Names of backends usable now.
std::vector<std::string> available_backends();

// Plans the graph's intermediates, allocates one buffer on `backend` for them and points them in.
// Returns the buffer (keep it alive while the graph is used) and fills peak_bytes if given.
std::unique_ptr<Buffer> allocate_graph(const Graph& graph, Backend& backend, size_t* peak_bytes = nullptr);

// Number of physical cores (not SMT siblings); at least 1.
int physical_cores();

}  // namespace tessera
