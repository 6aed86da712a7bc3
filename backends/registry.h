// Factories each backend folder provides; only backends/registry.cpp calls them.
#pragma once
#include <memory>

#include "core/backend.h"

namespace tessera {

std::unique_ptr<Backend> make_reference_backend(const BackendOptions& options);
std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options);
#ifdef TESSERA_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);
// "cuda+cpu": a model split between the GPU and the CPU (cuda_split_backend.cpp).
std::unique_ptr<Backend> make_cuda_split_backend(const BackendOptions& options);
int cuda_device_count();  // 0 when no driver or no device
#endif

}  // namespace tessera
