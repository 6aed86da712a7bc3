// Computes a node the cuda kernels decline (argmax, top_k, concat, sum, mean, or a type/layout no kernel
// takes) with the reference ops on the host: each source's byte span is copied down, the reference computes
// into a host copy of the result's span, and that span is copied back. Slow but exact, and it keeps the
// backend's op coverage equal to the reference's; the models' hot ops all have kernels.
#include <vector>

#include "backends/cuda/cuda_common.cuh"
#include "backends/reference/reference_ops.h"
#include "core/error.h"

namespace tessera::cuda {

namespace {

// A host copy of t's bytes (element 0 to its last element), and a shadow tensor pointing at it.
struct HostShadow {
    std::vector<uint8_t> bytes;
    Tensor tensor;
};

void download(const Tensor& t, HostShadow& shadow, cudaStream_t stream) {
    shadow.tensor = t;
    shadow.tensor.view_src = nullptr;
    shadow.tensor.view_offset = 0;
    shadow.tensor.buffer = nullptr;
    shadow.bytes.resize(t.nbytes());
    if (!shadow.bytes.empty())
        TESSERA_CUDA(cudaMemcpyAsync(shadow.bytes.data(), t.data, shadow.bytes.size(), cudaMemcpyDefault, stream));
    shadow.tensor.data = shadow.bytes.data();
}

}  // namespace

void host_fallback(Tensor& node, Context& ctx) {
    TESSERA_CHECK_AS(Unsupported, ref::supports(node), "cuda backend: %s '%s' is not supported", op_name(node.op), node.name.c_str());
    HostShadow out;
    HostShadow srcs[kMaxSrc];
    // The result's span is copied down too: a strided result (cpy into a cache view) keeps the bytes between
    // its elements, which the upload writes back unchanged.
    download(node, out, ctx.stream);
    for (int i = 0; i < kMaxSrc; ++i) {
        if (!node.src[i]) continue;
        download(*node.src[i], srcs[i], ctx.stream);
        out.tensor.src[i] = &srcs[i].tensor;
    }
    TESSERA_CUDA(cudaStreamSynchronize(ctx.stream));
    ref::compute_node(&out.tensor);
    if (!out.bytes.empty()) {
        TESSERA_CUDA(cudaMemcpyAsync(node.data, out.bytes.data(), out.bytes.size(), cudaMemcpyDefault,
                                     ctx.stream));
        // out.bytes is pageable and dies with this frame: wait for the copy.
        TESSERA_CUDA(cudaStreamSynchronize(ctx.stream));
    }
}

}  // namespace tessera::cuda
