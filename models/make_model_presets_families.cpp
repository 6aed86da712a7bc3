#include "models/make_model_presets_families.h"

#include <cstring>

#include "core/error.h"
#include "core/gguf.h"

namespace tessera {

namespace {

struct Preset {
    const char* name;
    FamilyShape (*make)();
};

FamilyShape base(const char* arch, int64_t embd, int64_t layers, int64_t heads, int64_t kv, int64_t hd, int64_t ff) {
    FamilyShape s;
    s.arch = arch;
    s.n_embd = embd, s.n_layer = layers, s.n_head = heads, s.n_head_kv = kv, s.head_dim = hd, s.n_ff = ff;
    return s;
}

const Preset kPresets[] = {
    {"qwen2-tiny", [] { auto s = base("qwen2", 256, 4, 8, 2, 32, 768); s.rope_base = 1e6f; return s; }},
    {"qwen2.5-0.5b",
     [] {
         auto s = base("qwen2", 896, 24, 14, 2, 64, 4864);
         s.n_vocab = 151936, s.n_ctx = 32768, s.rope_base = 1e6f, s.tied_output = true;
         return s;
     }},
    {"qwen3-tiny", [] { auto s = base("qwen3", 256, 4, 8, 2, 64, 768); s.rope_base = 1e6f; return s; }},
    {"qwen3-0.6b",
     [] {
         auto s = base("qwen3", 1024, 28, 16, 8, 128, 3072);
         s.n_vocab = 151936, s.n_ctx = 40960, s.rope_base = 1e6f, s.tied_output = true;
         return s;
     }},
    {"qwen3moe-tiny",
     [] {
         auto s = base("qwen3moe", 256, 4, 8, 2, 32, 768);
         s.rope_base = 1e6f, s.n_expert = 8, s.n_expert_used = 2, s.n_ff_exp = 128;
         return s;
     }},
    {"qwen3-30b-a3b-shape",
     [] {
         auto s = base("qwen3moe", 2048, 48, 32, 4, 128, 6144);
         s.n_vocab = 151936, s.n_ctx = 40960, s.rope_base = 1e6f, s.n_expert = 128, s.n_expert_used = 8,
         s.n_ff_exp = 768;
         return s;
     }},
    {"phi3-tiny", [] { auto s = base("phi3", 256, 4, 8, 8, 32, 768); s.norm_eps = 1e-5f, s.window = 2047; return s; }},
    {"phi3-mini",
     [] {
         auto s = base("phi3", 3072, 32, 32, 32, 96, 8192);
         s.n_vocab = 32064, s.n_ctx = 4096, s.norm_eps = 1e-5f, s.window = 2047;
         return s;
     }},
    {"gpt-oss-tiny",
     [] {
         auto s = base("gpt-oss", 128, 4, 8, 2, 32, 128);
         s.norm_eps = 1e-5f, s.rope_base = 150000.0f, s.n_expert = 8, s.n_expert_used = 2, s.n_ff_exp = 128;
         s.window = 8, s.yarn_factor = 32.0f, s.n_ctx = 4096;
         return s;
     }},
    {"gpt-oss-20b-shape",
     [] {
         auto s = base("gpt-oss", 2880, 24, 64, 8, 64, 2880);
         s.n_vocab = 201088, s.n_ctx = 131072, s.norm_eps = 1e-5f, s.rope_base = 150000.0f;
         s.n_expert = 32, s.n_expert_used = 4, s.n_ff_exp = 2880, s.window = 128, s.yarn_factor = 32.0f;
         return s;
     }},
};

bool our_arch(const std::string& a) {
    return a == "qwen2" || a == "qwen3" || a == "qwen3moe" || a == "phi3" || a == "gpt-oss";
}

}  // namespace

std::vector<std::string> family_presets() {
    std::vector<std::string> names;
    for (const Preset& p : kPresets) names.push_back(p.name);
    return names;
}

bool is_family(const std::string& arch, const std::string& preset) {
    if (our_arch(arch)) return true;
    for (const Preset& p : kPresets)
        if (preset == p.name) return true;
    return false;
}

FamilyShape family_preset(const std::string& arch, const std::string& preset) {
    const std::string name = (preset == "tiny" || preset.empty()) && our_arch(arch) ? arch + "-tiny" : preset;
    for (const Preset& p : kPresets)
        if (name == p.name) {
            FamilyShape s = p.make();
            TESSERA_CHECK(!our_arch(arch) || arch == s.arch, "make-model: preset '%s' is a %s model, not %s",
                          name.c_str(), s.arch.c_str(), arch.c_str());
            return s;
        }
    std::string known;
    for (const Preset& p : kPresets)  // that architecture's presets only
        if (!our_arch(arch) || p.make().arch == arch) known += (known.empty() ? "" : ", ") + std::string(p.name);
    throw Error("make-model: unknown preset '" + preset + "' for " + arch + " (" + known + ")");
}

MadeModel make_family_model(const MakeModelOptions& o, const std::string& out_path) {
    const FamilyShape s = family_preset(o.arch, o.preset);
    const std::string& A = s.arch;
    const bool moe = s.n_expert > 0, oss = A == "gpt-oss";
    auto key = [&](const char* k) { return A + "." + k; };
    const int32_t ftype = make_model_file_type(o.type);

    GGUFWriter w;
    w.set_str("general.architecture", A);
    // llama.cpp treats a general.name containing "phi3" / "phi-3" specially (it then wants Phi-3's special
    // tokens, which a synthesized vocabulary lacks, and fails to load with 'unordered_map::at'), so the name
    // avoids both spellings, in the preset's name too (phi3-mini).
    std::string name = "tessera random " + A + " " + o.preset;
    for (const char* spelling : {"phi3", "phi-3"})
        for (size_t at; (at = name.find(spelling)) != std::string::npos;) name.replace(at, std::strlen(spelling), "phi 3");
    w.set_str("general.name", name);
    w.set_u32("general.file_type", uint32_t(ftype));
    if (ftype != 0 && ftype != 1) w.set_u32("general.quantization_version", 2);
    w.set_u32(key("context_length"), uint32_t(s.n_ctx));
    w.set_u32(key("embedding_length"), uint32_t(s.n_embd));
    w.set_u32(key("block_count"), uint32_t(s.n_layer));
    w.set_u32(key("feed_forward_length"), uint32_t(s.n_ff));
    w.set_u32(key("attention.head_count"), uint32_t(s.n_head));
    w.set_u32(key("attention.head_count_kv"), uint32_t(s.n_head_kv));
    w.set_f32(key("attention.layer_norm_rms_epsilon"), s.norm_eps);
    w.set_f32(key("rope.freq_base"), s.rope_base);
    if (A != "qwen2" && A != "phi3") {
        w.set_u32(key("attention.key_length"), uint32_t(s.head_dim));
        w.set_u32(key("attention.value_length"), uint32_t(s.head_dim));
    }
    if (A == "phi3") w.set_u32(key("rope.dimension_count"), uint32_t(s.head_dim));
    if (s.window > 0) w.set_u32(key("attention.sliding_window"), uint32_t(s.window));
    if (moe) {
        w.set_u32(key("expert_count"), uint32_t(s.n_expert));
        w.set_u32(key("expert_used_count"), uint32_t(s.n_expert_used));
        w.set_u32(key("expert_feed_forward_length"), uint32_t(s.n_ff_exp));
    }
    if (s.yarn_factor > 0) {
        w.set_str(key("rope.scaling.type"), "yarn");
        w.set_f32(key("rope.scaling.factor"), s.yarn_factor);
        w.set_u32(key("rope.scaling.original_context_length"), uint32_t(s.yarn_orig_ctx));
    }
    // The preset's own vocabulary size (the synthesized vocabulary pads with reserved tokens), unless --vocab
    // gives a real tokenizer.
    const int64_t n_vocab = make_model_write_vocab(w, o.vocab_path, o.vocab_path.empty() ? s.n_vocab : 0);
    w.set_u32(key("vocab_size"), uint32_t(n_vocab));

    // Tensors are made while the file is written (one in memory at a time). Weights uniform with std 0.02,
    // biases 0.02, norms 1, sinks 0 (a sink of 0 takes a real share: exp(0) against scores near 0).
    const float sd = 0.02f;
    int64_t n_params = 0;
    size_t file_bytes = 0;
    auto count = [&](const std::vector<int64_t>& ne) {
        int64_t n = 1;
        for (int64_t d : ne) n *= d;
        n_params += n;
    };
    auto matrix = [&](const std::string& name, std::vector<int64_t> ne, int layer) {
        count(ne);
        const DType t = make_model_matrix_type(o.type, name, ne[0], layer, int(s.n_layer));
        file_bytes += add_random_tensor(w, name, t, ne, sd, o.seed);
    };
    auto f32 = [&](const std::string& name, std::vector<int64_t> ne, float value_sd) {
        count(ne);
        file_bytes += add_random_tensor(w, name, DType::F32, ne, value_sd, o.seed);
    };
    auto fill = [&](const std::string& name, int64_t n, float v) {
        count({n});
        file_bytes += add_filled_tensor(w, name, n, v);
    };

    const int64_t q_w = s.n_head * s.head_dim, kv_w = s.n_head_kv * s.head_dim;
    matrix("token_embd.weight", {s.n_embd, n_vocab}, -1);
    for (int64_t il = 0; il < s.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        const int l = int(il);
        fill(p + "attn_norm.weight", s.n_embd, 1.0f);
        if (A == "phi3") {
            matrix(p + "attn_qkv.weight", {s.n_embd, q_w + 2 * kv_w}, l);
        } else {
            matrix(p + "attn_q.weight", {s.n_embd, q_w}, l);
            matrix(p + "attn_k.weight", {s.n_embd, kv_w}, l);
            matrix(p + "attn_v.weight", {s.n_embd, kv_w}, l);
        }
        if (A == "qwen2" || oss) {
            f32(p + "attn_q.bias", {q_w}, sd);
            f32(p + "attn_k.bias", {kv_w}, sd);
            f32(p + "attn_v.bias", {kv_w}, sd);
        }
        if (A == "qwen3" || A == "qwen3moe") {
            fill(p + "attn_q_norm.weight", s.head_dim, 1.0f);
            fill(p + "attn_k_norm.weight", s.head_dim, 1.0f);
        }
        matrix(p + "attn_output.weight", {q_w, s.n_embd}, l);
        if (oss) {
            f32(p + "attn_output.bias", {s.n_embd}, sd);
            fill(p + "attn_sinks.weight", s.n_head, 0.0f);
            fill(p + "post_attention_norm.weight", s.n_embd, 1.0f);
        } else {
            fill(p + "ffn_norm.weight", s.n_embd, 1.0f);
        }
        if (moe) {
            // The router stays F32, as llama.cpp's converters keep small routing tensors precise.
            f32(p + "ffn_gate_inp.weight", {s.n_embd, s.n_expert}, sd);
            if (oss) f32(p + "ffn_gate_inp.bias", {s.n_expert}, sd);
            matrix(p + "ffn_gate_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert}, l);
            matrix(p + "ffn_up_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert}, l);
            matrix(p + "ffn_down_exps.weight", {s.n_ff_exp, s.n_embd, s.n_expert}, l);
            if (oss) {
                f32(p + "ffn_gate_exps.bias", {s.n_ff_exp, s.n_expert}, sd);
                f32(p + "ffn_up_exps.bias", {s.n_ff_exp, s.n_expert}, sd);
                f32(p + "ffn_down_exps.bias", {s.n_embd, s.n_expert}, sd);
            }
        } else if (A == "phi3") {
            matrix(p + "ffn_up.weight", {s.n_embd, 2 * s.n_ff}, l);
            matrix(p + "ffn_down.weight", {s.n_ff, s.n_embd}, l);
        } else {
            matrix(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, l);
            matrix(p + "ffn_up.weight", {s.n_embd, s.n_ff}, l);
            matrix(p + "ffn_down.weight", {s.n_ff, s.n_embd}, l);
        }
    }
    fill("output_norm.weight", s.n_embd, 1.0f);
    if (!s.tied_output) matrix("output.weight", {s.n_embd, n_vocab}, -1);
    w.write(out_path);

    MadeModel m;
    m.n_params = n_params;
    m.n_vocab = n_vocab;
    m.file_bytes = file_bytes;
    return m;
}

}  // namespace tessera
