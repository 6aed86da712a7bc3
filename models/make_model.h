// Random-weight GGUF files in llama.cpp's exact layout (keys, tensor names and
// shapes, a real vocabulary section), for demos, benchmarks and tests.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"

namespace tessera {

class GGUFWriter;

struct LlamaShape {
    int64_t n_vocab = 0;  // 0 = the vocabulary's size
    int64_t n_ctx = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0;
    float rope_base = 10000.0f;
    float norm_eps = 1e-5f;
    bool tied_output = false;  // no output.weight: logits from token_embd
};

struct MakeModelOptions {
    std::string arch = "llama";
    std::string preset = "tiny";  // tiny, tinyllama-1.1b, llama3-8b-shape (see make_model_presets)
    std::string type = "f16";     // f32, f16, q8_0, q4_0, q4_k_m
    uint64_t seed = 1;
    std::string vocab_path;       // copy tokenizer.* from this GGUF; empty = synthesize an SPM vocabulary
    bool has_shape = false;       // use `shape` instead of the preset
    LlamaShape shape;
};

std::vector<std::string> make_model_presets();
LlamaShape llama_preset(const std::string& name);  // throws Error for an unknown name

struct MadeModel {
    int64_t n_params = 0;
    size_t file_bytes = 0;
    int64_t n_vocab = 0;
};
// Writes the file; throws Error naming the problem.
MadeModel make_model(const MakeModelOptions& options, const std::string& out_path);

// For other architectures' makers (models/make_model_presets_*.cpp): writes the tokenizer.* keys,
// copied from vocab_path when given, else a synthesized SPM vocabulary of n_vocab tokens (0: 1024).
// Returns the vocabulary's size.
int64_t make_model_write_vocab(GGUFWriter& w, const std::string& vocab_path, int64_t n_vocab);

// Tensors made while the file is written (GGUFWriter's Fill), so a model of any size is written with one
// tensor in memory at a time. Each returns the tensor's size in bytes.
// Uniform random values of standard deviation sd, converted row by row to `type`; Q4_K and Q6_K rows are
// made as random blocks of the same spread instead (their quantizers' scale search would take hours for a
// 30B model; see make_model_random.cpp). Each value depends only on (seed, tensor name, element index),
// so files do not depend on the thread count.
size_t add_random_tensor(GGUFWriter& w, const std::string& name, DType type, std::vector<int64_t> ne, float sd,
                         uint64_t seed);
// A 1-D f32 tensor holding n copies of value.
size_t add_filled_tensor(GGUFWriter& w, const std::string& name, int64_t n, float value);
// llama.cpp's general.file_type for --type (f32, f16, q8_0, q4_0, q4_k_m); throws Error for others.
int32_t make_model_file_type(const std::string& type);
// The type a matrix of that name gets in a file of --type `type` (llama.cpp's Q4_K_M mix: Q6_K output and
// some attn_v / ffn_down layers), falling back to a type whose block fits a row of `row` values.
DType make_model_matrix_type(const std::string& type, const std::string& name, int64_t row, int layer, int n_layer);

}  // namespace tessera
