// `tessera attn-viz -m MODEL -p TEXT -o OUT.png`: attention maps as pictures. The session keeps what
// each attention layer saw (C API capture_attention) and the library recomputes the probabilities with
// the op's own mask, window, scale and softcap; this command lays the chosen (layer, head) maps out as a
// grid of heatmaps (query tokens down, key tokens across), or one large labelled map with --layer/--head,
// and with --json prints per-map statistics (the same numbers the picture shows).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "tools/attn_viz_image.h"
#include "tools/command.h"
#include "tools/session_flags.h"

namespace tessera::cli {

namespace {

const Rgb kBackground{255, 255, 255}, kInk{20, 20, 20}, kMasked{64, 64, 64};

// "0,2,5-7" -> {0, 2, 5, 6, 7}; every entry in [0, limit). "" -> all.
std::vector<int> parse_index_list(const std::string& flag, const std::string& text, int limit) {
    std::set<int> out;
    if (text.empty() || text == "all") {
        for (int i = 0; i < limit; ++i) out.insert(i);
        return {out.begin(), out.end()};
    }
    size_t at = 0;
    while (at <= text.size()) {
        const size_t comma = std::min(text.find(',', at), text.size());
        const std::string item = text.substr(at, comma - at);
        int lo = 0, hi = 0;
        char extra = 0;
        if (std::sscanf(item.c_str(), "%d-%d%c", &lo, &hi, &extra) == 2) {
        } else if (std::sscanf(item.c_str(), "%d%c", &lo, &extra) == 1) {
            hi = lo;
        } else {
            throw UsageError(flag + ": '" + item + "' is not an index or a range like 2-5");
        }
        if (lo < 0 || hi < lo || hi >= limit)
            throw UsageError(flag + ": '" + item + "' is outside 0-" + std::to_string(limit - 1));
        for (int i = lo; i <= hi; ++i) out.insert(i);
        at = comma + 1;
    }
    return {out.begin(), out.end()};
}

struct Map {
    int layer = 0, head = 0, n_head = 0, n_kv_head = 0, window = 0;
    int n_query = 0, n_key = 0, first_query = 0;
    std::vector<float> probs;
    float at(int i, int j) const { return probs[size_t(i) * size_t(n_key) + size_t(j)]; }
};

Map read_map(tessera_session* s, int layer, int head) {
    Map m;
    m.layer = layer;
    m.head = head;
    check(tessera_attention_layer_info(s, layer, &m.n_head, &m.n_kv_head, &m.window), "attention layer info");
    if (tessera_attention_map(s, layer, head, nullptr, 0, &m.n_query, &m.n_key, &m.first_query) !=
        TESSERA_ERR_BUFFER_TOO_SMALL)
        throw std::runtime_error(std::string("attention map: ") + tessera_last_error());
    m.probs.resize(size_t(m.n_query) * size_t(m.n_key));
    check(tessera_attention_map(s, layer, head, m.probs.data(), m.probs.size(), &m.n_query, &m.n_key, &m.first_query),
          "attention map");
    return m;
}

// Colour of probability p: masked (exactly 0: the key is invisible to the query) in dark grey, the rest
// on viridis, linear in p or, with log_scale, linear in log10 p over [1e-4, 1].
Rgb colour(float p, bool log_scale) {
    if (p <= 0.0f) return kMasked;
    return viridis(log_scale ? (std::log10(double(p)) + 4.0) / 4.0 : double(p));
}

void draw_heatmap(Image& img, const Map& m, int x, int y, int cell, bool log_scale) {
    for (int i = 0; i < m.n_query; ++i)
        for (int j = 0; j < m.n_key; ++j) img.fill(x + j * cell, y + i * cell, cell, cell, colour(m.at(i, j), log_scale));
}

void draw_colour_bar(Image& img, int x, int y, int width, bool log_scale) {
    for (int i = 0; i < width; ++i) img.fill(x + i, y, 1, 10, viridis(double(i) / double(width - 1)));
    img.text(x, y + 13, log_scale ? "1e-4" : "0", 1, kInk);
    const std::string one = "1";
    img.text(x + width - Image::text_width(one, 1), y + 13, one, 1, kInk);
    img.text(x + width + 8, y + 1, log_scale ? "probability (log)   grey: masked" : "probability   grey: masked", 1,
             kInk);
}

std::string map_label(const Map& m) {
    std::string s = "L" + std::to_string(m.layer) + " H" + std::to_string(m.head);
    if (m.n_kv_head != m.n_head) s += " kv" + std::to_string(m.head / (m.n_head / m.n_kv_head));
    if (m.window > 0) s += " w" + std::to_string(m.window);
    return s;
}

// The grid: one row of maps per layer, heads across, a wider gap between KV groups.
Image render_grid(const std::vector<std::vector<Map>>& rows, const std::string& title, bool log_scale) {
    const Map& any = rows[0][0];
    const int cell = std::clamp(160 / std::max(any.n_key, any.n_query), 1, 8);
    const int map_w = any.n_key * cell, map_h = any.n_query * cell;
    const int pad = 8, label_h = 12, group_gap = 8;
    size_t widest = 0;
    for (const auto& r : rows) widest = std::max(widest, r.size());
    int width = pad, groups = 0;
    for (size_t c = 0; c < widest; ++c) {
        const Map& m = rows[0][std::min(c, rows[0].size() - 1)];
        if (c > 0 && m.n_kv_head != m.n_head && m.head % (m.n_head / m.n_kv_head) == 0) ++groups;
    }
    width += int(widest) * (std::max(map_w, Image::text_width("L00 H00 kv0 w0000", 1)) + pad) + groups * group_gap;
    width = std::max(width, Image::text_width(title, 1) + 2 * pad);
    width = std::max(width, 420);
    const int height = 2 * pad + label_h + int(rows.size()) * (map_h + label_h + pad) + 30;
    Image img(width, height, kBackground);
    img.text(pad, pad, title, 1, kInk);
    int y = pad + label_h + 4;
    const int column_w = std::max(map_w, Image::text_width("L00 H00 kv0 w0000", 1));
    for (const auto& r : rows) {
        int x = pad;
        for (size_t c = 0; c < r.size(); ++c) {
            const Map& m = r[c];
            if (c > 0 && m.n_kv_head != m.n_head && m.head % (m.n_head / m.n_kv_head) == 0) x += group_gap;
            img.text(x, y, map_label(m), 1, kInk);
            draw_heatmap(img, m, x, y + label_h, cell, log_scale);
            x += column_w + pad;
        }
        y += map_h + label_h + pad;
    }
    draw_colour_bar(img, pad, y + 2, 160, log_scale);
    return img;
}

// One map, large, with the tokens along both axes (keys written upwards above the map).
Image render_single(const Map& m, const std::vector<std::string>& labels, const std::string& title, bool log_scale) {
    const int cell = std::clamp(720 / std::max(m.n_key, m.n_query), 4, 24);
    const int scale = 1;
    int label_w = 0;
    for (const std::string& l : labels) label_w = std::max(label_w, Image::text_width(l, scale));
    const int pad = 10, title_h = 14;
    const int map_x = pad + label_w + 6, map_y = pad + title_h + label_w + 6;
    const int width = std::max(map_x + m.n_key * cell + pad, Image::text_width(title, 1) + 2 * pad);
    const int height = map_y + m.n_query * cell + 40;
    Image img(std::max(width, 420), height, kBackground);
    img.text(pad, pad, title, 1, kInk);
    const int text_h = Image::text_height(scale);
    for (int i = 0; i < m.n_query; ++i) {
        const std::string& l = labels[size_t(m.first_query + i)];
        img.text(map_x - 6 - Image::text_width(l, scale), map_y + i * cell + (cell - text_h) / 2 + 1, l, scale, kInk);
    }
    for (int j = 0; j < m.n_key; ++j)
        img.text_up(map_x + j * cell + (cell - text_h) / 2 + 1, map_y - 6, labels[size_t(j)], scale, kInk);
    draw_heatmap(img, m, map_x, map_y, cell, log_scale);
    draw_colour_bar(img, pad, map_y + m.n_query * cell + 10, 160, log_scale);
    return img;
}

// Per-map statistics, averaged over the query rows that see at least one key.
struct MapStats {
    double entropy = 0, first_token_mass = 0, mean_distance = 0;
};
MapStats stats_of(const Map& m) {
    MapStats s;
    int rows = 0;
    for (int i = 0; i < m.n_query; ++i) {
        double mass = 0, entropy = 0, distance = 0;
        for (int j = 0; j < m.n_key; ++j) {
            const double p = m.at(i, j);
            if (p <= 0) continue;
            mass += p;
            entropy -= p * std::log(p);
            distance += p * double(m.first_query + i - j);
        }
        if (mass <= 0) continue;
        ++rows;
        s.entropy += entropy;
        s.first_token_mass += m.at(i, 0);
        s.mean_distance += distance;
    }
    if (rows > 0) {
        s.entropy /= rows;
        s.first_token_mass /= rows;
        s.mean_distance /= rows;
    }
    return s;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    return out + "\"";
}

int attn_viz(int argc, char** argv) {
    SessionFlags sf;
    std::string prompt, out_path, layers_text, heads_text;
    int one_layer = -1, one_head = -1;
    bool log_scale = false, json = false;
    ArgParser p("attn-viz", "-m MODEL -p TEXT -o OUT.png [options]",
                "Attention maps of a prompt as a PNG: a grid of heatmaps, one per (layer, head), query tokens down, "
                "key tokens across; grey cells are masked (future keys, keys outside a sliding window). With "
                "--layer and --head, one large map with the tokens on both axes.");
    sf.add_to(p, false);
    p.option("-p,--prompt", &prompt, "TEXT", "the text to look at (tokenized with BOS)");
    p.option("-o,--output", &out_path, "OUT.png", "where the picture goes");
    p.option("--layers", &layers_text, "LIST", "layers to show, e.g. 0,2,5-7 (default: all)");
    p.option("--heads", &heads_text, "LIST", "heads to show in each layer (default: all)");
    p.option("--layer", &one_layer, "L", "one map only: this layer (with --head)", 0, 1 << 20);
    p.option("--head", &one_head, "H", "one map only: this head (with --layer)", 0, 1 << 20);
    p.flag("--log", &log_scale, "colour by log10 probability over [1e-4, 1] instead of linearly");
    p.flag("--json", &json, "print per-map statistics as JSON on stdout (entropy, first-token mass, distance)");
    if (!p.parse(argc, argv)) return 0;
    if (sf.model.empty()) throw UsageError("-m MODEL is required");
    if (!p.given("--prompt")) throw UsageError("-p TEXT is required");
    if (out_path.empty() && !json) throw UsageError("give -o OUT.png, --json, or both");
    if (p.given("--layer") != p.given("--head")) throw UsageError("--layer and --head go together");
    if (p.given("--layer") && (p.given("--layers") || p.given("--heads")))
        throw UsageError("--layer/--head show one map; --layers/--heads choose the grid: not both");

    ModelHandle model;
    sf.open_model(&model.m);
    std::vector<int32_t> ids(prompt.size() + 8);
    int32_t n = 0;
    check(tessera_tokenize(model.m, prompt.c_str(), int32_t(prompt.size()), 1, 0, ids.data(), int32_t(ids.size()), &n),
          "tokenizing");
    ids.resize(size_t(n));
    if (ids.empty()) throw UsageError("the prompt gives no tokens");
    if (ids.size() > 1024) throw UsageError("the prompt has " + std::to_string(ids.size()) + " tokens; attn-viz takes at most 1024");

    tessera_session_params sp = sf.params();
    sp.capture_attention = 1;
    sp.n_ctx = int(ids.size());
    SessionHandle session;
    check(tessera_session_create(model.m, &sp, &session.s), "creating the session");
    check(tessera_decode(session.s, ids.data(), int32_t(ids.size())), "decoding");

    const int n_layer = tessera_attention_n_layers(session.s);
    if (n_layer == 0) throw std::runtime_error("the model has no attention layers to show");
    std::vector<int> layers = p.given("--layer") ? std::vector<int>{one_layer}
                                                 : parse_index_list("--layers", layers_text, n_layer);
    if (one_layer >= n_layer)
        throw UsageError("--layer " + std::to_string(one_layer) + " is outside 0-" + std::to_string(n_layer - 1));
    std::vector<std::vector<Map>> rows;
    for (int layer : layers) {
        int n_head = 0, n_kv_head = 0, window = 0;
        check(tessera_attention_layer_info(session.s, layer, &n_head, &n_kv_head, &window), "attention layer info");
        if (one_head >= n_head)
            throw UsageError("--head " + std::to_string(one_head) + " is outside 0-" + std::to_string(n_head - 1));
        const std::vector<int> heads =
            p.given("--head") ? std::vector<int>{one_head} : parse_index_list("--heads", heads_text, n_head);
        auto& row = rows.emplace_back();
        for (int h : heads) row.push_back(read_map(session.s, layer, h));
    }

    std::vector<std::string> labels;
    for (int32_t id : ids) {
        char buf[256];
        size_t len = 0;
        check(tessera_token_to_piece_ext(model.m, id, 1, buf, sizeof buf, &len), "token text");  // <s> shown
        labels.push_back(printable_label(std::string(buf, len), 14));
    }

    if (!out_path.empty()) {
        const std::string title = std::string(tessera_model_arch(model.m)) + ", " + std::to_string(ids.size()) +
                                  " tokens" + (log_scale ? ", log scale" : "");
        const Image img = p.given("--layer") ? render_single(rows[0][0], labels, title, log_scale)
                                             : render_grid(rows, title, log_scale);
        img.write_png(out_path);
        std::fprintf(stderr, "attn-viz: wrote %s (%d x %d pixels, %zu layers)\n", out_path.c_str(), img.width(),
                     img.height(), rows.size());
    }
    if (json) {
        std::printf("{\"model\": %s, \"tokens\": [", json_string(sf.model).c_str());
        for (size_t i = 0; i < labels.size(); ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
        std::printf("],\n \"maps\": [");
        bool first = true;
        for (const auto& row : rows)
            for (const Map& m : row) {
                const MapStats s = stats_of(m);
                // Sinks (a learned logit per head that takes probability mass) are not in the attention
                // op yet, so no mass goes to a sink: null says so rather than a made-up 0.
                std::printf("%s\n  {\"layer\": %d, \"head\": %d, \"kv_head\": %d, \"window\": %d, \"entropy\": %.6f, "
                            "\"first_token_mass\": %.6f, \"sink_mass\": null, \"mean_distance\": %.6f}",
                            first ? "" : ",", m.layer, m.head, m.head / std::max(1, m.n_head / m.n_kv_head), m.window,
                            s.entropy, s.first_token_mass, s.mean_distance);
                first = false;
            }
        std::printf("\n]}\n");
    }
    return 0;
}

int cmd_attn_viz(int argc, char** argv) {
    return run_guarded("attn-viz", [&] { return attn_viz(argc, argv); });
}

RegisterCommand reg("attn-viz", "attention maps of a prompt as a PNG (-m MODEL -p TEXT -o OUT.png)", cmd_attn_viz);

}  // namespace

}  // namespace tessera::cli
