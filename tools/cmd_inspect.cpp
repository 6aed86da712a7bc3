// `tessera inspect FILE [--json]`: what a GGUF file holds. Header, metadata (long arrays abbreviated),
// the tensor table, totals per type, parameter count and bits per weight. The file is fully validated
// first, so inspect is also the quickest way to ask "is this file sound?".
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "core/gguf.h"
#include "tools/args.h"
#include "tools/command.h"

namespace tessera::cli {

namespace {

// Keys and names are valid UTF-8 (the reader checks) but may hold control bytes: never print those raw.
std::string safe(const std::string& s) {
    std::string out;
    for (char ch : s) {
        unsigned char c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out;
}

std::string shape_of(const GGUFFile::TensorInfo& t) {
    std::string s = "[";
    for (int d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + "]";
}

// "arr[string,512]" / "uint32": the value's type as a short column.
std::string type_column(const GGUFValue& v) {
    if (v.type != GGUFType::ARRAY) return gguf_type_name(v.type);
    return std::string("arr[") + gguf_type_name(v.elem_type) + "," + std::to_string(v.arr.size()) + "]";
}

struct TypeTotal {
    size_t tensors = 0;
    uint64_t elements = 0;
    uint64_t bytes = 0;
};

struct Totals {
    std::map<std::string, TypeTotal> by_type;
    uint64_t elements = 0;
    uint64_t bytes = 0;
    double bits_per_weight() const { return elements ? 8.0 * double(bytes) / double(elements) : 0.0; }
};

Totals totals_of(const GGUFFile& f) {
    Totals t;
    for (const auto& ti : f.tensors()) {
        auto& e = t.by_type[type_name(ti.type)];
        ++e.tensors;
        e.elements += uint64_t(ti.n_elements());
        e.bytes += ti.nbytes;
        t.elements += uint64_t(ti.n_elements());
        t.bytes += ti.nbytes;
    }
    return t;
}

// ---------------------------------------------------------------- text

void print_text(const GGUFFile& f, size_t max_elems) {
    std::printf("file:        %s\n", safe(f.path()).c_str());
    std::printf("version:     %u\n", f.version());
    std::printf("alignment:   %zu\n", f.alignment());
    std::printf("data offset: %zu\n", f.data_offset());
    std::printf("file size:   %zu bytes\n", f.file_size());
    std::printf("metadata:    %zu keys\n", f.keys().size());
    std::printf("tensors:     %zu\n", f.tensors().size());

    std::printf("\nmetadata:\n");
    size_t key_w = 0;
    for (const auto& k : f.keys()) key_w = std::max(key_w, k.size());
    key_w = std::min<size_t>(key_w, 48);
    for (const auto& k : f.keys()) {
        const GGUFValue& v = *f.find(k);
        std::printf("  %-*s  %-18s %s\n", int(key_w), safe(k).c_str(), type_column(v).c_str(),
                    GGUFFile::value_to_string(v, max_elems).c_str());
    }

    if (!f.tensors().empty()) {
        size_t name_w = 4;
        for (const auto& t : f.tensors()) name_w = std::max(name_w, t.name.size());
        std::printf("\ntensors:\n  %5s  %-*s  %-5s  %-24s  %12s  %12s\n", "#", int(name_w), "name", "type", "shape",
                    "bytes", "offset");
        size_t i = 0;
        for (const auto& t : f.tensors())
            std::printf("  %5zu  %-*s  %-5s  %-24s  %12zu  %12llu\n", i++, int(name_w), safe(t.name).c_str(),
                        type_name(t.type), shape_of(t).c_str(), t.nbytes, static_cast<unsigned long long>(t.offset));
    }

    const Totals tot = totals_of(f);
    if (!tot.by_type.empty()) {
        std::printf("\ntotals by type:\n");
        for (const auto& [name, e] : tot.by_type)
            std::printf("  %-5s  %5zu tensors  %14llu elements  %14llu bytes  %6.2f bits/weight\n", name.c_str(),
                        e.tensors, static_cast<unsigned long long>(e.elements),
                        static_cast<unsigned long long>(e.bytes), 8.0 * double(e.bytes) / double(e.elements));
    }
    std::printf("\nparameters:      %llu (%.3f M)\n", static_cast<unsigned long long>(tot.elements),
                double(tot.elements) / 1e6);
    std::printf("tensor bytes:    %llu (%.2f MiB)\n", static_cast<unsigned long long>(tot.bytes),
                double(tot.bytes) / (1024.0 * 1024.0));
    std::printf("bits per weight: %.3f\n", tot.bits_per_weight());
}

// ---------------------------------------------------------------- JSON

// A JSON string. Bytes that are not valid UTF-8 (token pieces may be byte fragments) become \u00XX, their
// Latin-1 reading: JSON cannot carry raw bytes, and this keeps the document valid.
std::string json_str(const std::string& s) {
    std::string out = "\"";
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    auto escape = [&](unsigned c) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
    };
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"') { out += "\\\""; ++i; continue; }
        if (c == '\\') { out += "\\\\"; ++i; continue; }
        if (c == '\n') { out += "\\n"; ++i; continue; }
        if (c == '\t') { out += "\\t"; ++i; continue; }
        if (c == '\r') { out += "\\r"; ++i; continue; }
        if (c < 0x20 || c == 0x7F) { escape(c); ++i; continue; }
        if (c < 0x80) { out += char(c); ++i; continue; }
        // Take one UTF-8 sequence whole if it is valid; otherwise escape the single byte.
        size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        bool ok = len != 0 && n - i >= len;
        uint32_t cp = len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t k = 1; ok && k < len; ++k) {
            ok = (p[i + k] & 0xC0) == 0x80;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        const uint32_t min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        if (ok) {
            out.append(s, i, len);
            i += len;
        } else {
            escape(c);
            ++i;
        }
    }
    return out + "\"";
}

std::string json_num(double x, bool is_f32) {
    if (!std::isfinite(x)) return "null";  // JSON has no NaN or Inf
    char buf[64];
    auto r = is_f32 ? std::to_chars(buf, buf + sizeof buf, float(x)) : std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, r.ptr);
}

void append_json_value(std::string& out, const GGUFValue& v, size_t max_elems) {
    switch (v.type) {
        case GGUFType::UINT8: case GGUFType::UINT16: case GGUFType::UINT32: case GGUFType::UINT64:
            out += std::to_string(v.u);
            return;
        case GGUFType::INT8: case GGUFType::INT16: case GGUFType::INT32: case GGUFType::INT64:
            out += std::to_string(v.i);
            return;
        case GGUFType::FLOAT32: out += json_num(v.f, true); return;
        case GGUFType::FLOAT64: out += json_num(v.f, false); return;
        case GGUFType::BOOL: out += v.u ? "true" : "false"; return;
        case GGUFType::STRING: out += json_str(v.s); return;
        case GGUFType::ARRAY: {
            out += "[";
            const size_t n = max_elems == 0 ? v.arr.size() : std::min(v.arr.size(), max_elems);
            for (size_t i = 0; i < n; ++i) {
                if (i) out += ", ";
                append_json_value(out, v.arr[i], max_elems);
            }
            out += "]";
            return;
        }
    }
    out += "null";
}

void print_json(const GGUFFile& f, size_t max_elems) {
    std::string o = "{\n";
    o += "  \"file\": " + json_str(f.path()) + ",\n";
    o += "  \"version\": " + std::to_string(f.version()) + ",\n";
    o += "  \"alignment\": " + std::to_string(f.alignment()) + ",\n";
    o += "  \"data_offset\": " + std::to_string(f.data_offset()) + ",\n";
    o += "  \"file_size\": " + std::to_string(f.file_size()) + ",\n";
    o += "  \"n_kv\": " + std::to_string(f.keys().size()) + ",\n";
    o += "  \"n_tensors\": " + std::to_string(f.tensors().size()) + ",\n";
    // Metadata as a list (keeps file order); arrays carry their full length and the first max_elems values.
    o += "  \"metadata\": [";
    bool first = true;
    for (const auto& k : f.keys()) {
        const GGUFValue& v = *f.find(k);
        o += first ? "\n" : ",\n";
        first = false;
        o += "    {\"key\": " + json_str(k) + ", \"type\": \"" + gguf_type_name(v.type) + "\"";
        if (v.type == GGUFType::ARRAY) {
            o += std::string(", \"elem_type\": \"") + gguf_type_name(v.elem_type) + "\"";
            o += ", \"length\": " + std::to_string(v.arr.size());
            o += std::string(", \"truncated\": ") +
                 (max_elems != 0 && v.arr.size() > max_elems ? "true" : "false");
        }
        o += ", \"value\": ";
        append_json_value(o, v, max_elems);
        o += "}";
    }
    o += first ? "],\n" : "\n  ],\n";
    o += "  \"tensors\": [";
    first = true;
    for (const auto& t : f.tensors()) {
        o += first ? "\n" : ",\n";
        first = false;
        o += "    {\"name\": " + json_str(t.name) + ", \"type\": \"" + type_name(t.type) + "\", \"shape\": " +
             shape_of(t) + ", \"bytes\": " + std::to_string(t.nbytes) + ", \"offset\": " + std::to_string(t.offset) +
             "}";
    }
    o += first ? "],\n" : "\n  ],\n";
    const Totals tot = totals_of(f);
    o += "  \"totals\": [";
    first = true;
    for (const auto& [name, e] : tot.by_type) {
        o += first ? "\n" : ",\n";
        first = false;
        o += "    {\"type\": \"" + name + "\", \"tensors\": " + std::to_string(e.tensors) +
             ", \"elements\": " + std::to_string(e.elements) + ", \"bytes\": " + std::to_string(e.bytes) + "}";
    }
    o += first ? "],\n" : "\n  ],\n";
    o += "  \"parameters\": " + std::to_string(tot.elements) + ",\n";
    o += "  \"tensor_bytes\": " + std::to_string(tot.bytes) + ",\n";
    o += "  \"bits_per_weight\": " + json_num(tot.bits_per_weight(), false) + "\n";
    o += "}\n";
    std::fwrite(o.data(), 1, o.size(), stdout);
}

int cmd_inspect(int argc, char** argv) {
    return run_guarded("inspect", [&]() {
        std::string path, model;
        bool json = false;
        int max_elems = 8;
        ArgParser p("inspect", "FILE [--json]",
                    "Validates a GGUF file and prints its header, metadata, tensor table, totals per type, "
                    "parameter count and bits per weight.");
        p.positional("FILE", &path, "the GGUF file", false);
        p.option("-m,--model", &model, "FILE", "the GGUF file, spelled as the model commands take it");
        p.flag("--json", &json, "print one JSON document instead of text");
        p.option("-n,--max-array", &max_elems, "N", "array elements to show (0: all; default 8)", 0, INT32_MAX);
        if (!p.parse(argc, argv)) return 0;
        if (!model.empty() && !path.empty()) throw UsageError("give the file once: FILE or -m FILE, not both");
        if (path.empty()) path = model;
        if (path.empty()) throw UsageError("missing FILE");
        auto f = GGUFFile::open(path);
        if (json) print_json(*f, size_t(max_elems));
        else print_text(*f, max_elems == 0 ? SIZE_MAX : size_t(max_elems));
        return 0;
    });
}

RegisterCommand reg("inspect", "show a GGUF file's header, metadata and tensors (--json)", cmd_inspect);

}  // namespace

}  // namespace tessera::cli
