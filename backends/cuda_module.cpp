// Finding and loading the CUDA backend module (see cuda_module.h). Built into every libtessera; only the
// registry calls it, and only when a cuda backend is asked for.
#include "backends/cuda_module.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.h"

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "dev"
#endif

namespace tessera {

namespace {

bool is_file(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string program_dir() {
    char buf[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "";
    const std::string path(buf, size_t(n));
    return path.substr(0, path.rfind('/'));
}

// Where a module is looked for before the dynamic loader's own search.
std::vector<std::string> module_places() {
    std::vector<std::string> places;
    const std::string dir = program_dir();
    if (!dir.empty()) {
        places.push_back(dir + "/" + kCudaModuleFile);
#ifdef TESSERA_INSTALL_LIBDIR
        places.push_back(dir + "/../" TESSERA_INSTALL_LIBDIR "/" + kCudaModuleFile);
#endif
    }
#ifdef TESSERA_INSTALL_FULL_LIBDIR
    places.push_back(std::string(TESSERA_INSTALL_FULL_LIBDIR "/") + kCudaModuleFile);
#endif
    return places;
}

[[noreturn]] void refuse(const std::string& what) { throw Error(what, Status::Unsupported); }

// dlopen's handle is kept for the life of the process: backends made by the module may live until exit.
const CudaModule& open_module(const std::string& path_or_name) {
    void* handle = dlopen(path_or_name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* why = dlerror();
        refuse("cannot load the CUDA backend module " + path_or_name + ": " + (why ? why : "unknown error") +
               " (a CUDA runtime library it needs may be missing: it needs CUDA's libcudart and libcublas)");
    }
    auto entry = reinterpret_cast<CudaModuleEntryFn>(dlsym(handle, kCudaModuleEntry));
    if (!entry) refuse(path_or_name + " is not a tessera CUDA backend module (it has no " + kCudaModuleEntry + ")");
    const CudaModule* m = entry();
    if (!m || !m->version || std::strcmp(m->version, TESSERA_VERSION) != 0 || m->abi != kCudaModuleAbi)
        refuse(path_or_name + " was built by another tessera build (version " + (m && m->version ? m->version : "?") +
               ", this is " + TESSERA_VERSION + "); use the module built with this program");
    return *m;
}

struct Loaded {
    const CudaModule* module = nullptr;
    std::string error;
};

Loaded find_and_open() {
    Loaded out;
    try {
        if (const char* env = std::getenv("TESSERA_CUDA_MODULE"); env && *env) {
            if (!is_file(env)) refuse(std::string("the CUDA backend module ") + env + " (TESSERA_CUDA_MODULE) does not exist");
            out.module = &open_module(env);
            return out;
        }
        std::string looked;
        for (const std::string& place : module_places()) {
            if (is_file(place)) {
                out.module = &open_module(place);
                return out;
            }
            looked += place + ", ";
        }
        // Last, by name through the dynamic loader's search path. Its message for a module it cannot find
        // starts with the module's name; any other (a library the module needs is missing) is reported.
        if (void* handle = dlopen(kCudaModuleFile, RTLD_NOW | RTLD_LOCAL)) {
            out.module = &open_module(kCudaModuleFile);
            dlclose(handle);  // open_module holds its own reference
            return out;
        }
        const char* why = dlerror();
        const std::string not_found = std::string(kCudaModuleFile) + ": cannot open shared object file";
        if (why && std::strncmp(why, not_found.c_str(), not_found.size()) != 0)
            refuse(std::string("cannot load the CUDA backend module ") + kCudaModuleFile + ": " + why);
        refuse(std::string("the CUDA backend module ") + kCudaModuleFile + " was not found (looked in " + looked +
               "and the library path; TESSERA_CUDA_MODULE=PATH names it elsewhere). It is built beside the tessera "
               "command by a build with TESSERA_CUDA=ON");
    } catch (const Error& e) {
        out.error = e.what();
    }
    return out;
}

}  // namespace

const CudaModule& load_cuda_module(const std::string& path) {
    if (!is_file(path)) refuse("the CUDA backend module " + path + " does not exist");
    return open_module(path);
}

const CudaModule& cuda_module() {
    static const Loaded loaded = find_and_open();  // once per process, thread-safe
    if (!loaded.module) refuse(loaded.error);
    return *loaded.module;
}

}  // namespace tessera
