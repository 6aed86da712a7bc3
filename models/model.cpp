#include "models/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace tessera {

std::string dims_str(const int64_t* ne, int n) {
    std::string s = "[";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

// ---- hyper-parameters ----

int64_t HParamReader::require_int(const std::string& name) const {
    const std::string k = key(name);
    TESSERA_CHECK_AS(File, file_.has(k), "%s: missing key '%s'", file_.path().c_str(), k.c_str());
    const int64_t v = file_.get<int64_t>(k);
    TESSERA_CHECK_AS(File, v > 0, "%s: key '%s' is %lld, must be > 0", file_.path().c_str(), k.c_str(), (long long)v);
    return v;
}

int64_t HParamReader::get_int(const std::string& name, int64_t fallback) const {
    const std::string k = key(name);
    return file_.has(k) ? file_.get<int64_t>(k) : fallback;
}

float HParamReader::get_float(const std::string& name, float fallback) const {
    const std::string k = key(name);
    if (!file_.has(k)) return fallback;
    const GGUFValue* v = file_.find(k);
    // Some converters write float-valued keys as integers; accept both.
    if (v->type == GGUFType::FLOAT32 || v->type == GGUFType::FLOAT64) return float(file_.get<double>(k));
    return float(file_.get<int64_t>(k));
}

std::string HParamReader::get_str(const std::string& name, const std::string& fallback) const {
    const std::string k = key(name);
    return file_.has(k) ? file_.get<std::string>(k) : fallback;
}

// ---- weights ----

bool TensorBinder::has(const std::string& name) const { return model_.file_->find_tensor(name) != nullptr; }

Tensor* TensorBinder::require(const std::string& name, std::initializer_list<Dim> dims) {
    const GGUFFile::TensorInfo* info = model_.file_->find_tensor(name);
    TESSERA_CHECK_AS(File, info != nullptr, "%s: missing tensor %s", model_.path().c_str(), name.c_str());
    return bind(*info, dims);
}

Tensor* TensorBinder::optional(const std::string& name, std::initializer_list<Dim> dims) {
    const GGUFFile::TensorInfo* info = model_.file_->find_tensor(name);
    return info ? bind(*info, dims) : nullptr;
}

Tensor* TensorBinder::load_only(const std::string& name, std::initializer_list<Dim> dims) {
    const GGUFFile::TensorInfo* info = model_.file_->find_tensor(name);
    TESSERA_CHECK(info != nullptr, "%s: missing tensor %s", model_.path().c_str(), name.c_str());
    return bind(*info, dims, /*runtime=*/false);
}

Tensor* TensorBinder::derive(const std::string& name, DType type, std::initializer_list<int64_t> ne) {
    Tensor* t = model_.weights_.new_tensor(type, ne, name);
    auto storage = std::make_unique<HostBuffer>(t->nbytes());
    t->flags |= kFlagWeight;
    t->buffer = storage.get();
    t->data = storage->base();
    model_.derived_.push_back(std::move(storage));
    model_.bound_.push_back(t);
    return t;
}

Tensor* TensorBinder::bind(const GGUFFile::TensorInfo& info, std::initializer_list<Dim> dims, bool runtime) {
    const std::string& path = model_.path();
    int i = 0;
    for (const Dim& d : dims) {
        if (info.ne[i] != d.value) {
            int shown = std::max<int>(info.n_dims, int(dims.size()));
            throw Error(format("%s: tensor %s: shape %s does not match %s %lld (dim %d is %lld)", path.c_str(),
                               info.name.c_str(), dims_str(info.ne, shown).c_str(), d.what, (long long)d.value, i,
                               (long long)info.ne[i]),
                        Status::File);
        }
        ++i;
    }
    for (; i < kMaxDims; ++i)
        TESSERA_CHECK_AS(File, info.ne[i] == 1, "%s: tensor %s: shape %s has more dims than the %zu expected", path.c_str(),
                      info.name.c_str(), dims_str(info.ne, info.n_dims).c_str(), dims.size());
    const TypeTraits& tt = type_traits(info.type);
    TESSERA_CHECK_AS(File, tt.to_float != nullptr, "%s: tensor %s has type %s, which is not a weight type", path.c_str(),
                  info.name.c_str(), tt.name);

    Tensor* t = model_.weights_.new_tensor(info.type, info.ne, info.name);
    t->flags |= kFlagWeight;
    t->buffer = model_.mapping_.get();
    t->data = const_cast<void*>(info.data);
    if (runtime) model_.bound_.push_back(t);
    return t;
}

// ---- the model ----

std::unique_ptr<Model> Model::open(const std::string& path, const ModelOptions& options) {
    return from_file(GGUFFile::open(path), options);
}

std::unique_ptr<Model> Model::from_file(std::unique_ptr<GGUFFile> file, const ModelOptions& options) {
    std::unique_ptr<Model> m(new Model());
    m->file_ = std::move(file);
    const GGUFFile& f = *m->file_;
    TESSERA_CHECK_AS(File, f.has("general.architecture"), "%s: missing key 'general.architecture'", f.path().c_str());
    // llama.cpp's vocab-only files (and tokenizer extracts) carry an architecture but no weights.
    TESSERA_CHECK_AS(File, !f.tensors().empty(),
                     "%s: the file has no weights (no tensors): a vocabulary-only file can tokenize "
                     "(tessera tokenize) but not run",
                     f.path().c_str());
    const std::string arch = f.get<std::string>("general.architecture");
    m->arch_ = make_architecture(arch);
    if (!m->arch_) {
        std::string known;
        for (const auto& n : architecture_names()) known += (known.empty() ? "" : ", ") + n;
        throw Error(format("%s: architecture '%s' is not supported (supported: %s)", f.path().c_str(), arch.c_str(),
                           known.c_str()),
                    Status::Unsupported);
    }
    m->mapping_ = std::make_unique<HostBuffer>(const_cast<void*>(f.file_data()), f.file_size());
    m->hp_.arch = arch;
    m->hp_.bos = int32_t(f.get_or<int64_t>("tokenizer.ggml.bos_token_id", -1));
    m->hp_.eos = int32_t(f.get_or<int64_t>("tokenizer.ggml.eos_token_id", -1));
    TensorBinder binder(*m);
    try {
        m->arch_->load(f, m->hp_, binder);
    } catch (const Error& e) {
        // load() reads only the file: a value it rejects is the file's (an unsupported feature stays so).
        if (e.status() != Status::InvalidArgument) throw;
        throw Error(e.what(), Status::File);
    }
    for (const auto& t : f.tensors()) m->weight_bytes_ += t.nbytes;
    m->decode_bytes_ = m->count_decode_bytes();
    m->upload_weights(options);
    return m;
}

size_t Model::count_decode_bytes() const {
    const bool tied = file_->find_tensor("output.weight") == nullptr;
    size_t bytes = 0;
    for (const Tensor* t : bound_) {
        if (t->name == "token_embd.weight" && !tied) {
            bytes += t->row_bytes();  // a lookup reads one row; as the output it is read whole
        } else if (t->name.find("_exps.") != std::string::npos && hp_.n_expert > 0) {
            bytes += t->nbytes() / size_t(hp_.n_expert) * size_t(hp_.n_expert_used);
        } else {
            bytes += t->nbytes();
        }
    }
    return bytes;
}

namespace {

// The layer a weight belongs to ("blk.12.attn_q.weight" -> 12), or -1 for the embedding, output and others.
int64_t layer_of(const std::string& name) {
    if (name.compare(0, 4, "blk.") != 0) return -1;
    int64_t n = 0;
    size_t i = 4;
    for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) n = n * 10 + (name[i] - '0');
    return i > 4 && i < name.size() && name[i] == '.' ? n : -1;
}

}  // namespace

// A weight read only as the first operand of mul_mat by every architecture: the projections of attention
// and the FFN, and the output matrix. (token_embd is also read by get_rows, expert stacks by mul_mat_id.)
static bool is_matmul_weight(const std::string& name) {
    static const char* const kSuffixes[] = {".attn_q.weight",   ".attn_k.weight",   ".attn_v.weight",
                                            ".attn_qkv.weight", ".attn_output.weight", ".ffn_gate.weight",
                                            ".ffn_up.weight",   ".ffn_down.weight"};
    if (name == "output.weight") return true;
    for (const char* s : kSuffixes) {
        const size_t n = std::strlen(s);
        if (name.size() > n && name.compare(name.size() - n, n, s) == 0) return true;
    }
    return false;
}

void Model::repack_weights(Backend& backend) {
    // Host backends read the mapping in place, unless their kernels keep some weights in a layout or memory
    // of their own (the cpu backend: AMX tiles, interleaved rows, float weights copied onto huge pages). Those
    // are repacked or copied once, here, and the pages they had in the mapping released, so the copy replaces
    // the file's bytes in memory rather than doubling them.
    std::vector<Tensor*> candidates;
    std::vector<std::pair<const char*, const char*>> mapped;  // each candidate's bytes in the mapping
    for (Tensor* t : bound_)
        if (t->buffer == mapping_.get() && is_matmul_weight(t->name)) {
            candidates.push_back(t);
            mapped.emplace_back(static_cast<const char*>(t->data), static_cast<const char*>(t->data) + t->nbytes());
        }
    if (candidates.empty()) return;
    // Each weight's pages go as soon as its copy is made (the whole pages inside it; those it shares with a
    // neighbour go in the pass below), so loading never holds the model twice: a 4 GB file needs 4 GB.
    repacked_ = backend.repack_weights(candidates, [this](const void* data, size_t bytes) {
        file_->release_pages(data, bytes);
    });
    if (!repacked_) return;
    repacked_bytes_ = repacked_->size();
    // Release the repacked tensors' pages, neighbours merged first (q, k and v usually lie back to back, less
    // than the alignment apart, so nothing lies between): only whole pages can go, and a page shared by two
    // repacked tensors is one of them.
    std::vector<std::pair<const char*, const char*>> gone;
    for (size_t i = 0; i < candidates.size(); ++i)
        if (candidates[i]->buffer != mapping_.get()) gone.push_back(mapped[i]);  // repacked, or copied as it is
    std::sort(gone.begin(), gone.end());
    // The small weights left in the mapping (norms, biases: 1-D) are copied out too. They sit between the
    // repacked matrices, and reading one would map its neighbours' released pages back: the kernel maps a
    // file's cached pages in blocks (up to 2 MiB here) around the page a read faults in.
    size_t small_bytes = 0;
    std::vector<Tensor*> small;
    for (Tensor* t : bound_)
        if (t->buffer == mapping_.get() && t->ne[1] == 1 && t->ne[2] == 1 &&
            t->ne[3] == 1) {
            small.push_back(t);
            small_bytes += (t->nbytes() + 63) / 64 * 64;
        }
    if (!small.empty()) {
        auto copy = std::make_unique<HostBuffer>(small_bytes);
        char* at = static_cast<char*>(copy->base());
        for (Tensor* t : small) {
            std::memcpy(at, t->data, t->nbytes());
            t->data = at;
            t->buffer = copy.get();
            at += (t->nbytes() + 63) / 64 * 64;
        }
        derived_.push_back(std::move(copy));
    }
    const size_t align = file_->alignment();
    for (size_t i = 0; i < gone.size();) {
        auto range = gone[i++];
        while (i < gone.size() && gone[i].first < range.second + align)
            range.second = std::max(range.second, gone[i++].second);
        released_bytes_ += file_->release_pages(range.first, size_t(range.second - range.first));
    }
}

void Model::upload_weights(const ModelOptions& options) {
    // Host backends read the mapping in place; only a device backend needs its own copy.
    std::unique_ptr<Backend> backend = create_backend(options.backend);
    if (backend->is_host()) {
        TESSERA_CHECK(options.gpu_layers < 0, "gpu layers: backend '%s' is not a GPU; leave the layer count unset",
                      options.backend.c_str());
        repack_weights(*backend);
        return;
    }
    on_device_ = true;
    weights_backend_ = options.backend;
    gpu_layers_ = options.gpu_layers < 0 ? hp_.n_layer : std::min<int64_t>(options.gpu_layers, hp_.n_layer);
    const bool all = gpu_layers_ == hp_.n_layer;
    auto uploaded = [&](const Tensor* t) {
        const int64_t layer = layer_of(t->name);
        return layer >= 0 ? layer < gpu_layers_ : all;
    };
    // Each weight starts 256-byte aligned, for wide device loads.
    auto aligned_bytes = [](const Tensor* t) { return (t->nbytes() + 255) / 256 * 256; };
    size_t total = 0, payload = 0;
    for (const Tensor* t : bound_) {
        if (!uploaded(t)) {
            split_ = true;
            continue;
        }
        total += aligned_bytes(t);
        payload += t->nbytes();
    }
    if (total == 0) return;
    try {
        device_weights_ = backend->alloc_buffer(total);
    } catch (const Error& e) {
        throw Error(format("%s: uploading the weights of %lld of %lld layers to '%s' (%.1f MiB): %s", path().c_str(),
                           (long long)gpu_layers_, (long long)hp_.n_layer, options.backend.c_str(),
                           double(total) / 1048576.0, e.what()),
                    e.status());
    }
    size_t offset = 0, done = 0;
    for (Tensor* t : bound_) {
        if (!uploaded(t)) continue;
        const void* host = t->data;
        t->buffer = device_weights_.get();
        t->data = static_cast<char*>(device_weights_->base()) + offset;
        backend->set_tensor(*t, host, 0, t->nbytes());
        offset += aligned_bytes(t);
        done += t->nbytes();
        if (options.progress) options.progress(done, payload);
    }
}

}  // namespace tessera
