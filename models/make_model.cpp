#include "models/make_model.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/gguf.h"
#include "core/types.h"
#include "models/make_model_presets_families.h"
#include "models/make_model_presets_gemma_deepseek.h"

namespace tessera {

namespace {

// llama.cpp's general.file_type values for the types we write.
int32_t file_type_id(const std::string& t) {
    if (t == "f32") return 0;
    if (t == "f16") return 1;
    if (t == "q4_0") return 2;
    if (t == "q8_0") return 7;
    if (t == "q4_k_m") return 15;
    if (t == "mxfp4_moe") return 38;
    throw Error("make-model: --type '" + t + "' is not one of f32, f16, q8_0, q4_0, q4_k_m, mxfp4_moe");
}

// Which type a matrix gets under each file type (llama.cpp's choices: the output matrix stays at
// Q6_K for 4-bit files; Q4_K_M gives some attn_v / ffn_down layers Q6_K), falling back to a type
// whose block fits the row when the row is not a multiple of the block.
DType matrix_type(const std::string& ftype, const std::string& name, int64_t row, int layer, int n_layer) {
    DType t;
    const bool is_output = name == "output.weight";
    if (ftype == "f32") t = DType::F32;
    else if (ftype == "f16") t = DType::F16;
    else if (ftype == "q8_0") t = DType::Q8_0;
    else if (ftype == "mxfp4_moe") t = name.find("_exps.") != std::string::npos ? DType::MXFP4 : DType::Q8_0;
    else if (ftype == "q4_0") t = is_output ? DType::Q6_K : DType::Q4_0;
    else {  // q4_k_m
        const bool more_bits = layer >= 0 && (layer < n_layer / 8 || layer >= 7 * n_layer / 8 ||
                                              (layer - n_layer / 8) % 3 == 2);
        const bool v_or_down = name.find("attn_v") != std::string::npos || name.find("ffn_down") != std::string::npos;
        t = is_output || (v_or_down && more_bits) ? DType::Q6_K : DType::Q4_K;
    }
    if (row % type_traits(t).block_size != 0) t = row % 32 == 0 ? DType::Q8_0 : DType::F16;
    if (row % type_traits(t).block_size != 0) t = DType::F16;
    return t;
}

// A small valid SentencePiece ("llama") vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then
// letters, "▁"-prefixed letters and letter pairs, enough to tokenize any text (bytes fall back).
void synthesize_vocab(GGUFWriter& w, int64_t n_vocab) {
    TESSERA_CHECK(n_vocab >= 259 + 64, "make-model: a synthesized vocabulary needs >= 323 tokens, not %lld",
                  (long long)n_vocab);
    std::vector<std::string> tokens{"<unk>", "<s>", "</s>"};
    std::vector<int32_t> types{2, 3, 3};
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        tokens.push_back(buf);
        types.push_back(6);
    }
    const std::string sp = "\xe2\x96\x81";  // "▁", SentencePiece's space
    std::vector<std::string> pieces{sp};
    const std::string letters = "etaoinshrdlucmfwypvbgkjqxz";
    for (char c : letters) pieces.push_back(sp + c);
    for (char c : letters) pieces.push_back(std::string(1, c));
    for (char c : std::string(".,!?'\"-:;()0123456789ETAOINSHRDLUCMFWYPVBGKJQXZ")) pieces.push_back(std::string(1, c));
    for (char a : letters)
        for (char b : letters) pieces.push_back(std::string(1, a) + b);
    for (char a : letters)
        for (char b : letters) pieces.push_back(sp + a + b);
    for (char a : letters)
        for (char b : letters)
            for (char c : letters) pieces.push_back(std::string(1, a) + b + c);
    for (char a : letters)
        for (char b : letters)
            for (char c : letters) pieces.push_back(sp + a + b + c);
    for (size_t i = 0; i < pieces.size() && int64_t(tokens.size()) < n_vocab; ++i) {
        tokens.push_back(pieces[i]);
        types.push_back(1);
    }
    // Past the ~37K distinct pieces, the real shapes' vocabularies (Qwen's 151936, gpt-oss's 201088) are
    // filled with unused reserved tokens, as those tokenizers' own reserved ranges are: the embedding and
    // output matrices get their real size (and a token its real bytes read) while text never maps to them.
    for (int64_t i = 0; int64_t(tokens.size()) < n_vocab; ++i) {
        tokens.push_back("<|reserved_" + std::to_string(i) + "|>");
        types.push_back(5);  // unused
    }
    std::vector<float> scores(tokens.size(), 0.0f);
    // Shorter pieces first and more likely: SentencePiece merges the highest score first.
    for (size_t i = 259; i < tokens.size(); ++i) scores[i] = -float(i - 259);
    w.set_str("tokenizer.ggml.model", "llama");
    w.set_arr_str("tokenizer.ggml.tokens", tokens);
    w.set_arr_f32("tokenizer.ggml.scores", scores);
    w.set_arr_i32("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    w.set_bool("tokenizer.ggml.add_eos_token", false);
}

// Copies every tokenizer.* key of a vocabulary file; returns its size.
int64_t copy_vocab(GGUFWriter& w, const GGUFFile& vocab) {
    const GGUFValue* toks = vocab.find("tokenizer.ggml.tokens");
    TESSERA_CHECK(toks && toks->type == GGUFType::ARRAY, "%s: no tokenizer.ggml.tokens array", vocab.path().c_str());
    for (const auto& k : vocab.keys())
        if (k.rfind("tokenizer.", 0) == 0) w.set(k, *vocab.find(k));
    return int64_t(toks->arr.size());
}

}  // namespace

int32_t make_model_file_type(const std::string& type) { return file_type_id(type); }
DType make_model_matrix_type(const std::string& type, const std::string& name, int64_t row, int layer, int n_layer) {
    return matrix_type(type, name, row, layer, n_layer);
}

std::vector<std::string> make_model_presets() {
    std::vector<std::string> names{"tiny", "tinyllama-1.1b", "llama3-8b-shape"};
    for (const auto& n : gemma_deepseek_presets()) names.push_back(n);  // gemma*, deepseek2
    for (const auto& n : family_presets()) names.push_back(n);          // qwen2, qwen3, qwen3moe, phi3, gpt-oss
    return names;
}

LlamaShape llama_preset(const std::string& name) {
    LlamaShape s;
    if (name == "tiny") {
        // TinyLlama's proportions (GQA, n_ff ~ 2.75 n_embd, untied output) at a size that generates
        // hundreds of tokens per second on 2 cores.
        s.n_vocab = 1024, s.n_ctx = 512, s.n_embd = 256, s.n_layer = 4, s.n_head = 8, s.n_head_kv = 2, s.n_ff = 768;
    } else if (name == "tinyllama-1.1b") {
        s.n_vocab = 32000, s.n_ctx = 2048, s.n_embd = 2048, s.n_layer = 22, s.n_head = 32, s.n_head_kv = 4,
        s.n_ff = 5632;
    } else if (name == "llama3-8b-shape") {
        s.n_vocab = 128256, s.n_ctx = 8192, s.n_embd = 4096, s.n_layer = 32, s.n_head = 32, s.n_head_kv = 8,
        s.n_ff = 14336, s.rope_base = 500000.0f;
    } else {
        throw Error("make-model: unknown preset '" + name + "' (tiny, tinyllama-1.1b, llama3-8b-shape)");
    }
    return s;
}

MadeModel make_model(const MakeModelOptions& o, const std::string& out_path) {
    if (is_gemma_deepseek(o.arch, o.preset)) return make_gemma_deepseek_model(o, out_path);
    if (is_family(o.arch, o.preset)) return make_family_model(o, out_path);
    TESSERA_CHECK(o.arch == "llama",
                  "make-model: architecture '%s' is not supported (llama, gemma, gemma2, gemma3, deepseek2, qwen2, "
                  "qwen3, qwen3moe, phi3, gpt-oss)",
                  o.arch.c_str());
    const int32_t ftype = file_type_id(o.type);
    LlamaShape s = o.has_shape ? o.shape : llama_preset(o.preset);
    TESSERA_CHECK(s.n_embd > 0 && s.n_layer > 0 && s.n_head > 0 && s.n_head_kv > 0 && s.n_ff > 0 &&
                      s.n_embd % s.n_head == 0 && s.n_head % s.n_head_kv == 0,
                  "make-model: inconsistent shape (n_embd %lld, heads %lld/%lld)", (long long)s.n_embd,
                  (long long)s.n_head, (long long)s.n_head_kv);
    const int64_t hd = s.n_embd / s.n_head;

    GGUFWriter w;
    w.set_str("general.architecture", "llama");
    w.set_str("general.name", "tessera random " + (o.has_shape ? std::string("custom") : o.preset));
    w.set_u32("general.file_type", uint32_t(ftype));
    if (ftype != 0 && ftype != 1) w.set_u32("general.quantization_version", 2);
    std::unique_ptr<GGUFFile> vocab;
    if (!o.vocab_path.empty()) vocab = GGUFFile::open(o.vocab_path);
    // Keys first in llama.cpp's order; the vocabulary size is known once the vocabulary is chosen.
    w.set_u32("llama.context_length", uint32_t(s.n_ctx));
    w.set_u32("llama.embedding_length", uint32_t(s.n_embd));
    w.set_u32("llama.block_count", uint32_t(s.n_layer));
    w.set_u32("llama.feed_forward_length", uint32_t(s.n_ff));
    w.set_u32("llama.rope.dimension_count", uint32_t(hd));
    w.set_u32("llama.attention.head_count", uint32_t(s.n_head));
    w.set_u32("llama.attention.head_count_kv", uint32_t(s.n_head_kv));
    w.set_f32("llama.attention.layer_norm_rms_epsilon", s.norm_eps);
    w.set_f32("llama.rope.freq_base", s.rope_base);
    int64_t n_vocab;
    if (vocab) {
        n_vocab = copy_vocab(w, *vocab);
        TESSERA_CHECK(s.n_vocab == 0 || o.has_shape == false || s.n_vocab == n_vocab,
                      "make-model: n_vocab %lld differs from the vocabulary's %lld", (long long)s.n_vocab,
                      (long long)n_vocab);
    } else {
        n_vocab = s.n_vocab > 0 ? s.n_vocab : 1024;
        synthesize_vocab(w, n_vocab);
    }
    w.set_u32("llama.vocab_size", uint32_t(n_vocab));

    // Weights: uniform with std 0.02 (a common init) so logits come out near unit scale; norms are 1.
    const float sd = 0.02f;
    int64_t n_params = 0;
    size_t file_bytes = 0;
    auto matrix = [&](const std::string& name, int64_t cols, int64_t rows, int layer) {
        file_bytes += add_random_tensor(w, name, matrix_type(o.type, name, cols, layer, int(s.n_layer)), {cols, rows},
                                        sd, o.seed);
        n_params += cols * rows;
    };
    auto norm = [&](const std::string& name) {
        file_bytes += add_filled_tensor(w, name, s.n_embd, 1.0f);
        n_params += s.n_embd;
    };
    matrix("token_embd.weight", s.n_embd, n_vocab, -1);
    for (int64_t il = 0; il < s.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        const int l = int(il);
        norm(p + "attn_norm.weight");
        matrix(p + "attn_q.weight", s.n_embd, s.n_head * hd, l);
        matrix(p + "attn_k.weight", s.n_embd, s.n_head_kv * hd, l);
        matrix(p + "attn_v.weight", s.n_embd, s.n_head_kv * hd, l);
        matrix(p + "attn_output.weight", s.n_head * hd, s.n_embd, l);
        norm(p + "ffn_norm.weight");
        matrix(p + "ffn_gate.weight", s.n_embd, s.n_ff, l);
        matrix(p + "ffn_down.weight", s.n_ff, s.n_embd, l);
        matrix(p + "ffn_up.weight", s.n_embd, s.n_ff, l);
    }
    norm("output_norm.weight");
    if (!s.tied_output) matrix("output.weight", s.n_embd, n_vocab, -1);

    w.write(out_path);

    MadeModel m;
    m.n_params = n_params;
    m.n_vocab = n_vocab;
    m.file_bytes = file_bytes;
    return m;
}

int64_t make_model_write_vocab(GGUFWriter& w, const std::string& vocab_path, int64_t n_vocab) {
    if (!vocab_path.empty()) return copy_vocab(w, *GGUFFile::open(vocab_path));
    if (n_vocab <= 0) n_vocab = 1024;
    synthesize_vocab(w, n_vocab);
    return n_vocab;
}

}  // namespace tessera
