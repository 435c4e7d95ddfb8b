// Small raster plots for logs people look at (the training loss curve): axes, tick labels, title, text drawn
// with stb_easy_font. Images are [3, H, W] float tensors in [-1, 1], written with write_png.
#pragma once
#include <torch/torch.h>

#include <array>
#include <string>
#include <vector>

namespace surgeon {

struct LinePlotOptions {
    std::string title, x_label, y_label;
    bool log_y = true;
    int64_t width = 800, height = 450;
};

// One series y(x) (x increasing). Log-y puts grid lines at 1/2/5 x 10^k (linear nice steps when the range is under a decade); x ticks at "nice" steps. Non-finite or
// non-positive (log) values are skipped. Fewer than two points gives the empty frame with its labels.
torch::Tensor render_line_plot(const std::vector<double>& x, const std::vector<double>& y, const LinePlotOptions& options);

// Draws `text` into `image` ([3, H, W], [-1, 1]) with its top-left corner at (x, y), `scale` pixels per font
// unit (the font is about 7 units tall), in colour rgb (each in [-1, 1]). Returns the width in pixels.
int64_t draw_text(torch::Tensor& image, int64_t x, int64_t y, const std::string& text, int64_t scale,
                  const std::array<float, 3>& rgb);
// Width in pixels draw_text would use.
int64_t text_width(const std::string& text, int64_t scale);

}  // namespace surgeon
