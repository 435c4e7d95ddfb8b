// Small raster plots for logs and reports people look at (the training loss curve, the surgery report's tables and
// trade-off curves): axes, tick labels, title, text drawn with stb_easy_font. Images are [3, H, W] float tensors in
// [-1, 1], written with write_png (core/video_io.h).
#pragma once
#include <torch/torch.h>

#include <array>
#include <optional>
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

struct HeatmapOptions {
    std::string title;
    std::string x_label;  // names the columns (e.g. "option"), above the column labels
    std::string y_label;  // names the rows (e.g. "block"), above the row labels
    bool log_scale = true;
    int64_t cell_w = 0, cell_h = 0;  // pixels; 0 = fit the labels and values
    int precision = 3;               // significant digits of the printed values ("%.3g")
};

// A table of values as coloured cells (rows top to bottom, columns left to right): colour from viridis normalised over
// the finite values (log10 when log_scale and no finite value is negative; zeros are then the lowest colour), the value
// printed in each cell (black or white, whichever reads better on the cell), non-finite cells light gray with "-", row
// labels left, column labels on top, a colour bar with the min and max on the right. `values` must be rectangular with
// one label per row and per column, else surgeon::Error.
torch::Tensor render_heatmap(const std::vector<std::vector<double>>& values, const std::vector<std::string>& row_labels,
                             const std::vector<std::string>& col_labels, const HeatmapOptions& options);

struct Series {
    std::string name;          // legend entry; "" = not in the legend
    std::vector<double> x, y;  // same length; points with a non-finite coordinate (or y <= 0 on a log axis) are skipped
    std::array<float, 3> rgb;  // each in [-1, 1]
    bool line = true;          // connects the points in order of x
    bool markers = true;       // a 7x7 filled square at each point
};

struct SeriesPlotOptions {
    std::string title, x_label, y_label;
    bool log_y = false;
    int64_t width = 800, height = 450;
    std::optional<double> y_min, y_max;  // axis range; unset = the data's range plus a margin
    std::optional<double> x_min, x_max;
};

// Several series on shared axes (ticks as render_line_plot), with a legend box (each named series' colour and name) in
// the corner of the plot area that covers the fewest drawn points. Series of different lengths, unsorted x
// (markers-only series) and empty series are fine; x.size() != y.size(), an empty or inverted explicit range or a
// non-positive y_min on a log axis give surgeon::Error.
torch::Tensor render_series_plot(const std::vector<Series>& series, const SeriesPlotOptions& options);

// The viridis colormap (t in [0, 1], clamped; 0 = dark purple, 1 = yellow) as rgb in [-1, 1].
std::array<float, 3> viridis(double t);

// Draws `text` into `image` ([3, H, W], [-1, 1]) with its top-left corner at (x, y), `scale` pixels per font
// unit (the font is about 7 units tall), in colour rgb (each in [-1, 1]). Returns the width in pixels.
int64_t draw_text(torch::Tensor& image, int64_t x, int64_t y, const std::string& text, int64_t scale,
                  const std::array<float, 3>& rgb);
// Width in pixels draw_text would use.
int64_t text_width(const std::string& text, int64_t scale);

}  // namespace surgeon
