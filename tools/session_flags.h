// Flags every model command shares (model path, context, threads, batch, cache type, backend),
// turned into the C API's session parameters, plus small helpers over the C API. Header-only:
// each command includes it and the tools stay on the public API.
#pragma once
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "tessera.h"
#include "tools/args.h"

namespace tessera::cli {

// Throws tessera's message when a C API call fails.
inline void check(tessera_status s, const char* what) {
    if (s != TESSERA_OK) throw std::runtime_error(std::string(what) + ": " + tessera_last_error());
}

struct SessionFlags {
    std::string model;
    int ctx = 0;
    int threads = 0;
    int batch = 512;
    std::string cache_type = "f16";
    std::string backend = "cpu";
    int gpu_layers = 0;  // 0 = all (the C API's default)

    void add_to(ArgParser& p, bool with_ctx = true) {
        p.option("-m,--model", &model, "FILE", "GGUF model file (required)");
        if (with_ctx)
            p.option("-c,--ctx,--ctx-size", &ctx, "N", "context size in tokens (default: the model's)", 0, 1 << 24);
        p.option("-t,--threads", &threads, "N", "threads (default: physical cores)", 0, 1024);
        p.option("-b,--batch,--batch-size", &batch, "N", "prefill chunk size (default 512)", 1, 1 << 20);
        p.option("--cache-type", &cache_type, "TYPE", "KV cache type: f16 (default), f32, q8_0");
        p.option("--device,--backend", &backend, "NAME",
                 "where to compute: cpu (default), cuda (weights are uploaded to the GPU), reference (scalar oracle)");
        p.option("-ngl,--gpu-layers,--n-gpu-layers", &gpu_layers, "N",
                 "with --device cuda: put only the first N layers on the GPU, the rest compute on the CPU "
                 "(default: all)",
                 1, 1 << 20);
    }

    // Opens the model for the chosen device, with a progress line while weights upload to a GPU.
    void open_model(tessera_model** out) const {
        tessera_model_params mp = tessera_model_default_params();
        mp.backend = backend.c_str();
        mp.progress = &upload_progress;
        mp.gpu_layers = gpu_layers;
        check(tessera_model_open(model.c_str(), &mp, out), "loading the model");
    }

    // "uploading weights: 42% (1.2 of 2.9 GiB)", redrawn in place on a terminal at each whole percent.
    static void upload_progress(uint64_t done, uint64_t total, void*) {
        static int last_percent = -1;
        const int percent = total ? int(done * 100 / total) : 100;
        if (percent == last_percent) return;
        last_percent = percent;
        const bool tty = isatty(2);
        if (!tty && percent != 100 && percent % 25 != 0) return;
        std::fprintf(stderr, "%suploading weights: %3d%% (%.2f of %.2f GiB)%s", tty ? "\r" : "", percent,
                     double(done) / (1u << 30), double(total) / (1u << 30), (!tty || percent == 100) ? "\n" : "");
        if (percent == 100) last_percent = -1;
    }

    // More threads than the hardware runs at once only wait on each other (OpenMP's spinning makes that
    // costly): a warning above the hardware's count, and a cap at twice it.
    static int sane_threads(int threads) {
        const int hw = int(std::thread::hardware_concurrency());
        if (threads <= 0 || hw <= 0 || threads <= hw) return threads;
        const int capped = std::min(threads, 2 * hw);
        std::fprintf(stderr, "warning: --threads %d is more than the %d hardware threads%s\n", threads, hw,
                     capped < threads ? ("; using " + std::to_string(capped)).c_str() : "");
        return capped;
    }

    // Warns when -c asks for more than the model was trained on (positions past it are untested ground).
    void warn_past_training(const tessera_model* m) const {
        const int train = tessera_model_n_ctx_train(m);
        if (ctx > 0 && train > 0 && ctx > train)
            std::fprintf(stderr, "warning: -c %d is more than the model's training context (%d)\n", ctx, train);
    }

    tessera_session_params params() const {
        tessera_session_params sp = tessera_session_default_params();
        sp.n_ctx = ctx;
        sp.n_threads = sane_threads(threads);
        sp.n_batch = batch;
        if (cache_type == "f16") sp.cache_type = TESSERA_CACHE_F16;
        else if (cache_type == "f32") sp.cache_type = TESSERA_CACHE_F32;
        else if (cache_type == "q8_0") sp.cache_type = TESSERA_CACHE_Q8_0;
        else throw UsageError("--cache-type: '" + cache_type + "' is not one of f16, f32, q8_0");
        sp.backend = backend.c_str();
        return sp;
    }
};

// Sampling flags shared by run and chat, turned into the C API's sampler parameters.
// Defaults are the C API's (tessera_sampler_default_params).
struct SamplerFlags {
    tessera_sampler_params p = tessera_sampler_default_params();

    void add_to(ArgParser& ap) {
        ap.option("--temp", &p.temperature, "T", "temperature; 0 = greedy (default 0.8)", 0.0, 100.0);
        ap.option("--top-k", &p.top_k, "K", "keep the K most likely tokens; 0 = off (default 40)", 0, 1 << 24);
        ap.option("--top-p", &p.top_p, "P", "nucleus sampling mass; 1 = off (default 0.95)", 1e-6, 1.0);
        ap.option("--min-p", &p.min_p, "P", "drop tokens below P x the top one; 0 = off (default 0.05)", 0.0, 0.999);
        ap.option("--repeat-penalty", &p.repeat_penalty, "X", "penalty on recent tokens; 1 = off (default)", 1e-3,
                  100.0);
        ap.option("--repeat-last-n", &p.penalty_last_n, "N", "tokens the penalties look back over (default 64)", 0,
                  1 << 24);
        ap.option("--frequency-penalty", &p.frequency_penalty, "X", "subtracted per occurrence (default 0)", -100.0,
                  100.0);
        ap.option("--presence-penalty", &p.presence_penalty, "X", "subtracted once if present (default 0)", -100.0,
                  100.0);
        ap.option("-s,--seed", &seed_text, "S", "sampling seed (default 0); -1 = a random one, printed");
    }

    // Resolves --seed after parsing: a number, or -1 for a random seed that is printed so a run can be repeated.
    void resolve_seed() {
        if (seed_text.empty()) return;
        if (seed_text == "-1") {
            p.seed = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
            std::fprintf(stderr, "seed: %llu\n", static_cast<unsigned long long>(p.seed));
            return;
        }
        char* end = nullptr;
        errno = 0;
        const unsigned long long v = std::strtoull(seed_text.c_str(), &end, 10);
        if (seed_text[0] == '-' || *end != '\0' || errno == ERANGE)
            throw UsageError("--seed: '" + seed_text + "' is not a non-negative integer or -1");
        p.seed = v;
    }

private:
    std::string seed_text;
};

// Owners that free C API handles on every path.
struct ModelHandle {
    tessera_model* m = nullptr;
    ~ModelHandle() { tessera_model_free(m); }
};
struct SessionHandle {
    tessera_session* s = nullptr;
    ~SessionHandle() { tessera_session_free(s); }
};
struct SamplerHandle {
    tessera_sampler* s = nullptr;
    ~SamplerHandle() { tessera_sampler_free(s); }
};
// Owners of the streaming helpers (stop strings, UTF-8 hold-back) of one generated text.
struct StopHandle {
    tessera_stop_matcher* s = nullptr;
    ~StopHandle() { tessera_stop_matcher_free(s); }
};
struct ChannelHandle {
    tessera_channel_filter* f = nullptr;
    ~ChannelHandle() { tessera_channel_filter_free(f); }
};
struct DetokHandle {
    tessera_detok_stream* d = nullptr;
    ~DetokHandle() { tessera_detok_stream_free(d); }
};

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Parses "1 2 3" or "1,2,3" into ids; throws UsageError naming the bad item.
inline std::vector<int32_t> parse_ids(const std::string& flag, const std::string& text) {
    std::vector<int32_t> ids;
    std::string item;
    auto flush = [&] {
        if (item.empty()) return;
        char* end = nullptr;
        const long v = std::strtol(item.c_str(), &end, 10);
        if (*end != '\0' || v < 0 || v > INT32_MAX) throw UsageError(flag + ": '" + item + "' is not a token id");
        ids.push_back(int32_t(v));
        item.clear();
    };
    for (char ch : text) {
        if (ch == ' ' || ch == ',' || ch == '\t' || ch == '\n') flush();
        else item += ch;
    }
    flush();
    return ids;
}

inline void print_cache_size(tessera_session* s) {
    // Split by layer kind: full layers, window-layer rings, MLA latent rows (see tessera.h).
    std::fprintf(stderr, "%s\n", tessera_session_cache_summary(s));
}

}  // namespace tessera::cli
