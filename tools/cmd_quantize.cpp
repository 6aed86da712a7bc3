// `tessera quantize IN OUT TYPE [--threads N] [--pure]`: converts a GGUF model's weights to a quantized
// type or llama.cpp mix (Q4_K_M, ...), the tensor types chosen by llama.cpp's rules (tools/quantize_mix.h),
// each row quantized with core's reference quantizers, which give llama.cpp's bytes. Metadata is copied
// in order; general.file_type and general.quantization_version are set. The output is written through
// GGUFWriter (temporary file renamed into place), so a failure never leaves a half-written OUT.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "tools/args.h"
#include "tools/command.h"
#include "tools/quantize_mix.h"
#include "tools/temp_file_signals.h"

namespace tessera::cli {

namespace {

std::string dir_of(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

int64_t get_int_or(const GGUFFile& f, const std::string& key, int64_t fallback) {
    const GGUFValue* v = f.find(key);
    if (!v) return fallback;
    switch (v->type) {
        case GGUFType::UINT8: case GGUFType::UINT16: case GGUFType::UINT32: case GGUFType::UINT64: return int64_t(v->u);
        case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64: return v->i;
        default: return fallback;  // e.g. a per-layer array: the rules then assume no GQA
    }
}

// A bar on stderr, redrawn in place when stderr is a terminal; otherwise silent until the summary.
class Progress {
public:
    explicit Progress(uint64_t total) : total_(std::max<uint64_t>(total, 1)), tty_(isatty(2) != 0) {}
    void update(uint64_t done, const std::string& what) {
        if (!tty_) return;
        const int width = 30, fill = int(double(done) / double(total_) * width);
        std::fprintf(stderr, "\r[%s%s] %3d%% %-48.48s", std::string(size_t(fill), '=').c_str(),
                     std::string(size_t(width - fill), ' ').c_str(), int(100.0 * double(done) / double(total_)),
                     what.c_str());
        std::fflush(stderr);
    }
    void finish() {
        if (tty_) std::fprintf(stderr, "\n");
    }

private:
    uint64_t total_;
    bool tty_;
};

// llama-quantize's tensor order (the loader's name map): tensors outside the blocks first, then block 0,
// block 1, ...; by name within each. Both the mix counters and the file layout follow it.
std::vector<const GGUFFile::TensorInfo*> llama_order(const GGUFFile& f) {
    auto layer_of = [](const std::string& name) {
        int layer = -1;
        if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) layer = -1;
        return layer;
    };
    std::vector<const GGUFFile::TensorInfo*> order;
    for (const auto& t : f.tensors()) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), [&](const auto* a, const auto* b) {
        const int la = layer_of(a->name), lb = layer_of(b->name);
        return la != lb ? la < lb : a->name < b->name;
    });
    return order;
}

// Converts one tensor (any type with a float conversion) to `to` into dst, chunks of rows spread over the pool.
void convert_tensor(const GGUFFile::TensorInfo& t, DType to, ThreadPool& pool, uint8_t* dst) {
    const int64_t ne0 = t.ne[0], rows = t.n_elements() / std::max<int64_t>(ne0, 1);
    const TypeTraits& src = type_traits(t.type);
    const TypeTraits& dt = type_traits(to);
    TESSERA_CHECK(src.to_float != nullptr, "tensor %s: type %s cannot be converted", t.name.c_str(), src.name);
    TESSERA_CHECK(dt.from_float != nullptr, "no quantizer for type %s", dt.name);
    const size_t in_row = row_bytes(t.type, ne0), out_row = row_bytes(to, ne0);
    const auto* in = static_cast<const uint8_t*>(t.data);
    // A few rows per chunk: enough chunks to balance the threads, each long enough that handing it out is free.
    constexpr int64_t kRowsPerChunk = 8;
    std::vector<std::vector<float>> row_buf(size_t(pool.size()));  // one float row per thread
    try {
        pool.run((rows + kRowsPerChunk - 1) / kRowsPerChunk, pool.size(), [&](int64_t chunk, int tid) {
            std::vector<float>& buf = row_buf[size_t(tid)];
            buf.resize(size_t(ne0));
            for (int64_t r = chunk * kRowsPerChunk; r < std::min(rows, (chunk + 1) * kRowsPerChunk); ++r) {
                src.to_float(in + size_t(r) * in_row, buf.data(), ne0);
                dt.from_float(buf.data(), dst + size_t(r) * out_row, ne0);
            }
        });
    } catch (const std::exception& e) {
        TESSERA_CHECK(false, "tensor %s: %s", t.name.c_str(), e.what());
    }
}

bool is_float_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

int quantize(int argc, char** argv) {
    std::string in_path, out_path, type_name_arg;
    int threads = 0;
    bool pure = false, allow_requantize = false;
    const std::string description =
        std::string("Quantizes a GGUF model (F32/F16/BF16 weights, or already-quantized ones, which are\n"
                    "dequantized first). TYPE: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K(=Q3_K_M) Q4_K(=Q4_K_M)\n"
                    "Q5_K(=Q5_K_M) Q6_K Q4_K_S Q4_K_M Q5_K_S Q5_K_M IQ4_NL IQ4_XS MXFP4_MOE. The bytes match\n"
                    "llama-quantize's for the same input (reference quantizers, no importance matrix).\n\n") +
        mix_rules_help();
    ArgParser p("quantize", "IN OUT TYPE [--threads N] [--pure] [--allow-requantize]", description);
    p.positional("IN", &in_path, "input GGUF file");
    p.positional("OUT", &out_path, "output GGUF file");
    p.positional("TYPE", &type_name_arg, "target type or mix, e.g. Q4_K_M");
    p.option("-t,--threads", &threads, "N", "threads (default: all cores)", 0, 1024);
    p.flag("--pure", &pure, "no mixing: every quantized tensor, the output too, gets the base type");
    p.flag("--allow-requantize", &allow_requantize,
           "convert tensors that are already quantized (dequantized first: the result is worse than from F16)");
    if (!p.parse(argc, argv)) return 0;

    QuantTarget target;
    try {
        target = parse_quant_target(type_name_arg);
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    if (threads <= 0) threads = physical_cores();
    remove_temp_files_on_fatal_signals();
    ThreadPool pool(threads);
    // Checked before any work: OUT must be a (new) regular file in a writable directory, and not IN itself,
    // which the rename at the end would replace while it is still being read.
    const std::string out_file = GGUFWriter::output_target(out_path);
    TESSERA_CHECK(access(dir_of(out_file).c_str(), W_OK) == 0, "%s: output directory %s is not writable",
                  out_path.c_str(), dir_of(out_file).c_str());
    struct stat in_st, out_st;
    TESSERA_CHECK(::stat(in_path.c_str(), &in_st) == 0, "%s: %s", in_path.c_str(), std::strerror(errno));
    TESSERA_CHECK(::stat(out_file.c_str(), &out_st) != 0 || in_st.st_dev != out_st.st_dev || in_st.st_ino != out_st.st_ino,
                  "%s is the input file %s; write the output to another file", out_path.c_str(), in_path.c_str());

    const auto t0 = std::chrono::steady_clock::now();
    auto in = GGUFFile::open(in_path);
    TESSERA_CHECK(!in->tensors().empty(), "%s has no tensors (a vocabulary-only file?): nothing to quantize",
                  in_path.c_str());

    MixContext ctx;
    ctx.pure = pure;
    const std::string arch = in->get_or<std::string>("general.architecture", "");
    ctx.n_head = int(get_int_or(*in, arch + ".attention.head_count", 0));
    ctx.n_head_kv = int(get_int_or(*in, arch + ".attention.head_count_kv", ctx.n_head));
    ctx.n_expert = int(get_int_or(*in, arch + ".expert_count", 0));
    uint64_t total_elems = 0;
    for (const auto& t : in->tensors()) {
        if (t.name.find("attn_v.weight") != std::string::npos) ++ctx.n_attn_v;
        if (t.name.find("ffn_down") != std::string::npos) ++ctx.n_ffn_down;
        if (t.name == "output.weight") ctx.has_output = true;
        total_elems += uint64_t(t.n_elements());
    }

    // Keys in input order; the two quantization keys last, quantization_version first, as llama-quantize
    // writes them (it re-sets both after copying, which moves them to the end).
    GGUFWriter w;
    for (const auto& key : in->keys())
        if (key != "general.quantization_version" && key != "general.file_type") w.set(key, *in->find(key));
    w.set_u32("general.quantization_version", 2);
    w.set_u32("general.file_type", target.file_type);
    if (in->alignment() != 32) w.set_alignment(in->alignment());

    // Converted tensors are made while the file is written, one at a time; unchanged ones are written straight
    // from the mapping.
    MixCounters counters;
    Progress progress(total_elems);
    uint64_t done = 0;
    size_t n_quantized = 0, n_fallback = 0;
    for (const auto* tp : llama_order(*in)) {
        const auto& t = *tp;
        DType to = t.type;
        if (should_quantize(t.name, t.n_dims)) {
            const DType want = mix_type(target, ctx, counters, t.name, t.ne[2]);
            to = row_fallback(want, t.ne[0]);
            if (to != want) {
                ++n_fallback;
                std::fprintf(stderr, "%s: rows of %lld values are not a multiple of %s's block; using %s\n",
                             t.name.c_str(), static_cast<long long>(t.ne[0]), type_name(want), type_name(to));
            }
        }
        std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
        if (to == t.type) {
            w.add_tensor(t.name, t.type, ne, t.data, t.nbytes);
            done += uint64_t(t.n_elements());
            continue;
        }
        if (!is_float_type(t.type) && !allow_requantize)
            throw Error(format("%s: tensor %s is already quantized (%s); converting it to %s loses more than "
                               "quantizing from F16 would. Pass --allow-requantize to do it anyway",
                               in_path.c_str(), t.name.c_str(), type_name(t.type), type_name(to)));
        w.add_tensor(t.name, to, ne, [&, tp, to](uint8_t* dst) {
            progress.update(done, tp->name + " -> " + type_name(to));
            convert_tensor(*tp, to, pool, dst);
            done += uint64_t(tp->n_elements());
        });
        ++n_quantized;
    }
    w.write(out_path);
    progress.update(total_elems, "written");
    progress.finish();

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto out = GGUFFile::open(out_path);  // validates what was written
    uint64_t out_bytes = 0;
    for (const auto& t : out->tensors()) out_bytes += t.nbytes;
    std::fprintf(stderr, "wrote %s: %s, %zu of %zu tensors converted (%zu by row-length fallback), %.2f bits per weight, "
                 "%.1f MiB of tensors, %.1f s with %d threads\n",
                 out_path.c_str(), target.name.c_str(), n_quantized, in->tensors().size(), n_fallback,
                 total_elems ? 8.0 * double(out_bytes) / double(total_elems) : 0.0,
                 double(out_bytes) / (1024.0 * 1024.0), secs, threads);
    return 0;
}

int cmd_quantize(int argc, char** argv) {
    return run_guarded("quantize", [&] { return quantize(argc, argv); });
}

RegisterCommand reg("quantize", "quantize a GGUF model: IN OUT TYPE (Q4_0 ... Q8_0, Q2_K ... Q6_K, Q4_K_M, IQ4_XS ...)",
                    cmd_quantize);

}  // namespace

}  // namespace tessera::cli
