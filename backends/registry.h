// Factories each backend folder linked into libtessera provides; only backends/registry.cpp calls them.
// (The cuda backend is a module loaded on demand: backends/cuda_module.h.)
#pragma once
#include <memory>

#include "core/backend.h"

namespace tessera {

std::unique_ptr<Backend> make_reference_backend(const BackendOptions& options);
std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options);

}  // namespace tessera
