// Helpers shared by the test files: paths to ../shared, random data, host
// tensors with their own storage, and closeness checks that say where they fail.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/ops.h"

namespace tessera::testing {

// Absolute path of a file under ../shared (beside the checkout).
std::string shared_path(const std::string& rel);
bool shared_available();
// Path of the built tessera CLI.
std::string cli_path();
// Runs a shell command, returns its exit status; stdout+stderr captured into *output when given.
int run_command(const std::string& cmd, std::string* output = nullptr);
std::vector<uint8_t> read_file(const std::string& path);
// Bytes of `path`'s mappings that are resident in this process (Linux /proc/self/smaps; -1 elsewhere).
long long mapped_resident_bytes(const std::string& path);
// Writes a small random-weight llama model (make-model's "tiny" preset, 2 layers, F32, a training context
// of n_ctx) to path and returns path.
std::string make_small_llama(const std::string& path, int64_t n_ctx);
// The message of the tessera::Error f throws, or "" when it throws none.
std::string error_of(const std::function<void()>& f);

std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f);

// Owns host storage for leaf tensors made in tests.
class HostArena {
public:
    // A contiguous leaf of the given type and shape with zeroed host storage.
    Tensor* make(Context& ctx, DType type, std::initializer_list<int64_t> ne, const std::string& name = "");
    // Gives storage to an existing leaf (e.g. one with custom strides); `bytes` defaults to t->nbytes().
    void give_storage(Tensor* t, size_t bytes = 0);
    // Fills a float-typed (F32/F16/BF16) or quantized leaf with uniform random values (quantized via from_float).
    void fill_random(Tensor* t, uint64_t seed, float lo = -1.0f, float hi = 1.0f);
    void fill(Tensor* t, const std::vector<float>& values);  // contiguous leaf, values converted to its type
    void fill_i32(Tensor* t, const std::vector<int32_t>& values);

private:
    std::vector<std::unique_ptr<HostBuffer>> buffers_;
};

// The elements of a host tensor (any strides) as floats, in logical order (i0 fastest).
std::vector<float> to_floats(const Tensor& t);
std::vector<int32_t> to_i32(const Tensor& t);

// Largest |a - b| / (atol + rtol * |b|) over the elements; <= 1 means close. NaN anywhere -> infinity
// unless both are NaN at the same place.
double closeness(const std::vector<float>& got, const std::vector<float>& want, double atol, double rtol);
// ||got - want|| / ||want||
double rel_rms(const std::vector<float>& got, const std::vector<float>& want);

}  // namespace tessera::testing
