// The cuda backend's factories, inside the CUDA module (libtessera-cuda.so). libtessera reaches them only
// through the module's table (backends/cuda_module.h); test_cuda_emulated calls them directly.
#pragma once
#include <memory>

#include "core/backend.h"

namespace tessera {

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);
// "cuda+cpu": a model split between the GPU and `host`, the backend for the layers left in host memory
// (cuda_split_backend.cpp).
std::unique_ptr<Backend> make_cuda_split_backend(const BackendOptions& options, std::unique_ptr<Backend> host);
int cuda_device_count();  // 0 when no driver or no device

}  // namespace tessera
