#include "tests/testing.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/error.h"
#include "models/make_model.h"

#ifndef TESSERA_SHARED_DIR
#define TESSERA_SHARED_DIR "../shared"
#endif
#ifndef TESSERA_CLI
#define TESSERA_CLI "tessera"
#endif

namespace tessera::testing {

std::string shared_path(const std::string& rel) { return std::string(TESSERA_SHARED_DIR) + "/" + rel; }

bool shared_available() {
    struct stat st;
    return stat(TESSERA_SHARED_DIR, &st) == 0 && S_ISDIR(st.st_mode);
}

std::string cli_path() { return TESSERA_CLI; }

std::string make_small_llama(const std::string& path, int64_t n_ctx) {
    MakeModelOptions o;
    o.preset = "tiny";
    o.type = "f32";
    o.has_shape = true;
    o.shape = llama_preset("tiny");
    o.shape.n_layer = 2;
    o.shape.n_ctx = n_ctx;
    make_model(o, path);
    return path;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

int run_command(const std::string& cmd, std::string* output) {
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return -1;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0)
        if (output) output->append(buf.data(), n);
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

long long mapped_resident_bytes(const std::string& path) {
    FILE* f = std::fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char* real = realpath(path.c_str(), nullptr);
    const std::string file = real ? real : path;
    std::free(real);
    long long total = 0;
    bool in_file = false;
    char line[4096];
    while (std::fgets(line, sizeof line, f)) {
        unsigned long long kb = 0;
        if (std::sscanf(line, "Rss: %llu kB", &kb) == 1) {
            if (in_file) total += (long long)kb * 1024;
        } else if (std::strchr(line, '-') && std::strchr(line, '-') < std::strchr(line, ' ')) {
            std::string l(line);  // a mapping's header: "start-end perms offset dev inode   path"
            while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.pop_back();
            in_file = l.size() >= file.size() && l.compare(l.size() - file.size(), file.size(), file) == 0;
        }
    }
    std::fclose(f);
    return total;
}

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    TESSERA_CHECK(in.good(), "cannot open %s", path.c_str());
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<float> random_floats(size_t n, uint64_t seed, float lo, float hi) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

Tensor* HostArena::make(Context& ctx, DType type, std::initializer_list<int64_t> ne, const std::string& name) {
    Tensor* t = ctx.new_tensor(type, ne, name);
    give_storage(t);
    return t;
}

void HostArena::give_storage(Tensor* t, size_t bytes) {
    buffers_.push_back(std::make_unique<HostBuffer>(bytes ? bytes : std::max<size_t>(t->nbytes(), 1)));
    t->buffer = buffers_.back().get();
    t->data = buffers_.back()->base();
}

void HostArena::fill(Tensor* t, const std::vector<float>& values) {
    TESSERA_CHECK(t->is_contiguous() && int64_t(values.size()) == t->nelements(), "fill: '%s' needs %lld values",
                  t->name.c_str(), (long long)t->nelements());
    const TypeTraits& tr = type_traits(t->type);
    TESSERA_CHECK(tr.from_float != nullptr, "fill: no conversion to %s", tr.name);
    for (int64_t r = 0; r < t->nrows(); ++r)
        tr.from_float(values.data() + r * t->ne[0], static_cast<char*>(t->data) + r * t->nb[1], t->ne[0]);
}

void HostArena::fill_random(Tensor* t, uint64_t seed, float lo, float hi) {
    fill(t, random_floats(size_t(t->nelements()), seed, lo, hi));
}

void HostArena::fill_i32(Tensor* t, const std::vector<int32_t>& values) {
    TESSERA_CHECK(t->type == DType::I32 && t->is_contiguous() && int64_t(values.size()) == t->nelements(),
                  "fill_i32: '%s' needs %lld i32 values", t->name.c_str(), (long long)t->nelements());
    std::memcpy(t->data, values.data(), values.size() * 4);
}

std::vector<float> to_floats(const Tensor& t) {
    const TypeTraits& tr = type_traits(t.type);
    std::vector<float> out;
    out.reserve(size_t(t.nelements()));
    std::vector<float> row(size_t(t.ne[0]));
    for (int64_t i3 = 0; i3 < t.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < t.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < t.ne[1]; ++i1) {
                if (t.type == DType::I32) {
                    for (int64_t i0 = 0; i0 < t.ne[0]; ++i0)
                        out.push_back(float(*reinterpret_cast<const int32_t*>(t.at(i0, i1, i2, i3))));
                } else if (tr.quantized) {
                    tr.to_float(t.at(0, i1, i2, i3), row.data(), t.ne[0]);
                    out.insert(out.end(), row.begin(), row.end());
                } else {
                    for (int64_t i0 = 0; i0 < t.ne[0]; ++i0) {
                        float v;
                        tr.to_float(t.at(i0, i1, i2, i3), &v, 1);
                        out.push_back(v);
                    }
                }
            }
    return out;
}

std::vector<int32_t> to_i32(const Tensor& t) {
    TESSERA_CHECK(t.type == DType::I32, "to_i32: '%s' is %s", t.name.c_str(), type_name(t.type));
    std::vector<int32_t> out;
    for (int64_t i3 = 0; i3 < t.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < t.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < t.ne[1]; ++i1)
                for (int64_t i0 = 0; i0 < t.ne[0]; ++i0)
                    out.push_back(*reinterpret_cast<const int32_t*>(t.at(i0, i1, i2, i3)));
    return out;
}

double closeness(const std::vector<float>& got, const std::vector<float>& want, double atol, double rtol) {
    if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double g = got[i], w = want[i];
        if (std::isnan(g) || std::isnan(w)) {
            if (std::isnan(g) && std::isnan(w)) continue;
            return std::numeric_limits<double>::infinity();
        }
        if (std::isinf(g) || std::isinf(w)) {
            if (g == w) continue;
            return std::numeric_limits<double>::infinity();
        }
        worst = std::max(worst, std::fabs(g - w) / (atol + rtol * std::fabs(w)));
    }
    return worst;
}

double rel_rms(const std::vector<float>& got, const std::vector<float>& want) {
    if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double d = double(got[i]) - want[i];
        num += d * d;
        den += double(want[i]) * want[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace tessera::testing
