// Plots: text lands where asked and nowhere else; a falling series is drawn falling; bad CSVs give one line.
#include "core/plot.h"
#include <filesystem>
#include <fstream>

#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;

namespace {
// Pixels darker than mid-grey in channel 0, within [x0, x1) x [y0, y1).
int64_t dark(const torch::Tensor& img, int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
    return (img[0].slice(0, y0, y1).slice(1, x0, x1) < 0).sum().item<int64_t>();
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
