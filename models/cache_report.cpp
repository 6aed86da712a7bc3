#include "models/cache_report.h"

#include <cstdio>

namespace tessera {

namespace {

std::string mib(double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / (1024.0 * 1024.0));
    return buf;
}

std::string kib(double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f KiB", bytes / 1024.0);
    return buf;
}

}  // namespace

std::string describe_kv_cache(const KVCache& c, const HParams& hp) {
    const DType t = c.type();
    int full = 0, rings = 0, latent = 0, unringed_window = 0;
    size_t full_bytes = 0, ring_bytes = 0, latent_bytes = 0, mha_per_tok = 0, latent_per_tok = 0, full_per_tok = 0;
    int64_t ring_slots = 0;
    for (int il = 0; il < c.n_layer(); ++il) {
        const LayerCache& l = c.layer(il);
        const size_t row = row_bytes(t, l.k_width) + (l.v_width > 0 ? row_bytes(t, l.v_width) : 0);
        if (c.ring_slots(il) > 0) {
            ++rings;
            ring_slots = c.ring_slots(il);
            ring_bytes += row * size_t(c.ring_slots(il));
        } else if (l.kind == CacheKind::Latent) {
            ++latent;
            latent_per_tok += row;
            latent_bytes += row * size_t(c.n_ctx());
            mha_per_tok += row_bytes(t, hp.n_head * hp.head_dim_k) + row_bytes(t, hp.n_head * hp.head_dim_v);
        } else {
            if (l.kind == CacheKind::Window) ++unringed_window;  // a ring would not be smaller than the context
            ++full;
            full_per_tok += row;
            full_bytes += row * size_t(c.n_ctx());
        }
    }
    std::string s = "kv cache " + std::string(type_name(t)) + ", " + std::to_string(c.n_ctx()) + " tokens: ";
    std::string parts;
    auto add = [&](const std::string& p) { parts += (parts.empty() ? "" : "; ") + p; };
    if (full)
        add(std::to_string(full) + " full layers" +
            (unringed_window ? " (" + std::to_string(unringed_window) + " of them window layers)" : std::string()) + " " +
            mib(double(full_bytes)) + " (" + kib(double(full_per_tok)) + " per token)");
    if (rings)
        add(std::to_string(rings) + " window layers as rings of " + std::to_string(ring_slots) + " slots " +
            mib(double(ring_bytes)) + " (fixed)");
    if (latent)
        add(std::to_string(latent) + " MLA latent layers " + mib(double(latent_bytes)) + " (" +
            kib(double(latent_per_tok)) + " per token; per-head K and V would need " + kib(double(mha_per_tok)) +
            ")");
    return s + parts + "; total " + mib(double(c.total_bytes()));
}

}  // namespace tessera
