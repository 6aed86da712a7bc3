#include "tools/attn_viz_image.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>

namespace tessera::cli {

Rgb viridis(double t) {
    // Samples of matplotlib's viridis at t = 0, 1/8, ..., 1, linearly interpolated.
    static const Rgb stops[9] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                                 {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
    t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 8.0;
    const int i = std::min(7, int(t));
    const double f = t - i;
    auto mix = [f](uint8_t a, uint8_t b) { return uint8_t(std::lround(a + (b - a) * f)); };
    return {mix(stops[i].r, stops[i + 1].r), mix(stops[i].g, stops[i + 1].g), mix(stops[i].b, stops[i + 1].b)};
}

Image::Image(int width, int height, Rgb background) : w_(width), h_(height) {
    if (width <= 0 || height <= 0 || int64_t(width) * height > (int64_t(1) << 28))
        throw std::runtime_error("image of " + std::to_string(width) + " x " + std::to_string(height) +
                                 " pixels is too large; choose fewer layers or heads, or a shorter prompt");
    px_.resize(size_t(width) * size_t(height) * 3);
    fill(0, 0, width, height, background);
}

void Image::fill(int x, int y, int w, int h, Rgb c) {
    const int x0 = std::max(0, x), y0 = std::max(0, y), x1 = std::min(w_, x + w), y1 = std::min(h_, y + h);
    for (int yy = y0; yy < y1; ++yy)
        for (int xx = x0; xx < x1; ++xx) {
            uint8_t* p = &px_[(size_t(yy) * size_t(w_) + size_t(xx)) * 3];
            p[0] = c.r;
            p[1] = c.g;
            p[2] = c.b;
        }
}

namespace {

// The quads stb_easy_font makes for s, each as (x, y, w, h) in font pixels.
std::vector<float> font_quads(const std::string& s) {
    std::vector<char> text(s.begin(), s.end());
    text.push_back('\0');
    std::vector<char> vbuf(s.size() * 270 + 1024);  // about 4 quads x 64 bytes per segment-heavy glyph
    const int quads = stb_easy_font_print(0, 0, text.data(), nullptr, vbuf.data(), int(vbuf.size()));
    std::vector<float> rects;
    for (int q = 0; q < quads; ++q) {
        float v[16];  // 4 vertices of x, y, z, colour
        std::memcpy(v, vbuf.data() + size_t(q) * 64, sizeof v);
        const float x0 = std::min({v[0], v[4], v[8], v[12]}), x1 = std::max({v[0], v[4], v[8], v[12]});
        const float y0 = std::min({v[1], v[5], v[9], v[13]}), y1 = std::max({v[1], v[5], v[9], v[13]});
        rects.insert(rects.end(), {x0, y0, x1 - x0, y1 - y0});
    }
    return rects;
}

}  // namespace

void Image::text(int x, int y, const std::string& s, int scale, Rgb c) {
    const std::vector<float> r = font_quads(s);
    for (size_t i = 0; i < r.size(); i += 4)
        fill(x + int(r[i] * scale), y + int(r[i + 1] * scale), int(r[i + 2] * scale), int(r[i + 3] * scale), c);
}

void Image::text_up(int x, int y, const std::string& s, int scale, Rgb c) {
    // A font point (fx, fy) goes to (x + fy, y - fx): rotated counter-clockwise.
    const std::vector<float> r = font_quads(s);
    for (size_t i = 0; i < r.size(); i += 4)
        fill(x + int(r[i + 1] * scale), y - int((r[i] + r[i + 2]) * scale), int(r[i + 3] * scale),
             int(r[i + 2] * scale), c);
}

int Image::text_width(const std::string& s, int scale) {
    std::vector<char> text(s.begin(), s.end());
    text.push_back('\0');
    return stb_easy_font_width(text.data()) * scale;
}

void Image::write_png(const std::string& path) const {
    errno = 0;
    if (!stbi_write_png(path.c_str(), w_, h_, 3, px_.data(), w_ * 3))
        throw std::runtime_error("cannot write " + path + (errno ? std::string(": ") + std::strerror(errno) : ""));
}

std::string printable_label(const std::string& piece, size_t max_chars) {
    std::string out;
    for (unsigned char ch : piece) {
        if ((ch & 0xC0) == 0x80) continue;  // a UTF-8 continuation byte: its character is already one '?'
        if (out.size() >= max_chars) {
            out.back() = '~';
            break;
        }
        out.push_back(ch >= 0x20 && ch < 0x7f ? char(ch) : ch == '\n' ? '|' : '?');
    }
    return out;
}

}  // namespace tessera::cli
