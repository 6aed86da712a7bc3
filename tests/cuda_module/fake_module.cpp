// Stand-ins for the CUDA module (backends/cuda_module.h), so the loader's refusals and the boundary itself
// are tested without nvcc or a GPU. Built (tests/CMakeLists.txt) as the real module is, hidden and linked
// with libtessera.a's code kept private, once per FAKE_KIND:
//   fits       a table that fits: no device, and a backend factory that throws a tessera::Error from
//              inside the module (it must arrive as one, status intact)
//   other_abi  a table from "another build" (its layout fingerprint differs)
//   no_entry   no entry point at all
//   needs_gone linked against a library that is not on any search path (like a missing libcublas)
#include "backends/cuda_module.h"
#include "core/error.h"

#define FAKE_fits 1
#define FAKE_other_abi 2
#define FAKE_no_entry 3
#define FAKE_needs_gone 4
#define FAKE_IS(kind) (FAKE_KIND == FAKE_##kind)

#if FAKE_IS(needs_gone)
extern "C" int tessera_test_gone_value();  // in libtessera_test_gone.so
#endif

namespace {

int no_device() {
#if FAKE_IS(needs_gone)
    return tessera_test_gone_value() * 0;
#else
    return 0;
#endif
}

std::unique_ptr<tessera::Backend> refuse(const tessera::BackendOptions& options) {
    throw tessera::Error(tessera::format("fake cuda module: device %d is out of memory", options.device),
                         tessera::Status::OutOfMemory);
}

std::unique_ptr<tessera::Backend> refuse_split(const tessera::BackendOptions& options,
                                               std::unique_ptr<tessera::Backend>) {
    return refuse(options);
}

}  // namespace

#if !FAKE_IS(no_entry)
extern "C" __attribute__((visibility("default"))) const tessera::CudaModule* tessera_cuda_module() {
    static const tessera::CudaModule module{TESSERA_VERSION,
                                            FAKE_IS(other_abi) ? tessera::kCudaModuleAbi + 1 : tessera::kCudaModuleAbi,
                                            no_device, refuse, refuse_split};
    return &module;
}
#else
extern "C" __attribute__((visibility("default"))) int not_a_tessera_module() { return no_device(); }
#endif
