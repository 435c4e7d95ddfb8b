// Plots: text lands where asked and nowhere else; a falling series is drawn falling; bad CSVs give one line;
// heatmap cells take their colormap colour, text colour and gray where they should; series plots put markers where
// the points map and the legend where the data is not.
#include "core/plot.h"
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/video_io.h"

#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;

namespace {
// Pixels darker than mid-grey in channel 0, within [x0, x1) x [y0, y1).
int64_t dark(const torch::Tensor& img, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
    return (img[0].slice(0, y0, y1).slice(1, x0, x1) < 0).sum().item<int64_t>();
}
// Pixels of colour c (within 1e-4 per channel) -> bool [H, W].
torch::Tensor is_colour(const torch::Tensor& img, const std::array<float, 3>& c) {
    auto m = torch::ones({img.size(1), img.size(2)}, torch::kBool);
    for (int k = 0; k < 3; ++k) m &= (img[k] - c[k]).abs() < 1e-4;
    return m;
}
bool pixel_is(const torch::Tensor& img, int64_t x, int64_t y, const std::array<float, 3>& c) {
    return is_colour(img, c)[y][x].item<bool>();
}
// Bounding box {x0, y0, x1, y1} (inclusive) of the true pixels of a [H, W] mask; {-1...} if none.
std::array<int64_t, 4> bbox(const torch::Tensor& mask) {
    auto nz = torch::nonzero(mask);
    if (nz.size(0) == 0) return {-1, -1, -1, -1};
    return {nz.select(1, 1).min().item<int64_t>(), nz.select(1, 0).min().item<int64_t>(), nz.select(1, 1).max().item<int64_t>(),
            nz.select(1, 0).max().item<int64_t>()};
}
// The plot frame of an x-y plot: the rows and columns more than half black.
std::array<int64_t, 4> find_frame(const torch::Tensor& img) {
    auto black = is_colour(img, {-1, -1, -1});
    auto rows = torch::nonzero(black.sum(1) > img.size(2) / 2).flatten(), cols = torch::nonzero(black.sum(0) > img.size(1) / 2).flatten();
    if (rows.numel() < 2 || cols.numel() < 2) return {-1, -1, -1, -1};
    return {cols.min().item<int64_t>(), rows.min().item<int64_t>(), cols.max().item<int64_t>(), rows.max().item<int64_t>()};
}
}  // namespace

TEST(Plot, DrawTextInsideItsBox) {
    auto img = torch::ones({3, 40, 200});
    const int64_t w = draw_text(img, 10, 5, "loss 0.25", 2, {-1, -1, -1});
    EXPECT_EQ(w, text_width("loss 0.25", 2));
    EXPECT_GT(w, 40);
    EXPECT_GT(dark(img, 10, 5, 10 + w, 5 + 20), 50);
    EXPECT_EQ(dark(img, 0, 0, 200, 40), dark(img, 10, 5, 10 + w, 5 + 20));  // nothing outside the box
    // Longer text, wider box; clipped text at the border does not crash.
    EXPECT_GT(text_width("loss 0.25 at step 100", 2), w);
    draw_text(img, 190, 35, "clipped", 3, {-1, -1, -1});
}

TEST(Plot, FallingSeriesIsDrawnFalling) {
    std::vector<double> x, y;
    for (int i = 0; i <= 100; ++i) x.push_back(i * 25), y.push_back(1.0 * std::exp(-i / 20.0) + 0.01);
    LinePlotOptions o;
    o.title = "loss";
    auto img = render_line_plot(x, y, o);
    ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, o.height, o.width}));
    EXPECT_LE(img.abs().max().item<float>(), 1.0f);
    // The series colour (-1, -0.4, 0.6): near the top at the left of the plot, near the bottom at the right.
    auto series = (img[0] < -0.9) & (img[1] > -0.5) & (img[1] < -0.3) & (img[2] > 0.5);
    auto rows_at = [&](int64_t x) { return torch::nonzero(series.select(1, x)).to(torch::kFloat64).mean().item<double>(); };
    const double left = rows_at(75), right = rows_at(o.width - 25);
    EXPECT_LT(left, o.height * 0.25);
    EXPECT_GT(right, o.height * 0.6);
    // Log scale skips non-positive values instead of failing; a single point draws an empty frame.
    y[50] = 0, y[51] = -1;
    EXPECT_NO_THROW(render_line_plot(x, y, o));
    EXPECT_NO_THROW(render_line_plot({1}, {1}, o));
}

// A log axis spanning less than a decade still gets several labelled grid lines (the stage-4 and stage-5 loss
// plots, 0.0045..0.012 and 0.013..0.023, had one label each): count the text bands left of the plot area. The labels
// fit in the image: the stage-6a plot's "0.0075" lost its first digits at the left edge.
TEST(Plot, NarrowLogRangeHasSeveralYLabels) {
    for (auto [a, b] : {std::pair{0.012, 0.0045}, std::pair{0.023, 0.013}, std::pair{0.5, 0.48}, std::pair{0.0093, 0.0058}}) {
        std::vector<double> x, y;
        for (int i = 0; i <= 100; ++i) x.push_back(i), y.push_back(a + (b - a) * i / 100.0);
        LinePlotOptions o;
        auto img = render_line_plot(x, y, o);
        auto label_rows = (img[0].slice(1, 0, 62) < 0).any(1);  // left margin, left of the plot area
        int64_t bands = 0;
        for (int64_t r = 60; r < o.height - 50; ++r)
            bands += label_rows[r].item<bool>() && !label_rows[r - 1].item<bool>();
        EXPECT_GE(bands, 3) << a << ".." << b;
        EXPECT_LE(bands, 12) << a << ".." << b;
        EXPECT_EQ(dark(img, 0, 60, 4, o.height - 50), 0) << "a label is cut at the left edge, " << a << ".." << b;
    }
}

TEST(Plot, CliPlotsCsvColumnsAndRejectsBadFiles) {
    auto dir = temp_dir("plot");
    {
        std::ofstream f(dir + "/l.csv");
        f << "step,loss\n1,1.0\n2,0.5\n3,0.25\n";
        std::ofstream g(dir + "/bad.csv");
        g << "step,loss\n1,1.0\n2,abc\n";
    }
    auto r = run_surgeon("plot --csv " + dir + "/l.csv --out " + dir + "/l.png");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(std::filesystem::exists(dir + "/l.png"));
    r = run_surgeon("plot --csv " + dir + "/bad.csv --out " + dir + "/b.png");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("bad.csv:3"), std::string::npos) << r.err;
    r = run_surgeon("plot --csv " + dir + "/l.csv --y lr --out " + dir + "/b.png");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("no column 'lr'"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/b.png"));
}

// Cells by value: with values 1, 10, 100 on a log scale the middle one is the colormap's middle; the max cell is its
// top colour, the min its bottom, NaN is gray with a dark "-"; text is white on dark cells and black on light ones.
TEST(Plot, HeatmapCellsTakeColormapColours) {
    const double nan = std::nan("");
    std::vector<std::vector<double>> v = {{1, nan, 10}, {2, 5, 100}};
    HeatmapOptions o;
    o.title = "error";
    o.x_label = "option";
    o.y_label = "block";
    auto img = render_heatmap(v, {"0", "1"}, {"softmax", "R2", "linear"}, o);
    ASSERT_EQ(img.dim(), 3);
    ASSERT_EQ(img.size(0), 3);
    EXPECT_LE(img.abs().max().item<float>(), 1.0f);
    // The gray NaN cell (0, 1) gives the grid: its box is one cell less the 1-px gap.
    auto [gx0, gy0, gx1, gy1] = bbox(is_colour(img, {0.6f, 0.6f, 0.6f}));
    ASSERT_GE(gx0, 0);
    const int64_t cw = gx1 - gx0 + 2, ch = gy1 - gy0 + 2, x0 = gx0 - cw, y0 = gy0;  // cell (0, 0) at (x0, y0)
    EXPECT_GE(cw, 44);
    EXPECT_EQ(ch, 28);
    EXPECT_GT(dark(img, gx0, gy0, gx1 + 1, gy1 + 1), 0) << "the '-' in the NaN cell";
    // A pixel beside the centre, 3 px in from the left edge: away from the centred text.
    auto at = [&](int64_t i, int64_t j) { return std::pair{x0 + j * cw + 3, y0 + i * ch + (ch - 1) / 2}; };
    auto [mx, my] = at(1, 2);
    EXPECT_TRUE(pixel_is(img, mx, my, viridis(1.0))) << "max cell";
    auto [nx, ny] = at(0, 0);
    EXPECT_TRUE(pixel_is(img, nx, ny, viridis(0.0))) << "min cell";
    auto [ax, ay] = at(0, 2);
    EXPECT_TRUE(pixel_is(img, ax, ay, viridis(0.5))) << "10 is halfway between 1 and 100 on the log scale";
    // Text colours: white on the dark min cell, black on the yellow max cell (inside the cell, not its gap).
    auto cell = [&](int64_t i, int64_t j) { return img.slice(1, y0 + i * ch, y0 + (i + 1) * ch - 1).slice(2, x0 + j * cw, x0 + (j + 1) * cw - 1); };
    EXPECT_GT((cell(0, 0) == 1).all(0).sum().item<int64_t>(), 10);
    EXPECT_GT((cell(1, 2) == -1).all(0).sum().item<int64_t>(), 10);
    EXPECT_EQ((cell(1, 2) == 1).all(0).sum().item<int64_t>(), 0);
    // The colour bar, right of the grid, runs from the top colour down to the bottom one.
    auto bar_top = bbox(is_colour(img, viridis(1.0)).slice(1, x0 + 3 * cw, img.size(2)));
    auto bar_bottom = bbox(is_colour(img, viridis(0.0)).slice(1, x0 + 3 * cw, img.size(2)));
    ASSERT_GE(bar_top[0], 0);
    ASSERT_GE(bar_bottom[0], 0);
    EXPECT_LT(bar_top[3], bar_bottom[1]);
    // Linear scale: 10 is near the bottom of 1..100.
    o.log_scale = false;
    img = render_heatmap(v, {"0", "1"}, {"softmax", "R2", "linear"}, o);
    EXPECT_TRUE(pixel_is(img, ax, ay, viridis(9.0 / 99))) << "linear scale";
    EXPECT_TRUE(pixel_is(img, mx, my, viridis(1.0)));
}

TEST(Plot, HeatmapLogScaleZerosAndFixedCells) {
    // Zeros on a log scale are the lowest colour (the min positive value is too); a negative value switches to linear.
    HeatmapOptions o;
    o.cell_w = 60;
    o.cell_h = 30;
    auto img = render_heatmap({{0, 1, 100}}, {"b0"}, {"a", "b", "c"}, o);
    auto low = bbox(is_colour(img, viridis(0.0)).slice(0, 0, img.size(1) / 2));  // rows above the colour bar's bottom
    ASSERT_GE(low[0], 0);
    EXPECT_EQ(low[2] - low[0] + 1, 2 * 60 - 1) << "cells 0 and 1 both the lowest colour, 1-px gap between";
    EXPECT_EQ(low[3] - low[1] + 1, 30 - 1);
    img = render_heatmap({{-1, 0, 1}}, {"b0"}, {"a", "b", "c"}, o);
    EXPECT_GT(is_colour(img, viridis(0.5)).sum().item<int64_t>(), 100) << "0 halfway on the linear scale";
    // All values equal or all non-finite: no crash.
    EXPECT_NO_THROW(render_heatmap({{3, 3}, {3, 3}}, {"a", "b"}, {"c", "d"}, o));
    EXPECT_NO_THROW(render_heatmap({{std::nan(""), INFINITY}}, {"a"}, {"c", "d"}, o));
}

TEST(Plot, HeatmapRejectsMismatchedInputs) {
    HeatmapOptions o;
    auto one_line = [](const std::string& e) { return !e.empty() && e.find('\n') == std::string::npos; };
    auto e = error_of([&] { render_heatmap({{1, 2}, {3}}, {"a", "b"}, {"x", "y"}, o); });
    EXPECT_TRUE(one_line(e)) << e;
    EXPECT_NE(e.find("row 1 has 1 values"), std::string::npos) << e;
    e = error_of([&] { render_heatmap({{1, 2}, {3, 4}}, {"a"}, {"x", "y"}, o); });
    EXPECT_NE(e.find("1 row labels for 2 rows"), std::string::npos) << e;
    e = error_of([&] { render_heatmap({{1, 2}, {3, 4}}, {"a", "b"}, {"x", "y", "z"}, o); });
    EXPECT_NE(e.find("3 column labels for 2 columns"), std::string::npos) << e;
    EXPECT_TRUE(one_line(error_of([&] { render_heatmap({}, {}, {}, o); })));
}

// A markers-only point lands where the axes put it (explicit ranges make the mapping known); a line series is drawn
// between its points; the legend shows each series' colour in the corner away from the data.
TEST(Plot, SeriesPlotMarkersLinesAndLegend) {
    const std::array<float, 3> red{0.8f, -0.8f, -0.8f}, blue{-0.8f, -0.4f, 0.8f};
    Series a{"knapsack", {0.75, 0.5, 0.9}, {0.2, 0.3, 0.1}, red, false, true};  // unsorted x, markers only
    Series b{"uniform R2", {0.6, 0.95}, {0.15, 0.15}, blue, true, false};        // line only
    SeriesPlotOptions o;
    o.title = "SynthBench score vs attention-FLOPs fraction";
    o.x_min = 0, o.x_max = 1, o.y_min = 0, o.y_max = 1;
    auto img = render_series_plot({a, b}, o);
    ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, o.height, o.width}));
    EXPECT_LE(img.abs().max().item<float>(), 1.0f);
    const auto fr = find_frame(img);
    const int64_t fx0 = fr[0], fy0 = fr[1], fx1 = fr[2], fy1 = fr[3];
    ASSERT_GE(fx0, 0);
    EXPECT_GT(fx1 - fx0, o.width / 2);
    EXPECT_GT(fy1 - fy0, o.height / 2);
    auto X = [&](double x) { return fx0 + std::lround(x * (fx1 - fx0)); };
    auto Y = [&](double y) { return fy1 - std::lround(y * (fy1 - fy0)); };
    // The marker of (0.5, 0.3): a 7x7 square centred there, nothing of that colour just beyond it.
    EXPECT_TRUE(pixel_is(img, X(0.5), Y(0.3), red));
    EXPECT_TRUE(pixel_is(img, X(0.5) - 3, Y(0.3) + 3, red));
    EXPECT_FALSE(pixel_is(img, X(0.5) + 5, Y(0.3), red));
    EXPECT_FALSE(pixel_is(img, (X(0.5) + X(0.75)) / 2, (Y(0.3) + Y(0.2)) / 2, red)) << "markers-only: no line between points";
    // The line of b: horizontal at 0.15 from 0.6 to 0.95, not beyond.
    EXPECT_TRUE(pixel_is(img, X(0.8), Y(0.15), blue));
    EXPECT_FALSE(pixel_is(img, X(0.5), Y(0.15), blue));
    // The data all sit in the lower half, so the legend goes to the upper half: both colours and the dark names.
    auto red_m = is_colour(img, red), blue_m = is_colour(img, blue);
    auto upper = [&](const torch::Tensor& m) { return m.slice(0, fy0, (fy0 + fy1) / 2).sum().item<int64_t>(); };
    EXPECT_GT(upper(red_m), 20) << "legend swatch of the markers-only series";
    EXPECT_GT(upper(blue_m), 20) << "legend swatch of the line series";
    EXPECT_GT(dark(img, fx0 + 2, fy0 + 2, fx1 - 1, (fy0 + fy1) / 2), 100) << "legend names";
    // All three markers whole (not covered by the legend): 3 x 49 pixels in the lower half.
    EXPECT_EQ(red_m.slice(0, (fy0 + fy1) / 2, fy1).sum().item<int64_t>(), 3 * 49);
}

TEST(Plot, SeriesPlotLegendAvoidsTheData) {
    // Rising curves cross the plot from the bottom left to the top right: the legend goes to the empty top left.
    const std::array<float, 3> green{-0.6f, 0.6f, -0.6f}, orange{0.9f, 0.2f, -0.9f};
    std::vector<double> x, y1, y2;
    for (int i = 0; i <= 20; ++i) x.push_back(i / 20.0), y1.push_back(0.2 + 0.7 * i / 20.0), y2.push_back(0.1 + 0.8 * i / 20.0);
    SeriesPlotOptions o;
    o.y_label = "score";
    auto img = render_series_plot({{"teacher", x, y1, green}, {"R4", x, y2, orange}}, o);
    const auto fr = find_frame(img);
    const int64_t fx0 = fr[0], fy0 = fr[1], fx1 = fr[2], fy1 = fr[3];
    ASSERT_GE(fx0, 0);
    const int64_t mx = (fx0 + fx1) / 2, my = (fy0 + fy1) / 2;
    // The legend's names are dark (the orange curve is not; the green one stays out of the corner boxes below).
    EXPECT_GT(dark(img, fx0 + 2, fy0 + 2, fx0 + 200, fy0 + 64), 100) << "legend names top left";
    EXPECT_LT(dark(img, mx, my, fx1 - 1, fy1 - 1), 20) << "nothing dark bottom right";
    auto swatch = [&](const std::array<float, 3>& c) { return is_colour(img, c).slice(0, fy0, fy0 + 64).slice(1, fx0, fx0 + 60).sum().item<int64_t>(); };
    EXPECT_GT(swatch(green), 10) << "legend swatch top left";
    EXPECT_GT(swatch(orange), 10) << "legend swatch top left";
}

TEST(Plot, SeriesPlotLogAxisAndErrors) {
    SeriesPlotOptions o;
    o.log_y = true;
    Series s{"loss", {1, 2, 3, 4}, {1, 0.1, 0, 0.01}, {-1, -0.4f, 0.6f}};  // 0 is skipped on the log axis
    EXPECT_NO_THROW(render_series_plot({s}, o));
    EXPECT_NO_THROW(render_series_plot({}, o));
    EXPECT_NO_THROW(render_series_plot({{"empty", {}, {}, {0, 0, 0}}}, o));
    auto one_line = [](const std::string& e) { return !e.empty() && e.find('\n') == std::string::npos; };
    s.y.pop_back();
    auto e = error_of([&] { render_series_plot({s}, o); });
    EXPECT_TRUE(one_line(e)) << e;
    EXPECT_NE(e.find("'loss' has 4 x values but 3 y values"), std::string::npos) << e;
    s.y.push_back(0.01);
    o.y_min = 0;
    e = error_of([&] { render_series_plot({s}, o); });
    EXPECT_TRUE(one_line(e)) << e;
    EXPECT_NE(e.find("log axis"), std::string::npos) << e;
    o.log_y = false, o.y_min = 2, o.y_max = 1;
    EXPECT_TRUE(one_line(error_of([&] { render_series_plot({s}, o); })));
}

// The report's two figures as PNG files (looked at by eye when these plots change).
TEST(Plot, HeatmapAndSeriesPlotWritePngs) {
    const auto dir = temp_dir("plot_png");
    std::vector<std::vector<double>> v;
    std::vector<std::string> rows;
    for (int i = 0; i < 8; ++i) {
        rows.push_back(std::to_string(i));
        v.push_back({});
        for (int j = 0; j < 5; ++j) v.back().push_back(j == 0 ? 0.0 : std::pow(10.0, -3 + j * 0.6 + 0.5 * std::sin(i * 1.7 + j)));
    }
    v[3][2] = std::nan("");
    HeatmapOptions h;
    h.title = "distillation error per block and option";
    h.x_label = "option";
    h.y_label = "block";
    write_png(dir + "/heatmap.png", render_heatmap(v, rows, {"softmax", "R2", "R4", "R8", "linear"}, h));
    SeriesPlotOptions o;
    o.title = "SynthBench score vs attention-FLOPs fraction";
    o.x_label = "attention-FLOPs fraction";
    o.y_label = "score";
    std::vector<double> fx = {0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0}, k, u;
    for (double f : fx) k.push_back(0.55 + 0.4 * std::sqrt(f)), u.push_back(0.4 + 0.5 * f);
    write_png(dir + "/series.png", render_series_plot({{"knapsack", fx, k, {0.85f, -0.3f, -0.9f}},
                                                       {"uniform R2", fx, u, {-0.9f, -0.2f, 0.7f}},
                                                       {"teacher", {1.0}, {0.96}, {-1, -1, -1}, false, true}},
                                                      o));
    EXPECT_GT(std::filesystem::file_size(dir + "/heatmap.png"), 1000u);
    EXPECT_GT(std::filesystem::file_size(dir + "/series.png"), 1000u);
}
