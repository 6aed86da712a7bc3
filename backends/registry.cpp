// The backend registry: maps names to factories. The cpu and reference backends are linked in; "cuda" and
// "cuda+cpu" come from the CUDA module (backends/cuda_module.h), which a build with TESSERA_CUDA=ON makes
// and which is loaded the first time one of them is asked for. "cuda" is available only when the module
// loads and a device is present.
#include "backends/registry.h"

#include "backends/cuda_module.h"
#include "core/error.h"

namespace tessera {

std::vector<std::string> compiled_backends() {
    std::vector<std::string> names{"cpu", "reference"};
#ifdef TESSERA_HAVE_CUDA
    names.push_back("cuda");
#endif
    return names;
}

std::vector<std::string> available_backends() {
    std::vector<std::string> names{"cpu", "reference"};
#ifdef TESSERA_HAVE_CUDA
    try {
        if (cuda_module().device_count() > 0) names.push_back("cuda");
    } catch (const Error&) {
        // no module, or CUDA's libraries missing: cuda is not available
    }
#endif
    return names;
}

std::unique_ptr<Backend> create_backend(const std::string& name, const BackendOptions& options) {
    if (name == "cpu") return make_cpu_backend(options);
    if (name == "reference") return make_reference_backend(options);
    if (name == "cuda" || name == "cuda+cpu") {
#ifdef TESSERA_HAVE_CUDA
        const CudaModule* module = nullptr;
        try {
            module = &cuda_module();
        } catch (const Error& e) {
            throw Error("backend '" + name + "': " + e.what(), Status::Unsupported);
        }
        TESSERA_CHECK_AS(Unsupported, module->device_count() > 0, "backend '%s': no CUDA device found", name.c_str());
        return name == "cuda" ? module->make_backend(options)
                              : module->make_split_backend(options, make_cpu_backend(options));
#else
        throw Error("backend '" + name + "': this build has no CUDA support (configure with TESSERA_CUDA=ON and nvcc)",
                    Status::Unsupported);
#endif
    }
    std::string known;
    for (const auto& n : compiled_backends()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown backend '" + name + "' (known: " + known + ")", Status::Unsupported);
}

}  // namespace tessera
