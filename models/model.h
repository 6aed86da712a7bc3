// A model: a GGUF file, its hyper-parameters, its weights bound as leaf
// tensors that point into the file mapping, and the Architecture that knows
// how to turn a batch of tokens into a graph.
//
// ---- Adding an architecture (those there are: the table in models/architectures.cpp) ----
// 1. Write models/<arch>.{h,cpp} with a class deriving from Architecture:
//    - load(): read hyper-parameters with read_decoder_hparams / read_rope_params
//      (models/decoder_hparams.h: keys "<arch>.*", llama.cpp's names and defaults) and
//      HParamReader for the family's own keys, then bind every weight with
//      TensorBinder::require / optional, giving each dim as a Dim naming the
//      hyper-parameter it must equal. Shape and missing-tensor errors then come out
//      in the project's format without any extra code. Weights computed at load from
//      others (DeepSeek's k_b / v_b) come from TensorBinder::derive, so the Model owns
//      them, counts them and uploads them with the rest.
//      A Llama-shaped family is a LlamaTraits entry instead (models/llama_families.cpp).
//    - cache_layout(): one LayerCache per layer saying what the KV cache stores:
//      kind Full (a slot per position up to n_ctx), Window (set `ring` to keep only
//      window + n_batch - 1 slots, slot = position % ring; without it a Window layer
//      gets a full-size cache: visibility is decided by k_pos either way), or Latent
//      (MLA: one row of k_width per token, V read from the same row, v_width = 0).
//    - build(): the forward pass for one batch, written top to bottom with core/ops.h,
//      reading and writing the cache only through BatchGraph (store_kv, cache_k,
//      cache_v, and cache_positions(layer) as the attention's k_pos), and returning the
//      logits node (F32 [n_vocab, n_out]). models/llama.cpp is the example to copy.
// 2. Add one line to the table in models/architectures.cpp. (The table is explicit
//    because self-registering statics in a static library are dropped by the linker
//    when nothing references their object file.)
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/gguf.h"
#include "core/ops.h"
#include "models/batch_graph.h"
#include "models/cache_layout.h"

namespace tessera {

// Hyper-parameters every decoder-only architecture has. Architecture-specific
// extras live in the Architecture subclass.
struct HParams {
    std::string arch;          // general.architecture
    int64_t n_vocab = 0;
    int64_t n_ctx_train = 0;   // <arch>.context_length
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim_k = 0;    // <arch>.attention.key_length, default n_embd / n_head
    int64_t head_dim_v = 0;    // <arch>.attention.value_length, default n_embd / n_head
    int64_t n_ff = 0;
    int64_t n_expert = 0;       // routed experts per MoE layer (0: dense); decode reads n_expert_used of them
    int64_t n_expert_used = 0;
    float norm_eps = 1e-5f;
    int32_t bos = -1, eos = -1;  // tokenizer.ggml.{bos,eos}_token_id, -1 when absent
};

// Reads "<arch>.<name>" keys with llama.cpp's defaults; errors name the file and key.
class HParamReader {
public:
    HParamReader(const GGUFFile& file, std::string arch) : file_(file), arch_(std::move(arch)) {}
    std::string key(const std::string& name) const { return arch_ + "." + name; }
    int64_t require_int(const std::string& name) const;  // must be present and > 0
    int64_t get_int(const std::string& name, int64_t fallback) const;
    float get_float(const std::string& name, float fallback) const;
    std::string get_str(const std::string& name, const std::string& fallback) const;
    bool has(const std::string& name) const { return file_.has(key(name)); }
    const GGUFFile& file() const { return file_; }

private:
    const GGUFFile& file_;
    std::string arch_;
};

// One expected dimension of a weight: its value and what it is, for the error message
// ("n_embd", "n_head * head_dim", ...).
struct Dim {
    int64_t value;
    const char* what;
};

// Binds weight names to leaf tensors pointing into the file mapping.
class Model;
class TensorBinder {
public:
    explicit TensorBinder(Model& model) : model_(model) {}
    // The tensor must exist with exactly these dims (ne[0] first); else an Error naming it.
    Tensor* require(const std::string& name, std::initializer_list<Dim> dims);
    // Null when absent; a present tensor must still have the given dims.
    Tensor* optional(const std::string& name, std::initializer_list<Dim> dims);
    // A tensor read only while loading, to derive others from (DeepSeek's attn_kv_b): it is neither
    // uploaded to a device nor counted in the bytes a decoded token reads.
    Tensor* load_only(const std::string& name, std::initializer_list<Dim> dims);
    // A new weight of this type and shape in host memory the Model owns, for the architecture to fill at
    // load; from then on it is a weight like any bound one (uploaded with the rest, counted in decode bytes).
    Tensor* derive(const std::string& name, DType type, std::initializer_list<int64_t> ne);
    bool has(const std::string& name) const;

private:
    Tensor* bind(const GGUFFile::TensorInfo& info, std::initializer_list<Dim> dims, bool runtime = true);
    Model& model_;
};

class Architecture {
public:
    virtual ~Architecture() = default;
    virtual const char* name() const = 0;
    // Reads hyper-parameters into hp and binds the weights. Throws Error naming key or tensor.
    virtual void load(const GGUFFile& file, HParams& hp, TensorBinder& bind) = 0;
    virtual std::vector<LayerCache> cache_layout(const HParams& hp) const = 0;
    // The forward pass; returns the logits node F32 [n_vocab, n_tokens or 1].
    virtual Tensor* build(BatchGraph& b) const = 0;
};

// The registry (models/architectures.cpp): null when unknown.
std::unique_ptr<Architecture> make_architecture(const std::string& name);
std::vector<std::string> architecture_names();

struct ModelOptions {
    // Where the weights live. Host backends (cpu, reference) read the file mapping in place; a device
    // backend (cuda) gets every weight uploaded once, at open. Sessions must use the same kind of backend.
    std::string backend = "cpu";
    // Called during the upload to a device with the bytes done and the total (not for host backends).
    std::function<void(size_t done, size_t total)> progress;
    // With a device backend: how many layers (from the first) have their weights uploaded; -1 = all, and
    // then the embedding and output weights too. The other layers compute on the CPU (backend "cuda+cpu"),
    // so a model larger than the GPU still runs.
    int gpu_layers = -1;
};

class Model {
public:
    // Opens, validates and binds. Errors name the file and the key or tensor.
    static std::unique_ptr<Model> open(const std::string& path, const ModelOptions& options = {});
    // Same from an already opened file (tests build files in memory).
    static std::unique_ptr<Model> from_file(std::unique_ptr<GGUFFile> file, const ModelOptions& options = {});

    const GGUFFile& file() const { return *file_; }
    const HParams& hparams() const { return hp_; }
    const Architecture& arch() const { return *arch_; }
    // Total bytes of all weights in the file.
    size_t weight_bytes() const { return weight_bytes_; }
    // Bytes of weights one decoded token reads (for bandwidth figures), from the bound weights: each once,
    // one row of token_embd unless it is also the output (no output.weight), and of each routed expert
    // tensor (name "*_exps.*") the n_expert_used / n_expert share a token selects.
    size_t decode_weight_bytes() const { return decode_bytes_; }
    const std::string& path() const { return file_->path(); }
    // The backend the weights were placed for ("cpu" for any host backend's mapping, or e.g. "cuda").
    const std::string& weights_backend() const { return weights_backend_; }
    bool weights_on_host() const { return !on_device_; }
    // Opened for a device with only some layers uploaded (ModelOptions::gpu_layers): sessions run split.
    bool weights_split() const { return split_; }
    int64_t gpu_layers() const { return gpu_layers_; }
    // Bytes of weights repacked or copied at load into the cpu backend's own memory (the amx level's tiles,
    // the avx2 / avx512 levels' interleaved rows and float weights on huge pages), which replace those
    // weights' pages of the file in memory; 0 when none were.
    size_t repacked_weight_bytes() const { return repacked_bytes_; }
    // Bytes of the mapped file those repacked weights took, released from this process's memory (whole pages;
    // the few bytes at a tensor's ends that share a page with other data stay).
    size_t released_mapped_bytes() const { return released_bytes_; }

private:
    void upload_weights(const ModelOptions& options);
    void repack_weights(Backend& backend);
    size_t count_decode_bytes() const;

    friend class TensorBinder;
    Model() = default;
    std::unique_ptr<GGUFFile> file_;
    HParams hp_;
    std::unique_ptr<Architecture> arch_;
    Context weights_;                       // the bound leaf tensors
    std::unique_ptr<HostBuffer> mapping_;   // borrowed: the file's bytes, not freed here
    std::vector<Tensor*> bound_;            // every weight the forward pass reads (bound or derived), in order
    std::vector<std::unique_ptr<HostBuffer>> derived_;  // storage of derived weights (host; uploaded like the rest)
    std::unique_ptr<Buffer> device_weights_;  // all weights on a device backend, else null
    std::unique_ptr<Buffer> repacked_;        // weights in the cpu kernels' own layout (kFlagRepacked), else null
    size_t repacked_bytes_ = 0;
    size_t released_bytes_ = 0;
    std::string weights_backend_ = "cpu";
    bool on_device_ = false, split_ = false;
    int64_t gpu_layers_ = 0;
    size_t weight_bytes_ = 0;
    size_t decode_bytes_ = 0;
};

// "[4096, 32]" for the first n dims.
std::string dims_str(const int64_t* ne, int n);

}  // namespace tessera
