// `tessera make-model --arch llama --preset tiny -o FILE`: a random-weight GGUF file in
// llama.cpp's layout, for demos and benchmarks. Random weights generate gibberish.
#include <chrono>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/gguf.h"
#include "models/make_model.h"
#include "tools/args.h"
#include "tools/command.h"
#include "tools/temp_file_signals.h"

namespace tessera::cli {

namespace {

int make(int argc, char** argv) {
    MakeModelOptions o;
    std::string out;
    std::string presets;
    for (const auto& name : make_model_presets()) presets += (presets.empty() ? "" : ", ") + name;
    ArgParser p("make-model", "[--arch NAME] --preset NAME -o FILE [--type T] [--seed S] [--vocab FILE]",
                "Writes a random-weight model in llama.cpp's GGUF layout (keys, tensor names, vocabulary).\n"
                "Presets: " + presets + ".\nllama's tiny is n_embd 256, 4 layers, 8/2 heads.");
    p.option("--arch", &o.arch, "NAME", "architecture: llama (default), gemma, gemma2, gemma3, deepseek2, qwen2, qwen3, qwen3moe, phi3, gpt-oss");
    p.option("--preset", &o.preset, "NAME", "a preset of that architecture (default tiny; see above)");
    p.option("-o,--output", &out, "FILE", "output file (required)");
    p.option("--type", &o.type, "T", "weight type: f32, f16 (default), q8_0, q4_0, q4_k_m, mxfp4_moe (experts MXFP4, the rest Q8_0)");
    p.option("--seed", &o.seed, "S", "random seed (default 1)");
    p.option("--vocab", &o.vocab_path, "FILE", "copy the tokenizer from this GGUF (default: a small synthesized SPM vocab)");
    if (!p.parse(argc, argv)) return 0;
    if (out.empty()) throw UsageError("-o FILE is required");
    remove_temp_files_on_fatal_signals();
    const auto t0 = std::chrono::steady_clock::now();
    MadeModel m;
    try {
        m = make_model(o, out);
    } catch (const Error& e) {
        // The library's messages start with "make-model: "; run_guarded already says "tessera make-model:".
        const std::string what = e.what(), prefix = "make-model: ";
        throw Error(what.rfind(prefix, 0) == 0 ? what.substr(prefix.size()) : what);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The architecture as written (a gemma preset without --arch is a gemma file, whatever --arch's default).
    const std::string arch = GGUFFile::open(out)->get_or<std::string>("general.architecture", o.arch);
    std::fprintf(stderr, "wrote %s: %s %s, %s, %.1fM parameters, vocab %lld, %.1f MiB of weights in %.1f s\n",
                 out.c_str(), arch.c_str(), o.preset.c_str(), o.type.c_str(), double(m.n_params) / 1e6, (long long)m.n_vocab,
                 double(m.file_bytes) / (1024.0 * 1024.0), secs);
    return 0;
}

int cmd_make_model(int argc, char** argv) {
    return run_guarded("make-model", [&] { return make(argc, argv); });
}

RegisterCommand reg("make-model", "write a random-weight model in llama.cpp's layout (--preset, -o)", cmd_make_model);

}  // namespace

}  // namespace tessera::cli
