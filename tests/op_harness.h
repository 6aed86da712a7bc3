// The op-by-op harness shared by test_ops (cpu and device backends against the reference) and
// test_cuda_emulated (the emulated cuda backend against the reference): leaves described by how they are
// filled, so the two builds of a case get identical bytes; one run of a case on a backend through
// alloc_buffer / set_tensor / get_tensor only; and the element-wise comparison that names the worst element.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/ops.h"

namespace tessera::testing {

using Shape = std::array<int64_t, 4>;
constexpr double kU = 1.0 / (1 << 24);  // float unit roundoff, 2^-24

// How one leaf is filled. The bytes are a pure function of (case seed, leaf index), so the two builds of a
// case (reference and backend) receive identical inputs.
struct LeafFill {
    enum Kind { Uniform, Steps, Ints, Floats } kind = Uniform;
    float lo = -1.0f, hi = 1.0f;  // Uniform / Steps range
    float step = 0.0f;            // Steps: values are multiples of step (ties on purpose)
    std::vector<int32_t> ints;    // Ints: the values
    std::vector<float> floats;    // Floats: the values (converted to the leaf's type)
};

// Builds leaves for a case and remembers how to fill them. Non-contiguous inputs are views over a
// contiguous leaf (transposed, permuted, or rows padded apart).
class Inputs {
public:
    explicit Inputs(Context& ctx) : ctx(ctx) {}
    Context& ctx;
    std::vector<std::pair<Tensor*, LeafFill>> leaves;
    std::vector<Tensor*> expand_first;  // nodes the graph computes before the output's (cache writes)

    Tensor* leaf(DType type, Shape ne, LeafFill fill);
    Tensor* uniform(DType type, Shape ne, float lo = -1.0f, float hi = 1.0f);
    Tensor* steps(Shape ne, float step);
    Tensor* ints(Shape ne, std::vector<int32_t> v);
    Tensor* floats(Shape ne, std::vector<float> v);
    // Logical shape ne, made as permute(leaf, p): leaf dim i becomes result dim p[i].
    Tensor* permuted(DType type, Shape ne, std::array<int, 4> p, float lo = -1.0f, float hi = 1.0f);
    // Logical shape ne, dims 0 and 1 swapped in memory (elements of a row are ne[1] apart).
    Tensor* transposed(DType type, Shape ne, float lo = -1.0f, float hi = 1.0f);
    // Logical shape ne; rows are contiguous but `pad` elements (whole blocks for quant types) apart.
    Tensor* padded_rows(DType type, Shape ne, int64_t pad, float lo = -1.0f, float hi = 1.0f);
    // A softmax mask F32 [ne0, ne1 + 2] (2 spare rows): row 0 fully masked when ne1 > 1, other entries -inf
    // at random or a finite bias in [-2, 2]; the same values for the same (ne0, ne1).
    Tensor* random_mask(int64_t ne0, int64_t ne1);
};

std::vector<uint8_t> leaf_bytes(const Tensor& t, const LeafFill& f, uint64_t seed);
std::vector<int32_t> random_ids(size_t n, int32_t bound, uint64_t seed);
std::vector<int32_t> iota_ids(int64_t n, int32_t first = 0);

// got is accepted where |got - want| <= atol + rtol * |want| for every element; non-finite values must match
// exactly (same infinity, NaN where the reference has NaN).
struct Tol {
    double atol = 0, rtol = 0;
};

struct Outcome {
    bool supported = true;
    std::string unsupported_node;
    std::vector<float> values;
    Shape shape{};
};

struct RunOptions {
    int threads = 1;
    bool whole_destination = false;  // read the storage owner (e.g. the cache a cpy writes into)
    // Called with the built output before anything runs (e.g. to check which kernel will take it).
    std::function<void(const Tensor& out)> on_built;
};

// Builds the case in a fresh context on backend `be`, uploads the leaves, computes, and reads the output
// back through get_tensor. A node the backend does not support ends the run with supported = false.
Outcome run_op_case(Backend& be, const std::function<Tensor*(Inputs&)>& build, uint64_t seed,
                    const RunOptions& options = {});

// Checks got against want (doctest CHECKs); on failure reports the worst element, its index and both values.
void compare(const std::vector<float>& got, const std::vector<float>& want, const Shape& ne, const Tol& tol);
std::string shape_name(const Shape& ne);

}  // namespace tessera::testing
