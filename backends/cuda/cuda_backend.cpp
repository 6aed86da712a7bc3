// The cuda backend: device buffers (cudaMalloc, no managed memory), host<->device copies on one stream,
// and a graph run node by node on that stream. Ops with a kernel go to the cuda_*.cu files when their
// `*_ok` accepts the node; every other node the reference supports is computed on the host
// (cuda_host_fallback.cpp), so the backend covers the reference's whole op set.
#include <cstdio>
#include <string>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_common.cuh"
#include "backends/op_family.h"
#include "backends/reference/reference_ops.h"
#include "core/error.h"

namespace tessera {

namespace cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
    // Clear a sticky launch error so later calls report their own status.
    (void)cudaGetLastError();
    throw Error(format("CUDA error: %s (%s) in %s at %s:%d", cudaGetErrorString(err), cudaGetErrorName(err), expr,
                       file, line));
}

[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line) {
    throw Error(format("cuBLAS error %d in %s at %s:%d", int(st), expr, file, line));
}

Scratch::~Scratch() {
    for (void* p : ptr_)
        if (p) cudaFree(p);
}

void* Scratch::get(int slot, size_t bytes, cudaStream_t stream) {
    TESSERA_CHECK(slot >= 0 && slot < kSlots, "cuda scratch: slot %d is not in [0, %d)", slot, kSlots);
    if (bytes <= size_[slot]) return ptr_[slot];
    TESSERA_CUDA(cudaStreamSynchronize(stream));  // work queued on the old block must finish before it is freed
    if (ptr_[slot]) TESSERA_CUDA(cudaFree(ptr_[slot]));
    ptr_[slot] = nullptr;
    size_[slot] = 0;
    // Grow by half again so a sequence of slightly larger requests does not reallocate each time.
    const size_t want = bytes + bytes / 2;
    const cudaError_t err = cudaMalloc(&ptr_[slot], want);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        ptr_[slot] = nullptr;
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        throw Error(format("CUDA out of memory: scratch needs %zu bytes (%zu MiB free of %zu MiB)", want,
                           free_b >> 20, total_b >> 20),
                    Status::OutOfMemory);
    }
    size_[slot] = want;
    return ptr_[slot];
}

}  // namespace cuda

namespace {

using cuda::Context;

class CudaBuffer final : public Buffer {
public:
    CudaBuffer(int device, size_t size) : size_(size) {
        TESSERA_CUDA(cudaSetDevice(device));
        const cudaError_t err = cudaMalloc(&base_, size > 0 ? size : 1);
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            size_t free_b = 0, total_b = 0;
            cudaMemGetInfo(&free_b, &total_b);
            throw Error(format("CUDA out of memory: %zu bytes requested on device %d (%zu MiB free of %zu MiB)", size,
                               device, free_b >> 20, total_b >> 20),
                        Status::OutOfMemory);
        }
        // Buffers start zeroed, as HostBuffers do (an empty KV cache relies on it).
        TESSERA_CUDA(cudaMemset(base_, 0, size > 0 ? size : 1));
    }
    ~CudaBuffer() override { cudaFree(base_); }
    CudaBuffer(const CudaBuffer&) = delete;
    CudaBuffer& operator=(const CudaBuffer&) = delete;
    void* base() const override { return base_; }
    size_t size() const override { return size_; }
    bool is_host() const override { return false; }

private:
    void* base_ = nullptr;
    size_t size_ = 0;
};

// The family whose kernel computes the node, or OpFamily::Other when its kernel declines the node's types
// or layout (or it has none): the host fallback computes it then.
OpFamily kernel_family(const Tensor& node) {
    const OpFamily f = op_family(node.op);
    switch (f) {
        case OpFamily::MulMat: return cuda::mul_mat_ok(node) ? f : OpFamily::Other;
        case OpFamily::MulMatId: return cuda::mul_mat_id_ok(node) ? f : OpFamily::Other;
        case OpFamily::Elementwise: return cuda::elementwise_ok(node) ? f : OpFamily::Other;
        case OpFamily::NormRopeSoftmax: return cuda::norm_rope_softmax_ok(node) ? f : OpFamily::Other;
        case OpFamily::Copy: return cuda::copy_ok(node) ? f : OpFamily::Other;
        case OpFamily::Attention: return cuda::attention_ok(node) ? f : OpFamily::Other;
        default: return f;  // View (nothing to compute) or Other
    }
}

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(int device) {
        int count = 0;
        TESSERA_CUDA(cudaGetDeviceCount(&count));
        TESSERA_CHECK(device >= 0 && device < count, "backend 'cuda': device %d is not in [0, %d)", device, count);
        ctx_.device = device;
        TESSERA_CUDA(cudaSetDevice(device));
        cudaDeviceProp prop{};
        TESSERA_CUDA(cudaGetDeviceProperties(&prop, device));
        ctx_.sm_count = prop.multiProcessorCount;
        ctx_.compute_capability = prop.major * 10 + prop.minor;
        device_name_ = prop.name;
        TESSERA_CUDA(cudaStreamCreateWithFlags(&ctx_.stream, cudaStreamNonBlocking));
        TESSERA_CUBLAS(cublasCreate(&ctx_.cublas));
        TESSERA_CUBLAS(cublasSetStream(ctx_.cublas, ctx_.stream));
        TESSERA_CUDA(cudaMalloc(&ctx_.error_flag, sizeof(int)));
        TESSERA_CUDA(cudaMemset(ctx_.error_flag, 0, sizeof(int)));
    }
    ~CudaBackend() override {
        cudaStreamSynchronize(ctx_.stream);
        cudaFree(ctx_.error_flag);
        cublasDestroy(ctx_.cublas);
        cudaStreamDestroy(ctx_.stream);
    }

    std::string name() const override { return "cuda"; }
    bool is_host() const override { return false; }

    bool supports(const Tensor& node) const override {
        return kernel_family(node) == OpFamily::Other ? ref::supports(node) : true;
    }

    std::unique_ptr<Buffer> alloc_buffer(size_t bytes) override {
        return std::make_unique<CudaBuffer>(ctx_.device, bytes);
    }

    void set_tensor(Tensor& t, const void* src, size_t offset, size_t size) override {
        check_range("set_tensor", t, offset, size);
        TESSERA_CUDA(cudaSetDevice(ctx_.device));
        // Pageable host memory: the copy is staged, and the caller may free src once we return.
        TESSERA_CUDA(cudaMemcpyAsync(static_cast<char*>(t.data) + offset, src, size, cudaMemcpyDefault,
                                     ctx_.stream));
        TESSERA_CUDA(cudaStreamSynchronize(ctx_.stream));
    }

    void get_tensor(const Tensor& t, void* dst, size_t offset, size_t size) override {
        check_range("get_tensor", t, offset, size);
        TESSERA_CUDA(cudaSetDevice(ctx_.device));
        TESSERA_CUDA(cudaMemcpyAsync(dst, static_cast<const char*>(t.data) + offset, size, cudaMemcpyDefault,
                                     ctx_.stream));
        TESSERA_CUDA(cudaStreamSynchronize(ctx_.stream));
    }

    void compute(const Graph& graph) override {
        TESSERA_CUDA(cudaSetDevice(ctx_.device));
        const std::vector<Tensor*>& nodes = graph.nodes();
        for (size_t i = 0; i < nodes.size(); ++i) {
            ctx_.node_tag = int(i) + 1;
            compute_node(*nodes[i]);
        }
        TESSERA_CUDA(cudaStreamSynchronize(ctx_.stream));
        int tag = 0;
        TESSERA_CUDA(cudaMemcpy(&tag, ctx_.error_flag, sizeof(int), cudaMemcpyDeviceToHost));
        if (tag != 0) {
            TESSERA_CUDA(cudaMemset(ctx_.error_flag, 0, sizeof(int)));
            const Tensor* bad = (tag > 0 && size_t(tag) <= nodes.size()) ? nodes[size_t(tag) - 1] : nullptr;
            const bool scatter = bad && bad->op == Op::SetRows;  // its ids must also be distinct
            throw Error(format("cuda backend: %s '%s': an id in its input is out of range%s", bad ? op_name(bad->op) : "?",
                               bad ? bad->name.c_str() : "?", scatter ? " or repeated" : ""));
        }
    }

private:
    // Whether a kernel can address t's storage: device memory, or pinned host memory mapped for the device.
    // (Storage with no buffer was placed by the caller, who vouches for it.)
    static bool device_addressable(const Tensor& t) {
        const Buffer* b = t.storage_owner()->buffer;
        return !b || b->device_accessible();
    }

    static void check_range(const char* what, const Tensor& t, size_t offset, size_t size) {
        TESSERA_CHECK(t.data != nullptr, "%s '%s': tensor has no storage", what, t.name.c_str());
        TESSERA_CHECK(offset + size <= t.nbytes(), "%s '%s': %zu bytes at %zu exceed its %zu", what, t.name.c_str(),
                      size, offset, t.nbytes());
        TESSERA_CHECK(device_addressable(t), "%s '%s': the tensor lives in host memory, not on the cuda device", what,
                      t.name.c_str());
    }

    // Every tensor a kernel touches must live in device memory: a weight left in the file mapping would
    // otherwise be read through a host pointer on the device.
    static void check_storage(const Tensor& node) {
        auto check = [&](const Tensor* t, const char* role) {
            TESSERA_CHECK(t->data != nullptr, "cuda backend: %s '%s': %s '%s' has no storage", op_name(node.op),
                          node.name.c_str(), role, t->name.c_str());
            TESSERA_CHECK(device_addressable(*t),
                          "cuda backend: %s '%s': %s '%s' is in host memory (upload weights with the model's "
                          "backend set to cuda)",
                          op_name(node.op), node.name.c_str(), role, t->name.c_str());
        };
        check(&node, "result");
        for (const Tensor* s : node.src)
            if (s) check(s, "source");
    }

    void compute_node(Tensor& node) {
        const OpFamily f = kernel_family(node);
        if (f == OpFamily::View) return;
        check_storage(node);
        switch (f) {
            case OpFamily::MulMat: return cuda::mul_mat(node, ctx_);
            case OpFamily::MulMatId: return cuda::mul_mat_id(node, ctx_);
            case OpFamily::Elementwise: return cuda::elementwise(node, ctx_);
            case OpFamily::NormRopeSoftmax: return cuda::norm_rope_softmax(node, ctx_);
            case OpFamily::Copy: return cuda::copy(node, ctx_);
            case OpFamily::Attention: return cuda::attention(node, ctx_);
            default: return cuda::host_fallback(node, ctx_);
        }
    }

    Context ctx_;
    std::string device_name_;
};

}  // namespace

int cuda_device_count() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError();  // no driver or no device: not an error for the registry
        return 0;
    }
    return count;
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
    return std::make_unique<CudaBackend>(options.device);
}

}  // namespace tessera
