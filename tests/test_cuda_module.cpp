// The CUDA backend as a module loaded on demand (backends/cuda_module.h), without nvcc or a GPU: the
// loader refuses, with a message naming the problem, a file that is missing, one that is not a module, a
// module from another build and one whose libraries are missing; a module that fits is used, and an error
// raised inside it arrives as a tessera::Error with its status. The fake modules are tests/cuda_module.
// And the command itself links no CUDA library (NEEDED entries), so it starts without them.
#include <doctest/doctest.h>

#include <cstdio>
#include <functional>
#include <string>

#include <unistd.h>

#include "backends/cuda_module.h"
#include "core/error.h"
#include "tests/testing.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

std::string fake(const char* kind) { return std::string(TESSERA_FAKE_MODULE_DIR) + "/libfake-cuda-" + kind + ".so"; }

// The status of the tessera::Error f throws (f must throw one).
Status status_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.status();
    }
    FAIL("no tessera::Error thrown");
    return Status::InvalidArgument;
}

// Runs the command and returns its exit status, its output (stdout and stderr) in *out.
int run(const std::string& cmd, std::string* out) {
    out->clear();
    return run_command(cmd, out);
}

}  // namespace

TEST_CASE("cuda module: each refusal names the file and what is wrong with it") {
    const std::string missing = std::string(TESSERA_FAKE_MODULE_DIR) + "/no-such-dir/libtessera-cuda.so";
    std::string msg = error_of([&] { load_cuda_module(missing); });
    INFO(msg);
    CHECK(msg.find(missing) != std::string::npos);
    CHECK(msg.find("does not exist") != std::string::npos);
    CHECK(status_of([&] { load_cuda_module(missing); }) == Status::Unsupported);

    msg = error_of([&] { load_cuda_module(fake("no_entry")); });
    INFO(msg);
    CHECK(msg.find("libfake-cuda-no_entry.so is not a tessera CUDA backend module") != std::string::npos);

    msg = error_of([&] { load_cuda_module(fake("other_abi")); });
    INFO(msg);
    CHECK(msg.find("libfake-cuda-other_abi.so was built by another tessera build") != std::string::npos);

    // dlopen's own words name the library that is missing, as they would name libcublas.
    msg = error_of([&] { load_cuda_module(fake("needs_gone")); });
    INFO(msg);
    CHECK(msg.find("cannot load the CUDA backend module") != std::string::npos);
    CHECK(msg.find("libtessera_test_gone.so") != std::string::npos);
    CHECK(status_of([&] { load_cuda_module(fake("needs_gone")); }) == Status::Unsupported);
}

TEST_CASE("cuda module: a module that fits is used, and its errors cross the boundary whole") {
    const CudaModule& m = load_cuda_module(fake("fits"));
    CHECK(m.device_count() == 0);
    BackendOptions opt;
    opt.device = 3;
    bool caught = false;
    try {
        m.make_backend(opt);
    } catch (const Error& e) {  // thrown inside the module, whose copy of Error's code is private to it
        caught = true;
        CHECK(std::string(e.what()) == "fake cuda module: device 3 is out of memory");
        CHECK(e.status() == Status::OutOfMemory);
    }
    CHECK(caught);
}

TEST_CASE("cuda module: asking the command for cuda names what is missing, and the command links no CUDA") {
    const std::string model =
        make_small_llama("/tmp/tessera-test-cuda-module-" + std::to_string(getpid()) + ".gguf", 64);
    const bool built_with_cuda = compiled_backends().size() > 2;
    std::string out;
    // A module whose libraries are missing: the command reports it and exits with an error, no crash.
    int rc = run("TESSERA_CUDA_MODULE=" + fake("needs_gone") + " " + cli_path() + " run -m " + model +
                             " -p hi -n 1 --device cuda",
                         &out);
    INFO(out);
    CHECK(rc > 0);
    CHECK(rc < 128);  // an error exit, not a crash
    if (built_with_cuda) {
        CHECK(out.find("libtessera_test_gone.so") != std::string::npos);
        // Where nothing is found, the message says where it looked.
        rc = run("TESSERA_CUDA_MODULE=/nonexistent/libtessera-cuda.so " + cli_path() + " run -m " + model +
                             " -p hi -n 1 --device cuda",
                         &out);
        CHECK(rc != 0);
        CHECK(out.find("/nonexistent/libtessera-cuda.so") != std::string::npos);
        // A module that fits, on a machine without a device.
        rc = run("TESSERA_CUDA_MODULE=" + fake("fits") + " " + cli_path() + " run -m " + model +
                             " -p hi -n 1 --device cuda",
                         &out);
        CHECK(rc != 0);
        CHECK(out.find("no CUDA device found") != std::string::npos);
    } else {
        CHECK(out.find("no CUDA support") != std::string::npos);
    }

    // The command's own dynamic section: no CUDA library among what it needs to start.
    REQUIRE(run("readelf -d " + cli_path(), &out) == 0);
    INFO(out);
    CHECK(out.find("(NEEDED)") != std::string::npos);
    CHECK(out.find("libcuda") == std::string::npos);
    CHECK(out.find("libcublas") == std::string::npos);
    std::remove(model.c_str());
}
