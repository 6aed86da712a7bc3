#include "tests/op_harness.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>

#include "core/error.h"
#include "tests/testing.h"

namespace tessera::testing {

Tensor* Inputs::leaf(DType type, Shape ne, LeafFill fill) {
    Tensor* t = ctx.new_tensor(type, ne.data(), "in" + std::to_string(leaves.size()));
    t->flags |= kFlagInput;
    leaves.push_back({t, std::move(fill)});
    return t;
}

Tensor* Inputs::uniform(DType type, Shape ne, float lo, float hi) {
    LeafFill f;
    f.lo = lo;
    f.hi = hi;
    return leaf(type, ne, f);
}

Tensor* Inputs::steps(Shape ne, float step) {
    LeafFill f;
    f.kind = LeafFill::Steps;
    f.step = step;
    return leaf(DType::F32, ne, f);
}

Tensor* Inputs::ints(Shape ne, std::vector<int32_t> v) {
    LeafFill f;
    f.kind = LeafFill::Ints;
    f.ints = std::move(v);
    return leaf(DType::I32, ne, f);
}

Tensor* Inputs::floats(Shape ne, std::vector<float> v) {
    LeafFill f;
    f.kind = LeafFill::Floats;
    f.floats = std::move(v);
    return leaf(DType::F32, ne, f);
}

Tensor* Inputs::permuted(DType type, Shape ne, std::array<int, 4> p, float lo, float hi) {
    Shape src;
    for (int i = 0; i < 4; ++i) src[i] = ne[p[i]];
    return permute(ctx, uniform(type, src, lo, hi), p[0], p[1], p[2], p[3]);
}

Tensor* Inputs::transposed(DType type, Shape ne, float lo, float hi) { return permuted(type, ne, {1, 0, 2, 3}, lo, hi); }

Tensor* Inputs::padded_rows(DType type, Shape ne, int64_t pad, float lo, float hi) {
    Tensor* base = uniform(type, {ne[0] + pad, ne[1], ne[2], ne[3]}, lo, hi);
    return view(ctx, base, ne, {base->nb[0], base->nb[1], base->nb[2], base->nb[3]}, 0);
}

Tensor* Inputs::random_mask(int64_t ne0, int64_t ne1) {
    const int64_t rows = ne1 + 2;
    std::vector<float> mv(size_t(ne0 * rows));
    std::mt19937 rng(uint32_t(ne0 * 31 + ne1));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < ne0; ++c) {
            const bool out = (ne1 > 1 && r == 0) || (c > 0 && rng() % 3 == 0);
            mv[size_t(r * ne0 + c)] = out ? -std::numeric_limits<float>::infinity() : float(rng() % 5) - 2.0f;
        }
    return floats({ne0, rows, 1, 1}, mv);
}

std::vector<uint8_t> leaf_bytes(const Tensor& t, const LeafFill& f, uint64_t seed) {
    std::vector<uint8_t> bytes(t.nbytes());
    if (f.kind == LeafFill::Ints) {
        TESSERA_CHECK(int64_t(f.ints.size()) == t.nelements(), "leaf '%s': %zu ints for %lld elements",
                      t.name.c_str(), f.ints.size(), (long long)t.nelements());
        std::memcpy(bytes.data(), f.ints.data(), bytes.size());
        return bytes;
    }
    std::vector<float> v;
    if (f.kind == LeafFill::Floats) {
        v = f.floats;
    } else {
        v = random_floats(size_t(t.nelements()), seed, f.lo, f.hi);
        if (f.kind == LeafFill::Steps)
            for (float& x : v) x = std::round(x / f.step) * f.step;
    }
    TESSERA_CHECK(int64_t(v.size()) == t.nelements(), "leaf '%s': %zu values for %lld elements", t.name.c_str(),
                  v.size(), (long long)t.nelements());
    const TypeTraits& tr = type_traits(t.type);
    for (int64_t r = 0; r < t.nrows(); ++r) tr.from_float(v.data() + r * t.ne[0], bytes.data() + r * t.nb[1], t.ne[0]);
    return bytes;
}

std::vector<int32_t> random_ids(size_t n, int32_t bound, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<int32_t> v(n);
    for (auto& x : v) x = int32_t(rng() % uint64_t(bound));
    return v;
}

std::vector<int32_t> iota_ids(int64_t n, int32_t first) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = first + int32_t(i);
    return v;
}

Outcome run_op_case(Backend& be, const std::function<Tensor*(Inputs&)>& build, uint64_t seed,
                    const RunOptions& options) {
    Context ctx;
    Inputs in(ctx);
    Tensor* out = build(in);
    out->flags |= kFlagOutput;
    if (options.on_built) options.on_built(*out);
    Graph graph;
    for (Tensor* t : in.expand_first) graph.expand(t);
    graph.expand(out);

    Outcome res;
    for (Tensor* n : graph.nodes())
        if (!be.supports(*n)) {
            res.supported = false;
            res.unsupported_node = std::string(op_name(n->op)) + " " + type_name(n->type) + " " + n->shape_str();
            return res;
        }

    std::vector<std::unique_ptr<Buffer>> leaf_buffers;
    for (auto& [t, fill] : in.leaves) {
        leaf_buffers.push_back(be.alloc_buffer(std::max<size_t>(t->nbytes(), 1)));
        t->buffer = leaf_buffers.back().get();
        t->data = leaf_buffers.back()->base();
    }
    auto graph_buffer = allocate_graph(graph, be);
    for (size_t i = 0; i < in.leaves.size(); ++i) {
        Tensor* t = in.leaves[i].first;
        const auto bytes = leaf_bytes(*t, in.leaves[i].second, seed * 1000 + i);
        be.set_tensor(*t, bytes.data(), 0, bytes.size());
    }
    be.set_threads(options.threads);
    be.compute(graph);

    const Tensor* target = options.whole_destination ? out->storage_owner() : out;
    std::vector<uint8_t> raw(target->nbytes());
    be.get_tensor(*target, raw.data(), 0, raw.size());
    Tensor host = *target;  // same shape and strides, data now in host memory
    host.data = raw.data();
    host.buffer = nullptr;
    res.values = to_floats(host);
    for (int i = 0; i < 4; ++i) res.shape[i] = host.ne[i];
    return res;
}

namespace {

std::string index_str(size_t flat, const Shape& ne) {
    std::ostringstream s;
    int64_t f = int64_t(flat);
    s << "(";
    for (int i = 0; i < 4; ++i) {
        s << f % ne[i] << (i < 3 ? ", " : ")");
        f /= ne[i];
    }
    return s.str();
}

}  // namespace

void compare(const std::vector<float>& got, const std::vector<float>& want, const Shape& ne, const Tol& tol) {
    REQUIRE(got.size() == want.size());
    double worst = 0;
    size_t worst_i = 0;
    bool nonfinite_mismatch = false;
    for (size_t i = 0; i < got.size(); ++i) {
        const double g = got[i], w = want[i];
        if (!std::isfinite(w) || !std::isfinite(g)) {
            const bool same = (std::isnan(g) && std::isnan(w)) || g == w;
            if (!same && !nonfinite_mismatch) {
                nonfinite_mismatch = true;
                worst_i = i;
            }
            continue;
        }
        const double excess = std::fabs(g - w) - (tol.atol + tol.rtol * std::fabs(w));
        if (excess > worst) {
            worst = excess;
            if (!nonfinite_mismatch) worst_i = i;
        }
    }
    INFO("worst element " << index_str(worst_i, ne) << ": got " << got[worst_i] << ", want " << want[worst_i]
                          << " (atol " << tol.atol << ", rtol " << tol.rtol << ")");
    CHECK(!nonfinite_mismatch);
    CHECK(worst == 0.0);
}

std::string shape_name(const Shape& ne) {
    return "[" + std::to_string(ne[0]) + "," + std::to_string(ne[1]) + "," + std::to_string(ne[2]) + "," +
           std::to_string(ne[3]) + "]";
}

}  // namespace tessera::testing
