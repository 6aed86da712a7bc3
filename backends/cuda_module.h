// The CUDA backend as a module: with TESSERA_CUDA=ON the cuda backend (backends/cuda) builds into its own
// shared library, libtessera-cuda.so, which the registry loads with dlopen the first time a "cuda" or
// "cuda+cpu" backend is asked for. Nothing else links CUDA's libraries, so the tessera command and an app
// linking libtessera.a start on a machine without them, and map none of them until a GPU is asked for.
//
// The module is self-contained (the core and reference code it uses are linked into it, hidden) and
// exports one C function, kCudaModuleEntry, returning the table below. Backends cross the boundary as
// C++ objects, so a module only fits the build that made it: the table carries that build's version and
// a fingerprint of the shared types' layout, and the loader refuses any other.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/backend.h"

namespace tessera {

struct CudaModule {
    const char* version;  // TESSERA_VERSION of the build that made the module
    uint64_t abi;         // kCudaModuleAbi of that build
    int (*device_count)();  // 0 when no driver or no device
    std::unique_ptr<Backend> (*make_backend)(const BackendOptions& options);
    // "cuda+cpu" (a model split between the GPU and the CPU): `host` computes the nodes whose weights stay
    // in host memory (the registry passes a cpu backend made with the same options).
    std::unique_ptr<Backend> (*make_split_backend)(const BackendOptions& options, std::unique_ptr<Backend> host);
};

inline constexpr const char* kCudaModuleFile = "libtessera-cuda.so";
inline constexpr const char* kCudaModuleEntry = "tessera_cuda_module";
using CudaModuleEntryFn = const CudaModule* (*)();

// Bump kCudaModuleInterface when CudaModule's meaning changes; the sizes catch a layout that drifted.
inline constexpr uint64_t kCudaModuleInterface = 1;
inline constexpr uint64_t kCudaModuleAbi =
    kCudaModuleInterface << 56 ^ uint64_t(sizeof(Tensor)) << 40 ^ uint64_t(sizeof(Graph)) << 28 ^
    uint64_t(sizeof(BackendOptions)) << 16 ^ uint64_t(sizeof(CudaModule)) << 8 ^ uint64_t(sizeof(std::string));

// The module, loaded once per process (never unloaded); throws tessera::Error (Status::Unsupported) naming
// what is missing: the module file (and where it was looked for), a CUDA library it needs (dlopen's
// message), or a module from another build. Looked for, in order: $TESSERA_CUDA_MODULE (a path: only
// there), next to the running program, in <program>/../lib, in the install's lib folder, and then by
// name through the dynamic loader's search path (LD_LIBRARY_PATH, ld.so.cache).
const CudaModule& cuda_module();
// Loads the module at `path` (tests: a module that is not one, or from another build). Throws as above.
const CudaModule& load_cuda_module(const std::string& path);

}  // namespace tessera
