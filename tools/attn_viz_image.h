// A small RGB canvas for attn-viz: filled rectangles, a perceptual colour map, and text in stb's
// built-in bitmap font (stb_easy_font: printable ASCII; other bytes are drawn as '?'). Written as PNG
// through stb_image_write.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessera::cli {

struct Rgb {
    uint8_t r, g, b;
};

// Viridis (perceptually uniform, readable in grey and by most colour-blind readers): t in [0, 1].
Rgb viridis(double t);

class Image {
public:
    Image(int width, int height, Rgb background);
    int width() const { return w_; }
    int height() const { return h_; }
    void fill(int x, int y, int w, int h, Rgb c);  // clipped to the canvas
    // Text with its top-left corner at (x, y), each font pixel drawn as scale x scale.
    void text(int x, int y, const std::string& s, int scale, Rgb c);
    // The same, turned 90 degrees counter-clockwise (reads bottom to top), its bottom-left at (x, y).
    void text_up(int x, int y, const std::string& s, int scale, Rgb c);
    static int text_width(const std::string& s, int scale);
    static int text_height(int scale) { return 8 * scale; }
    void write_png(const std::string& path) const;  // throws with the reason on failure

private:
    int w_, h_;
    std::vector<uint8_t> px_;
};

// A token's text made printable for the bitmap font: controls and non-ASCII bytes become '?', at most
// max_chars characters (then '~').
std::string printable_label(const std::string& piece, size_t max_chars);

}  // namespace tessera::cli
