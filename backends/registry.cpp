// The backend registry: maps names to factories. Device backends appear only
// when compiled in, and are "available" only when a device is present.
#include "backends/registry.h"

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
    if (cuda_device_count() > 0) names.push_back("cuda");
#endif
    return names;
}

std::unique_ptr<Backend> create_backend(const std::string& name, const BackendOptions& options) {
    if (name == "cpu") return make_cpu_backend(options);
    if (name == "reference") return make_reference_backend(options);
    if (name == "cuda" || name == "cuda+cpu") {
#ifdef TESSERA_HAVE_CUDA
        TESSERA_CHECK_AS(Unsupported, cuda_device_count() > 0, "backend '%s': no CUDA device found", name.c_str());
        return name == "cuda" ? make_cuda_backend(options) : make_cuda_split_backend(options);
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
