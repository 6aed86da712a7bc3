// The CUDA module's one exported symbol (backends/cuda_module.h): the table of this backend's factories,
// stamped with this build's version and layout fingerprint so the loader can refuse a module that does not
// fit the program loading it.
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda_module.h"

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "dev"
#endif

extern "C" __attribute__((visibility("default"))) const tessera::CudaModule* tessera_cuda_module() {
    static const tessera::CudaModule module{TESSERA_VERSION, tessera::kCudaModuleAbi, tessera::cuda_device_count,
                                            tessera::make_cuda_backend, tessera::make_cuda_split_backend};
    return &module;
}
