#include "models/make_model_presets_gemma_deepseek.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/gguf.h"
#include "core/types.h"

namespace tessera {

namespace {

struct Preset {
    const char* name;
    GemmaDeepSeekShape (*make)();
};

GemmaDeepSeekShape gemma_base(const char* arch) {
    GemmaDeepSeekShape s;
    s.arch = arch;
    return s;
}

// ---- real shapes (published configs; vocabularies as the originals) ----
GemmaDeepSeekShape gemma_2b() {
    auto s = gemma_base("gemma");
    s.n_vocab = 256000, s.n_ctx = 8192, s.n_embd = 2048, s.n_layer = 18, s.n_head = 8, s.n_head_kv = 1,
    s.head_dim = 256, s.n_ff = 16384;
    return s;
}
GemmaDeepSeekShape gemma2_2b() {
    auto s = gemma_base("gemma2");
    s.n_vocab = 256000, s.n_ctx = 8192, s.n_embd = 2304, s.n_layer = 26, s.n_head = 8, s.n_head_kv = 4,
    s.head_dim = 256, s.n_ff = 9216, s.window = 4096, s.attn_softcap = 50, s.final_softcap = 30;
    return s;
}
GemmaDeepSeekShape gemma3_1b() {
    auto s = gemma_base("gemma3");
    s.n_vocab = 262144, s.n_ctx = 32768, s.n_embd = 1152, s.n_layer = 26, s.n_head = 4, s.n_head_kv = 1,
    s.head_dim = 256, s.n_ff = 6912, s.window = 512, s.rope_base = 1e6f;
    return s;
}
GemmaDeepSeekShape gemma3_4b() {
    auto s = gemma_base("gemma3");
    s.n_vocab = 262144, s.n_ctx = 131072, s.n_embd = 2560, s.n_layer = 34, s.n_head = 8, s.n_head_kv = 4,
    s.head_dim = 256, s.n_ff = 10240, s.window = 1024, s.rope_base = 1e6f, s.rope_linear = 8;
    return s;
}
GemmaDeepSeekShape deepseek_v2_lite() {
    auto s = gemma_base("deepseek2");
    s.n_vocab = 102400, s.n_ctx = 163840, s.n_embd = 2048, s.n_layer = 27, s.n_head = 16, s.n_head_kv = 16;
    s.n_ff = 10944, s.q_lora = 0, s.kv_lora = 512, s.rope_dim = 64, s.nope_dim = 128, s.v_dim = 128;
    s.n_expert = 64, s.n_expert_used = 6, s.n_expert_shared = 2, s.n_ff_exp = 1408, s.n_dense_lead = 1;
    s.gating = 1, s.weights_norm = false, s.weights_scale = 1.0f;
    s.yarn_factor = 40, s.yarn_orig_ctx = 4096, s.yarn_log_mul = 0.0707f;
    return s;
}
// DeepSeek-V3's attention geometry (128 heads, q_lora 1536, kv_lora 512, rope 64, nope 128, v 128) and
// routing (sigmoid + bias, 8 groups pick 4, normalized weights x 2.5, YaRN 40 from 4096), with a narrower
// residual stream, 4 layers (1 dense) and 32 experts so it fits a laptop.
GemmaDeepSeekShape deepseek_v3_small() {
    auto s = gemma_base("deepseek2");
    s.n_vocab = 1024, s.n_ctx = 4096, s.n_embd = 1024, s.n_layer = 4, s.n_head = 128, s.n_head_kv = 128;
    s.n_ff = 4096, s.q_lora = 1536, s.kv_lora = 512, s.rope_dim = 64, s.nope_dim = 128, s.v_dim = 128;
    s.n_expert = 32, s.n_expert_used = 8, s.n_expert_shared = 1, s.n_ff_exp = 512, s.n_dense_lead = 1;
    s.n_group = 8, s.n_group_used = 4;
    s.gating = 2, s.probs_bias = true, s.weights_norm = true, s.weights_scale = 2.5f;
    s.yarn_factor = 40, s.yarn_orig_ctx = 4096, s.yarn_log_mul = 0.1f;
    return s;
}

// ---- tiny shapes for tests and demos (same structure, small numbers) ----
GemmaDeepSeekShape gemma_tiny() {
    auto s = gemma_base("gemma");
    s.n_embd = 128, s.n_layer = 2, s.n_head = 4, s.n_head_kv = 1, s.head_dim = 64, s.n_ff = 256;
    return s;
}
GemmaDeepSeekShape gemma2_tiny() {
    auto s = gemma_base("gemma2");
    s.n_embd = 128, s.n_layer = 4, s.n_head = 4, s.n_head_kv = 2, s.head_dim = 32, s.n_ff = 256, s.window = 16;
    s.attn_softcap = 50, s.final_softcap = 30;
    return s;
}
GemmaDeepSeekShape gemma3_tiny() {
    auto s = gemma_base("gemma3");
    s.n_embd = 128, s.n_layer = 6, s.n_head = 4, s.n_head_kv = 2, s.head_dim = 32, s.n_ff = 256, s.window = 16;
    s.rope_base = 1e6f, s.rope_linear = 8;
    return s;
}
GemmaDeepSeekShape deepseek2_tiny() {  // V3 style
    auto s = gemma_base("deepseek2");
    s.n_embd = 128, s.n_layer = 3, s.n_head = 8, s.n_head_kv = 8, s.n_ff = 256;
    s.q_lora = 96, s.kv_lora = 64, s.rope_dim = 16, s.nope_dim = 32, s.v_dim = 32;
    s.n_expert = 16, s.n_expert_used = 4, s.n_expert_shared = 1, s.n_ff_exp = 64, s.n_dense_lead = 1;
    s.n_group = 4, s.n_group_used = 2;
    s.gating = 2, s.probs_bias = true, s.weights_norm = true, s.weights_scale = 2.5f;
    s.yarn_factor = 4, s.yarn_orig_ctx = 128, s.yarn_log_mul = 0.1f;
    return s;
}
GemmaDeepSeekShape deepseek2_lite_tiny() {  // V2-Lite style: direct q, softmax routing, older kv_b layout
    auto s = gemma_base("deepseek2");
    s.n_embd = 128, s.n_layer = 3, s.n_head = 4, s.n_head_kv = 4, s.n_ff = 256;
    s.q_lora = 0, s.kv_lora = 64, s.rope_dim = 16, s.nope_dim = 32, s.v_dim = 32;
    s.n_expert = 8, s.n_expert_used = 2, s.n_expert_shared = 2, s.n_ff_exp = 32, s.n_dense_lead = 1;
    s.gating = 1, s.kv_b_layout = true;
    return s;
}

const Preset kPresets[] = {
    {"gemma-2b", gemma_2b},           {"gemma2-2b", gemma2_2b},
    {"gemma3-1b", gemma3_1b},         {"gemma3-4b", gemma3_4b},
    {"deepseek-v2-lite", deepseek_v2_lite}, {"deepseek-v3-small", deepseek_v3_small},
    {"gemma-tiny", gemma_tiny},       {"gemma2-tiny", gemma2_tiny},
    {"gemma3-tiny", gemma3_tiny},     {"deepseek2-tiny", deepseek2_tiny},
    {"deepseek2-lite-tiny", deepseek2_lite_tiny},
};

bool our_arch(const std::string& a) { return a == "gemma" || a == "gemma2" || a == "gemma3" || a == "deepseek2"; }

// The type a matrix row of `row` elements gets for the file type, falling back when blocks do not fit.
DType matrix_type(const std::string& ftype, int64_t row, bool is_output) {
    DType t;
    if (ftype == "f32") t = DType::F32;
    else if (ftype == "f16") t = DType::F16;
    else if (ftype == "q8_0") t = DType::Q8_0;
    else if (ftype == "q4_0") t = is_output ? DType::Q6_K : DType::Q4_0;
    else if (ftype == "q4_k_m") t = is_output ? DType::Q6_K : DType::Q4_K;
    else throw Error("make-model: --type '" + ftype + "' is not one of f32, f16, q8_0, q4_0, q4_k_m");
    if (row % type_traits(t).block_size != 0) t = row % 32 == 0 ? DType::Q8_0 : DType::F16;
    return t;
}

void check_shape(const GemmaDeepSeekShape& s) {
    const bool ds = s.arch == "deepseek2";
    TESSERA_CHECK(our_arch(s.arch), "make-model: architecture '%s' is not gemma, gemma2, gemma3 or deepseek2",
                  s.arch.c_str());
    TESSERA_CHECK(s.n_embd > 0 && s.n_layer > 0 && s.n_head > 0 && s.n_ff > 0, "make-model: %s: incomplete shape",
                  s.arch.c_str());
    if (!ds)
        TESSERA_CHECK(s.head_dim > 0 && s.n_head_kv > 0 && s.n_head % s.n_head_kv == 0,
                      "make-model: %s: heads %lld/%lld, head dim %lld", s.arch.c_str(), (long long)s.n_head,
                      (long long)s.n_head_kv, (long long)s.head_dim);
    else
        TESSERA_CHECK(s.kv_lora > 0 && s.rope_dim > 0 && s.nope_dim > 0 && s.v_dim > 0 && s.n_expert >= s.n_expert_used &&
                          s.n_expert_used > 0 && s.n_dense_lead <= s.n_layer,
                      "make-model: deepseek2: inconsistent MLA / MoE shape");
}

}  // namespace

std::vector<std::string> gemma_deepseek_presets() {
    std::vector<std::string> names;
    for (const Preset& p : kPresets) names.push_back(p.name);
    return names;
}

bool is_gemma_deepseek(const std::string& arch, const std::string& preset) {
    if (our_arch(arch)) return true;
    for (const Preset& p : kPresets)
        if (preset == p.name) return true;
    return false;
}

GemmaDeepSeekShape gemma_deepseek_preset(const std::string& arch, const std::string& preset) {
    std::string name = preset;
    if ((preset == "tiny" || preset.empty()) && our_arch(arch)) name = arch + "-tiny";
    for (const Preset& p : kPresets)
        if (name == p.name) {
            GemmaDeepSeekShape s = p.make();
            TESSERA_CHECK(!our_arch(arch) || arch == s.arch, "make-model: preset '%s' is a %s model, not %s",
                          name.c_str(), s.arch.c_str(), arch.c_str());
            return s;
        }
    std::string known;  // the presets of the architecture asked for (all of ours when it is not one of ours)
    for (const Preset& p : kPresets)
        if (!our_arch(arch) || p.make().arch == arch) known += (known.empty() ? "" : ", ") + std::string(p.name);
    throw Error("make-model: unknown preset '" + preset + "' for " + arch + " (" + known + ")");
}

MadeModel make_gemma_deepseek_model(const MakeModelOptions& o, const std::string& out_path) {
    return make_gemma_deepseek_model(gemma_deepseek_preset(o.arch, o.preset), o, out_path);
}

MadeModel make_gemma_deepseek_model(const GemmaDeepSeekShape& s, const MakeModelOptions& o,
                                    const std::string& out_path) {
    check_shape(s);
    const std::string& A = s.arch;
    const bool ds = A == "deepseek2";
    auto key = [&](const char* k) { return A + "." + k; };
    int32_t ftype = 0;
    if (o.type == "f16") ftype = 1;
    else if (o.type == "q4_0") ftype = 2;
    else if (o.type == "q8_0") ftype = 7;
    else if (o.type == "q4_k_m") ftype = 15;

    GGUFWriter w;
    w.set_str("general.architecture", A);
    w.set_str("general.name", "tessera random " + o.preset);
    w.set_u32("general.file_type", uint32_t(ftype));
    if (ftype != 0 && ftype != 1) w.set_u32("general.quantization_version", 2);
    w.set_u32(key("context_length"), uint32_t(s.n_ctx));
    w.set_u32(key("embedding_length"), uint32_t(s.n_embd));
    w.set_u32(key("block_count"), uint32_t(s.n_layer));
    w.set_u32(key("feed_forward_length"), uint32_t(s.n_ff));
    w.set_u32(key("attention.head_count"), uint32_t(s.n_head));
    w.set_u32(key("attention.head_count_kv"), uint32_t(ds ? (s.kv_b_layout ? s.n_head : 1) : s.n_head_kv));
    w.set_f32(key("attention.layer_norm_rms_epsilon"), s.norm_eps);
    w.set_f32(key("rope.freq_base"), s.rope_base);
    if (!ds) {
        w.set_u32(key("attention.key_length"), uint32_t(s.head_dim));
        w.set_u32(key("attention.value_length"), uint32_t(s.head_dim));
        if (s.window > 0) w.set_u32(key("attention.sliding_window"), uint32_t(s.window));
        if (s.attn_softcap > 0) w.set_f32(key("attn_logit_softcapping"), s.attn_softcap);
        if (s.final_softcap > 0) w.set_f32(key("final_logit_softcapping"), s.final_softcap);
        if (s.rope_linear > 0) {
            w.set_str(key("rope.scaling.type"), "linear");
            w.set_f32(key("rope.scaling.factor"), s.rope_linear);
        }
    } else {
        if (s.kv_b_layout) {
            w.set_u32(key("attention.key_length"), uint32_t(s.nope_dim + s.rope_dim));
            w.set_u32(key("attention.value_length"), uint32_t(s.v_dim));
        } else {
            // Newer files: key/value_length describe the absorbed MQA view, *_mla the per-head sizes.
            w.set_u32(key("attention.key_length"), uint32_t(s.kv_lora + s.rope_dim));
            w.set_u32(key("attention.value_length"), uint32_t(s.kv_lora));
            w.set_u32(key("attention.key_length_mla"), uint32_t(s.nope_dim + s.rope_dim));
            w.set_u32(key("attention.value_length_mla"), uint32_t(s.v_dim));
        }
        w.set_u32(key("rope.dimension_count"), uint32_t(s.rope_dim));
        if (s.yarn_factor > 0) {
            w.set_str(key("rope.scaling.type"), "yarn");
            w.set_f32(key("rope.scaling.factor"), s.yarn_factor);
            w.set_u32(key("rope.scaling.original_context_length"), uint32_t(s.yarn_orig_ctx));
        }
        w.set_f32(key("rope.scaling.yarn_log_multiplier"), s.yarn_log_mul);
        w.set_u32(key("leading_dense_block_count"), uint32_t(s.n_dense_lead));
        if (s.q_lora > 0) w.set_u32(key("attention.q_lora_rank"), uint32_t(s.q_lora));
        w.set_u32(key("attention.kv_lora_rank"), uint32_t(s.kv_lora));
        w.set_u32(key("expert_feed_forward_length"), uint32_t(s.n_ff_exp));
        w.set_u32(key("expert_count"), uint32_t(s.n_expert));
        w.set_u32(key("expert_used_count"), uint32_t(s.n_expert_used));
        w.set_u32(key("expert_shared_count"), uint32_t(s.n_expert_shared));
        if (s.n_group > 1) {
            w.set_u32(key("expert_group_count"), uint32_t(s.n_group));
            w.set_u32(key("expert_group_used_count"), uint32_t(s.n_group_used));
        }
        w.set_f32(key("expert_weights_scale"), s.weights_scale);
        w.set_bool(key("expert_weights_norm"), s.weights_norm);
        w.set_u32(key("expert_gating_func"), uint32_t(s.gating));
    }
    // The synthesized vocabulary has at most ~36K distinct pieces: real-shape presets with larger
    // vocabularies get 32000 tokens unless --vocab gives a real tokenizer (e.g. the model's own file).
    const int64_t n_vocab = make_model_write_vocab(w, o.vocab_path, o.vocab_path.empty() ? std::min<int64_t>(s.n_vocab, 32000) : 0);
    w.set_u32(key("vocab_size"), uint32_t(n_vocab));

    // Weights: uniform with std 0.02; norms 1 (gemma's converter stores 1 + w, so 1 is w = 0).
    const float sd = 0.02f;
    int64_t n_params = 0;
    size_t file_bytes = 0;
    auto matrix = [&](const std::string& name, std::vector<int64_t> ne, bool is_output = false) {
        file_bytes += add_random_tensor(w, name, matrix_type(o.type, ne[0], is_output), ne, sd, o.seed);
        int64_t n = 1;
        for (int64_t d : ne) n *= d;
        n_params += n;
    };
    auto vec = [&](const std::string& name, int64_t n, float v) {
        file_bytes += add_filled_tensor(w, name, n, v);
        n_params += n;
    };
    matrix("token_embd.weight", {s.n_embd, n_vocab});
    for (int64_t il = 0; il < s.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        vec(p + "attn_norm.weight", s.n_embd, 1.0f);
        if (!ds) {
            matrix(p + "attn_q.weight", {s.n_embd, s.n_head * s.head_dim});
            matrix(p + "attn_k.weight", {s.n_embd, s.n_head_kv * s.head_dim});
            matrix(p + "attn_v.weight", {s.n_embd, s.n_head_kv * s.head_dim});
            if (A == "gemma3") {
                vec(p + "attn_q_norm.weight", s.head_dim, 1.0f);
                vec(p + "attn_k_norm.weight", s.head_dim, 1.0f);
            }
            matrix(p + "attn_output.weight", {s.n_head * s.head_dim, s.n_embd});
            if (A != "gemma") vec(p + "post_attention_norm.weight", s.n_embd, 1.0f);
            vec(p + "ffn_norm.weight", s.n_embd, 1.0f);
            matrix(p + "ffn_gate.weight", {s.n_embd, s.n_ff});
            matrix(p + "ffn_up.weight", {s.n_embd, s.n_ff});
            matrix(p + "ffn_down.weight", {s.n_ff, s.n_embd});
            if (A != "gemma") vec(p + "post_ffw_norm.weight", s.n_embd, 1.0f);
            continue;
        }
        const int64_t d_k = s.nope_dim + s.rope_dim;
        if (s.q_lora > 0) {
            matrix(p + "attn_q_a.weight", {s.n_embd, s.q_lora});
            vec(p + "attn_q_a_norm.weight", s.q_lora, 1.0f);
            matrix(p + "attn_q_b.weight", {s.q_lora, s.n_head * d_k});
        } else {
            matrix(p + "attn_q.weight", {s.n_embd, s.n_head * d_k});
        }
        matrix(p + "attn_kv_a_mqa.weight", {s.n_embd, s.kv_lora + s.rope_dim});
        vec(p + "attn_kv_a_norm.weight", s.kv_lora, 1.0f);
        if (s.kv_b_layout) {
            matrix(p + "attn_kv_b.weight", {s.kv_lora, s.n_head * (s.nope_dim + s.v_dim)});
        } else {
            matrix(p + "attn_k_b.weight", {s.nope_dim, s.kv_lora, s.n_head});
            matrix(p + "attn_v_b.weight", {s.kv_lora, s.v_dim, s.n_head});
        }
        matrix(p + "attn_output.weight", {s.n_head * s.v_dim, s.n_embd});
        vec(p + "ffn_norm.weight", s.n_embd, 1.0f);
        if (il < s.n_dense_lead) {
            matrix(p + "ffn_gate.weight", {s.n_embd, s.n_ff});
            matrix(p + "ffn_up.weight", {s.n_embd, s.n_ff});
            matrix(p + "ffn_down.weight", {s.n_ff, s.n_embd});
            continue;
        }
        // The router stays F32 as llama.cpp's converters keep small routing tensors precise.
        file_bytes += add_random_tensor(w, p + "ffn_gate_inp.weight", DType::F32, {s.n_embd, s.n_expert}, sd, o.seed);
        n_params += s.n_embd * s.n_expert;
        if (s.probs_bias) {
            file_bytes += add_random_tensor(w, p + "exp_probs_b.bias", DType::F32, {s.n_expert}, 0.01f, o.seed);
            n_params += s.n_expert;
        }
        matrix(p + "ffn_gate_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert});
        matrix(p + "ffn_up_exps.weight", {s.n_embd, s.n_ff_exp, s.n_expert});
        matrix(p + "ffn_down_exps.weight", {s.n_ff_exp, s.n_embd, s.n_expert});
        if (s.n_expert_shared > 0) {
            const int64_t ff_sh = s.n_ff_exp * s.n_expert_shared;
            matrix(p + "ffn_gate_shexp.weight", {s.n_embd, ff_sh});
            matrix(p + "ffn_up_shexp.weight", {s.n_embd, ff_sh});
            matrix(p + "ffn_down_shexp.weight", {ff_sh, s.n_embd});
        }
    }
    vec("output_norm.weight", s.n_embd, 1.0f);
    if (ds) matrix("output.weight", {s.n_embd, n_vocab}, true);  // gemma ties its output to token_embd

    w.write(out_path);

    MadeModel m;
    m.n_params = n_params;
    m.n_vocab = n_vocab;
    m.file_bytes = file_bytes;
    return m;
}

}  // namespace tessera
