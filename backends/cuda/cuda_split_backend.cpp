// "cuda+cpu": a model split between the GPU and the CPU (--gpu-layers N). The first N layers' weights were
// uploaded to the GPU, the rest stay in the file mapping. Every other buffer (KV cache, intermediates,
// inputs) is pinned host memory mapped for the device, which both sides can address, so no tensor is ever
// copied between them: each node runs where its weights are, on the GPU when it reads an uploaded weight,
// on the CPU when it reads one in host memory, and otherwise where the node before it ran (the norms,
// ropes and attention of a layer follow its matrices). The GPU reads pinned memory over the bus, which is
// slow next to its own memory but small next to the weights of the layers it keeps.
#include <cstring>
#include <memory>
#include <utility>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_common.cuh"
#include "core/error.h"

namespace tessera {

namespace {

class PinnedBuffer final : public Buffer {
public:
    explicit PinnedBuffer(size_t size) : size_(size) {
        // Mapped: kernels address it directly (with unified addressing the device pointer is the host one).
        const cudaError_t err = cudaHostAlloc(&base_, size > 0 ? size : 1, cudaHostAllocMapped | cudaHostAllocPortable);
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            throw Error(format("out of memory: cannot pin %zu bytes of host memory for the GPU/CPU split (%s)", size,
                               cudaGetErrorString(err)),
                        Status::OutOfMemory);
        }
        void* device_view = nullptr;
        TESSERA_CUDA(cudaHostGetDevicePointer(&device_view, base_, 0));
        TESSERA_CHECK(device_view == base_,
                      "cuda+cpu: pinned memory has a different device address (no unified addressing on this system)");
        std::memset(base_, 0, size > 0 ? size : 1);  // zeroed, as every buffer starts
    }
    ~PinnedBuffer() override { cudaFreeHost(base_); }
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    void* base() const override { return base_; }
    size_t size() const override { return size_; }
    bool is_host() const override { return true; }
    bool device_accessible() const override { return true; }

private:
    void* base_ = nullptr;
    size_t size_ = 0;
};

enum class Side { Either, Host, Device };

// Where a node must run, from where its sources live.
Side side_of(const Tensor& node) {
    Side side = Side::Either;
    for (const Tensor* s : node.src) {
        if (!s) continue;
        const Buffer* b = s->storage_owner()->buffer;
        if (!b) continue;
        const Side need = !b->is_host() ? Side::Device : !b->device_accessible() ? Side::Host : Side::Either;
        if (need == Side::Either) continue;
        TESSERA_CHECK(side == Side::Either || side == need,
                      "cuda+cpu: %s '%s' reads both a GPU weight and a host weight ('%s'); no side can compute it",
                      op_name(node.op), node.name.c_str(), s->name.c_str());
        side = need;
    }
    return side;
}

class CudaSplitBackend final : public Backend {
public:
    CudaSplitBackend(const BackendOptions& options, std::unique_ptr<Backend> host)
        : host_(std::move(host)), device_(make_cuda_backend(options)) {
        TESSERA_CHECK(host_ && host_->is_host(), "cuda+cpu: the host side must be a host backend");
    }

    std::string name() const override { return "cuda+cpu"; }
    // Some tensors (the uploaded weights) are device memory, so callers must use set/get_tensor.
    bool is_host() const override { return false; }
    bool supports(const Tensor& node) const override { return host_->supports(node) && device_->supports(node); }
    std::unique_ptr<Buffer> alloc_buffer(size_t bytes) override { return std::make_unique<PinnedBuffer>(bytes); }

    void set_tensor(Tensor& t, const void* src, size_t offset, size_t size) override {
        on_host(t) ? host_->set_tensor(t, src, offset, size) : device_->set_tensor(t, src, offset, size);
    }
    void get_tensor(const Tensor& t, void* dst, size_t offset, size_t size) override {
        on_host(t) ? host_->get_tensor(t, dst, offset, size) : device_->get_tensor(t, dst, offset, size);
    }

    void compute(const Graph& graph) override {
        // Consecutive nodes on one side form a segment; each segment runs to completion (the device backend
        // synchronizes at the end of compute) before the other side reads what it wrote.
        Side current = Side::Host;
        Graph segment;
        for (Tensor* node : graph.nodes()) {
            const Side need = side_of(*node);
            if (need != Side::Either && need != current) {
                run(segment, current);
                segment = Graph();
                current = need;
            }
            segment.append(node);
        }
        run(segment, current);
    }

    void set_threads(int threads) override { host_->set_threads(threads); }
    int threads() const override { return host_->threads(); }

private:
    static bool on_host(const Tensor& t) {
        const Buffer* b = t.storage_owner()->buffer;
        return b && b->is_host();
    }
    void run(const Graph& segment, Side side) {
        if (segment.nodes().empty()) return;
        (side == Side::Device ? device_ : host_)->compute(segment);
    }

    std::unique_ptr<Backend> host_, device_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_split_backend(const BackendOptions& options, std::unique_ptr<Backend> host) {
    return std::make_unique<CudaSplitBackend>(options, std::move(host));
}

}  // namespace tessera
