#include "core/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stb/stb_easy_font.h>

#include "core/error.h"

namespace surgeon {

int64_t text_width(const std::string& text, int64_t scale) {
    return stb_easy_font_width(const_cast<char*>(text.c_str())) * scale;
}

int64_t draw_text(torch::Tensor& image, int64_t x, int64_t y, const std::string& text, int64_t scale,
                  const std::array<float, 3>& rgb) {
    // stb_easy_font emits axis-aligned quads: 4 vertices of {float x, y, z; uint8 rgba[4]} each.
    std::vector<char> buf(std::max<size_t>(4096, text.size() * 300));
    unsigned char colour[4] = {255, 255, 255, 255};
    const int quads = stb_easy_font_print(0, 0, const_cast<char*>(text.c_str()), colour, buf.data(), static_cast<int>(buf.size()));
    auto a = image.accessor<float, 3>();
    const int64_t H = image.size(1), W = image.size(2);
    for (int q = 0; q < quads; ++q) {
        const float* v = reinterpret_cast<const float*>(buf.data() + q * 64);
        float x0 = v[0], y0 = v[1], x1 = v[0], y1 = v[1];
        for (int k = 1; k < 4; ++k) {
            const float* w = reinterpret_cast<const float*>(buf.data() + q * 64 + k * 16);
            x0 = std::min(x0, w[0]), x1 = std::max(x1, w[0]), y0 = std::min(y0, w[1]), y1 = std::max(y1, w[1]);
        }
        for (int64_t py = y + static_cast<int64_t>(y0 * scale); py < y + static_cast<int64_t>(y1 * scale); ++py)
            for (int64_t px = x + static_cast<int64_t>(x0 * scale); px < x + static_cast<int64_t>(x1 * scale); ++px)
                if (px >= 0 && py >= 0 && px < W && py < H)
                    for (int c = 0; c < 3; ++c) a[c][py][px] = rgb[c];
    }
    return text_width(text, scale);
}

std::array<float, 3> viridis(double t) {
    // viridis at t = k/9 (matplotlib's colormap, the 10-colour palette #440154 ... #FDE725), linearly interpolated.
    static const unsigned char stops[10][3] = {{0x44, 0x01, 0x54}, {0x48, 0x28, 0x78}, {0x3E, 0x4A, 0x89}, {0x31, 0x68, 0x8E},
                                               {0x26, 0x82, 0x8E}, {0x1F, 0x9E, 0x89}, {0x35, 0xB7, 0x79}, {0x6D, 0xCD, 0x59},
                                               {0xB4, 0xDE, 0x2C}, {0xFD, 0xE7, 0x25}};
    if (!(t > 0)) t = 0;  // NaN -> 0
    t = std::min(t, 1.0) * 9;
    const int k = std::min(static_cast<int>(t), 8);
    const double f = t - k;
    std::array<float, 3> c;
    for (int i = 0; i < 3; ++i) c[i] = static_cast<float>(((1 - f) * stops[k][i] + f * stops[k + 1][i]) / 255.0 * 2 - 1);
    return c;
}

namespace {
using RGB = std::array<float, 3>;
const RGB kBlack{-1, -1, -1}, kWhite{1, 1, 1}, kGrid{0.6f, 0.6f, 0.6f};
constexpr int64_t kFontH = 7;  // font units from the top of a capital to its baseline

std::string tick_label(double v) {
    char s[32];
    if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3))
        std::snprintf(s, sizeof s, "%.0e", v);
    else
        std::snprintf(s, sizeof s, "%g", v);
    return s;
}
// A "nice" tick step (1, 2 or 5 x 10^k) giving about `n` intervals over `range`.
double nice_step(double range, int n) {
    const double raw = range / n, p = std::pow(10.0, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 5.0})
        if (m * p >= raw) return m * p;
    return 10 * p;
}
// Multiples of a nice step within [lo, hi] (about n intervals).
std::vector<double> linear_ticks(double lo, double hi, int n) {
    std::vector<double> t;
    const double st = nice_step(hi - lo, n), eps = 1e-9 * st;
    for (int64_t k = static_cast<int64_t>(std::ceil((lo - eps) / st)); k * st <= hi + eps; ++k) t.push_back(k == 0 ? 0.0 : k * st);
    return t;
}

// One axis: its range in axis units (log10 of the value on a log axis) and its ticks in data units.
struct Axis {
    bool log = false;
    double lo = 0, hi = 1;
    std::vector<double> ticks;
    double f(double v) const { return log ? std::log10(v) : v; }
    double frac(double v) const { return (f(v) - lo) / (hi - lo); }
    // Ticks for the current range: log axes at 1/2/5 x 10^k (1 x 10^k past 2.5 decades; linear nice steps under a
    // decade), linear axes at about n nice steps.
    void pick_ticks(int n) {
        ticks.clear();
        if (log && hi - lo < 1.0) {
            ticks = linear_ticks(std::pow(10.0, lo), std::pow(10.0, hi), 8);
        } else if (log) {
            const bool fine = hi - lo < 2.5;
            for (int d = static_cast<int>(std::floor(lo)); d <= static_cast<int>(std::ceil(hi)); ++d)
                for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) ticks.push_back(m * std::pow(10.0, d));
        } else {
            ticks = linear_ticks(lo, hi, n);
        }
        const double eps = 1e-9 * (hi - lo);
        ticks.erase(std::remove_if(ticks.begin(), ticks.end(), [&](double v) { return (log && v <= 0) || f(v) < lo - eps || f(v) > hi + eps; }),
                    ticks.end());
    }
    int64_t label_width(int64_t scale) const {
        int64_t w = 0;
        for (double v : ticks) w = std::max(w, text_width(tick_label(v), scale));
        return w;
    }
};
// An axis over the data range [lo, hi] (axis units), widened to one unit when flat, padded by `pad` of the range.
Axis padded_axis(double lo, double hi, bool log, double pad, int n) {
    Axis a;
    a.log = log;
    if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
    const double p = pad * (hi - lo);
    a.lo = lo - p, a.hi = hi + p;
    a.pick_ticks(n);
    return a;
}

// Pixel writer over a fresh white image; writes outside the clip rectangle (inclusive; the image by default) are
// dropped. While `mark` is on, written pixels are also recorded in `ink` (to place a legend where it covers little).
struct Canvas {
    torch::Tensor img;
    int64_t H, W;
    torch::TensorAccessor<float, 3> a;
    int64_t cx0 = 0, cy0 = 0, cx1, cy1;
    bool mark = false;
    std::vector<uint8_t> ink;
    Canvas(int64_t h, int64_t w)
        : img(torch::ones({3, h, w})), H(h), W(w), a(img.accessor<float, 3>()), cx1(w - 1), cy1(h - 1), ink(h * w, 0) {}
    void px(int64_t x, int64_t y, const RGB& c) {
        if (x < cx0 || y < cy0 || x > cx1 || y > cy1) return;
        for (int k = 0; k < 3; ++k) a[k][y][x] = c[k];
        if (mark) ink[y * W + x] = 1;
    }
    void fill(int64_t x0, int64_t y0, int64_t x1, int64_t y1, const RGB& c) {  // inclusive corners
        for (int64_t y = y0; y <= y1; ++y)
            for (int64_t x = x0; x <= x1; ++x) px(x, y, c);
    }
    void outline(int64_t x0, int64_t y0, int64_t x1, int64_t y1, const RGB& c) {
        for (int64_t x = x0; x <= x1; ++x) px(x, y0, c), px(x, y1, c);
        for (int64_t y = y0; y <= y1; ++y) px(x0, y, c), px(x1, y, c);
    }
    // A segment 3 px wide.
    void line(int64_t ax, int64_t ay, int64_t bx, int64_t by, const RGB& c) {
        const int64_t n = std::max(std::abs(bx - ax), std::abs(by - ay)) + 1;
        for (int64_t k = 0; k <= n; ++k) fill(ax + (bx - ax) * k / n - 1, ay + (by - ay) * k / n - 1, ax + (bx - ax) * k / n + 1, ay + (by - ay) * k / n + 1, c);
    }
    int64_t text(int64_t x, int64_t y, const std::string& s, int64_t scale, const RGB& c) { return draw_text(img, x, y, s, scale, c); }
    int64_t ink_in(int64_t x0, int64_t y0, int64_t x1, int64_t y1) const {
        int64_t n = 0;
        for (int64_t y = std::max<int64_t>(y0, 0); y <= std::min(y1, H - 1); ++y)
            for (int64_t x = std::max<int64_t>(x0, 0); x <= std::min(x1, W - 1); ++x) n += ink[y * W + x];
        return n;
    }
};

// The plot area [x0, x1] x [y0, y1] of an x-y plot, and where values land in it.
struct Frame {
    int64_t x0, y0, x1, y1;
    int64_t X(const Axis& a, double v) const { return x0 + static_cast<int64_t>(std::lround(a.frac(v) * (x1 - x0))); }
    int64_t Y(const Axis& a, double v) const { return y1 - static_cast<int64_t>(std::lround(a.frac(v) * (y1 - y0))); }
};
// Margins of an x-y plot: the left one as wide as the widest y tick label.
Frame plot_frame(int64_t W, int64_t H, const Axis& y_axis, bool have_ticks) {
    const int64_t label_w = have_ticks ? y_axis.label_width(2) : 0;
    return {std::max<int64_t>(70, label_w + 18), 56, W - 20, H - 50};
}
void draw_titles(Canvas& c, const Frame& f, const std::string& title, const std::string& x_label, const std::string& y_label) {
    c.text((c.W - text_width(title, 2)) / 2, 8, title, 2, kBlack);
    c.text((f.x0 + f.x1 - text_width(x_label, 2)) / 2, c.H - 22, x_label, 2, kBlack);
    c.text(6, f.y0 - 18, y_label, 2, kBlack);
}
// Dotted grid lines and tick labels of both axes.
void draw_grid(Canvas& c, const Frame& f, const Axis& xa, const Axis& ya) {
    for (double v : ya.ticks) {
        const int64_t y = f.Y(ya, v);
        for (int64_t x = f.x0; x <= f.x1; x += 3) c.px(x, y, kGrid);
        const std::string s = tick_label(v);
        c.text(f.x0 - 6 - text_width(s, 2), y - 6, s, 2, kBlack);
    }
    for (double v : xa.ticks) {
        const int64_t x = f.X(xa, v);
        for (int64_t y = f.y0; y <= f.y1; y += 3) c.px(x, y, kGrid);
        const std::string s = tick_label(v);
        const int64_t w = text_width(s, 2);
        c.text(std::min(x - w / 2, c.W - 2 - w), f.y1 + 8, s, 2, kBlack);  // the last label kept inside the image
    }
}
void draw_border(Canvas& c, const Frame& f) { c.outline(f.x0, f.y0, f.x1, f.y1, kBlack); }

// sRGB relative luminance of a colour in [-1, 1].
double luminance(const RGB& c) {
    double l = 0;
    const double w[3] = {0.2126, 0.7152, 0.0722};
    for (int k = 0; k < 3; ++k) {
        const double s = (c[k] + 1) / 2;
        l += w[k] * (s <= 0.04045 ? s / 12.92 : std::pow((s + 0.055) / 1.055, 2.4));
    }
    return l;
}
// Black or white, whichever has the higher contrast on `bg`.
RGB text_colour_on(const RGB& bg) {
    const double l = luminance(bg);
    return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? kBlack : kWhite;
}
}  // namespace

torch::Tensor render_line_plot(const std::vector<double>& xs, const std::vector<double>& ys, const LinePlotOptions& o) {
    std::vector<std::pair<double, double>> pts;
    for (size_t i = 0; i < xs.size() && i < ys.size(); ++i)
        if (std::isfinite(xs[i]) && std::isfinite(ys[i]) && (!o.log_y || ys[i] > 0)) pts.push_back({xs[i], ys[i]});
    const bool have = pts.size() >= 2;
    Axis xa, ya;
    ya.log = o.log_y;
    if (have) {
        double lo = 1e300, hi = -1e300;
        for (auto& p : pts) lo = std::min(lo, ya.f(p.second)), hi = std::max(hi, ya.f(p.second));
        ya = padded_axis(lo, hi, o.log_y, 0.03, 6);
        xa.lo = pts.front().first, xa.hi = std::max(pts.back().first, xa.lo + 1);
        xa.pick_ticks(6);
    }
    Canvas c(o.height, o.width);
    const Frame f = plot_frame(o.width, o.height, ya, have);
    draw_titles(c, f, o.title, o.x_label, o.y_label);
    if (have) {
        draw_grid(c, f, xa, ya);
        const RGB colour{-1, -0.4f, 0.6f};
        for (size_t i = 1; i < pts.size(); ++i)
            c.line(f.X(xa, pts[i - 1].first), f.Y(ya, pts[i - 1].second), f.X(xa, pts[i].first), f.Y(ya, pts[i].second), colour);
    }
    draw_border(c, f);
    return c.img;
}

torch::Tensor render_series_plot(const std::vector<Series>& series, const SeriesPlotOptions& o) {
    if (o.width < 200 || o.height < 150) fail("series plot: size {}x{} is too small (at least 200x150)", o.width, o.height);
    for (const auto& s : series)
        if (s.x.size() != s.y.size()) fail("series plot: series '{}' has {} x values but {} y values", s.name, s.x.size(), s.y.size());
    for (auto [v, what] : {std::pair{o.y_min, "y_min"}, std::pair{o.y_max, "y_max"}, std::pair{o.x_min, "x_min"}, std::pair{o.x_max, "x_max"}})
        if (v && !std::isfinite(*v)) fail("series plot: {} is {}, expected a finite number", what, *v);
    if (o.log_y && o.y_min && *o.y_min <= 0) fail("series plot: y_min is {} on a log axis, expected > 0", *o.y_min);
    if (o.log_y && o.y_max && *o.y_max <= 0) fail("series plot: y_max is {} on a log axis, expected > 0", *o.y_max);
    if (o.y_min && o.y_max && *o.y_min >= *o.y_max) fail("series plot: y range [{}, {}] is empty", *o.y_min, *o.y_max);
    if (o.x_min && o.x_max && *o.x_min >= *o.x_max) fail("series plot: x range [{}, {}] is empty", *o.x_min, *o.x_max);

    // The drawable points of each series; lines join them in order of x.
    std::vector<std::vector<std::pair<double, double>>> pts(series.size());
    double xlo = 1e300, xhi = -1e300, ylo = 1e300, yhi = -1e300;
    Axis ya;
    ya.log = o.log_y;
    for (size_t i = 0; i < series.size(); ++i) {
        for (size_t k = 0; k < series[i].x.size(); ++k) {
            const double x = series[i].x[k], y = series[i].y[k];
            if (!std::isfinite(x) || !std::isfinite(y) || (o.log_y && y <= 0)) continue;
            pts[i].push_back({x, y});
            xlo = std::min(xlo, x), xhi = std::max(xhi, x), ylo = std::min(ylo, ya.f(y)), yhi = std::max(yhi, ya.f(y));
        }
        if (series[i].line)
            std::stable_sort(pts[i].begin(), pts[i].end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    }
    const bool have = xlo <= xhi || (o.x_min && o.x_max && o.y_min && o.y_max);
    // Ranges: explicit ends as given, the others from the data with a margin (markers stay off the frame).
    auto range = [](double dlo, double dhi, std::optional<double> lo, std::optional<double> hi, bool log, int n) {
        if (dlo > dhi) dlo = 0, dhi = 1;  // no data
        Axis a = padded_axis(dlo, dhi, log, 0.05, n);
        if (lo) a.lo = a.f(*lo);
        if (hi) a.hi = a.f(*hi);
        if (a.hi <= a.lo) {  // one end given, the data all beyond it
            if (hi)
                a.lo = a.hi - 1;
            else
                a.hi = a.lo + 1;
        }
        a.pick_ticks(n);
        return a;
    };
    const Axis xa = range(xlo, xhi, o.x_min, o.x_max, false, 6);
    ya = range(ylo, yhi, o.y_min, o.y_max, o.log_y, 6);

    Canvas c(o.height, o.width);
    const Frame f = plot_frame(o.width, o.height, ya, have);
    draw_titles(c, f, o.title, o.x_label, o.y_label);
    if (have) draw_grid(c, f, xa, ya);
    // Lines under markers; everything clipped to the plot area.
    c.cx0 = f.x0 + 1, c.cy0 = f.y0 + 1, c.cx1 = f.x1 - 1, c.cy1 = f.y1 - 1;
    c.mark = true;
    for (size_t i = 0; i < series.size(); ++i)
        if (series[i].line)
            for (size_t k = 1; k < pts[i].size(); ++k)
                c.line(f.X(xa, pts[i][k - 1].first), f.Y(ya, pts[i][k - 1].second), f.X(xa, pts[i][k].first), f.Y(ya, pts[i][k].second),
                       series[i].rgb);
    for (size_t i = 0; i < series.size(); ++i)
        if (series[i].markers)
            for (auto& p : pts[i]) {
                const int64_t x = f.X(xa, p.first), y = f.Y(ya, p.second);
                c.fill(x - 3, y - 3, x + 3, y + 3, series[i].rgb);
            }
    c.mark = false;
    c.cx0 = c.cy0 = 0, c.cx1 = c.W - 1, c.cy1 = c.H - 1;
    draw_border(c, f);

    // Legend: a swatch (line and/or marker as drawn) and the name per named series, in the corner covering the least.
    std::vector<size_t> named;
    int64_t name_w = 0;
    for (size_t i = 0; i < series.size(); ++i)
        if (!series[i].name.empty()) named.push_back(i), name_w = std::max(name_w, text_width(series[i].name, 2));
    if (!named.empty()) {
        const int64_t pad = 8, row_h = 22, swatch = 28, lw = pad + swatch + 8 + name_w + pad, lh = pad + static_cast<int64_t>(named.size()) * row_h,
                      m = 8;
        const std::pair<int64_t, int64_t> corners[4] = {
            {f.x1 - m - lw, f.y0 + m}, {f.x0 + m, f.y0 + m}, {f.x1 - m - lw, f.y1 - m - lh}, {f.x0 + m, f.y1 - m - lh}};
        int64_t best = 0, best_ink = std::numeric_limits<int64_t>::max();
        for (int k = 0; k < 4; ++k) {
            const int64_t n = c.ink_in(corners[k].first, corners[k].second, corners[k].first + lw, corners[k].second + lh);
            if (n < best_ink) best_ink = n, best = k;
        }
        const auto [lx, ly] = corners[best];
        c.fill(lx, ly, lx + lw, ly + lh, kWhite);
        c.outline(lx, ly, lx + lw, ly + lh, {0.2f, 0.2f, 0.2f});
        for (size_t r = 0; r < named.size(); ++r) {
            const Series& s = series[named[r]];
            const int64_t cy = ly + pad + static_cast<int64_t>(r) * row_h + kFontH, sx = lx + pad;
            if (s.line) c.fill(sx, cy - 1, sx + swatch - 1, cy + 1, s.rgb);
            if (s.markers || !s.line) c.fill(sx + swatch / 2 - 3, cy - 3, sx + swatch / 2 + 3, cy + 3, s.rgb);
            c.text(sx + swatch + 8, cy - kFontH, s.name, 2, kBlack);
        }
    }
    return c.img;
}

torch::Tensor render_heatmap(const std::vector<std::vector<double>>& values, const std::vector<std::string>& row_labels,
                             const std::vector<std::string>& col_labels, const HeatmapOptions& o) {
    const size_t R = values.size();
    if (R == 0) fail("heatmap: no rows of values");
    const size_t C = values[0].size();
    if (C == 0) fail("heatmap: row 0 has no values");
    for (size_t r = 1; r < R; ++r)
        if (values[r].size() != C) fail("heatmap: row {} has {} values but row 0 has {} (values must be rectangular)", r, values[r].size(), C);
    if (row_labels.size() != R) fail("heatmap: {} row labels for {} rows of values", row_labels.size(), R);
    if (col_labels.size() != C) fail("heatmap: {} column labels for {} columns of values", col_labels.size(), C);
    if (o.cell_w < 0 || o.cell_h < 0) fail("heatmap: cell size {}x{} is negative", o.cell_w, o.cell_h);
    if (o.precision < 1 || o.precision > 17) fail("heatmap: precision {} is outside 1..17", o.precision);

    // Colour scale over the finite values: log10 when asked and none is negative (zeros: the lowest colour).
    double lo = 1e300, hi = -1e300, pos_lo = 1e300;
    bool any_finite = false, any_negative = false;
    for (auto& row : values)
        for (double v : row)
            if (std::isfinite(v)) {
                any_finite = true, any_negative |= v < 0;
                lo = std::min(lo, v), hi = std::max(hi, v);
                if (v > 0) pos_lo = std::min(pos_lo, v);
            }
    const bool log = o.log_scale && any_finite && !any_negative && hi > 0;
    if (log) lo = pos_lo;
    auto t_of = [&](double v) {
        if (log) return v <= 0 ? 0.0 : hi > lo ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : 0.5;
        return hi > lo ? (v - lo) / (hi - lo) : 0.5;
    };
    auto fmt_value = [&](double v) {
        char s[48];
        std::snprintf(s, sizeof s, "%.*g", o.precision, v);
        return std::string(s);
    };

    // Sizes: cells fit the values and column labels at scale 2 (auto), else text drops to scale 1 when it must.
    int64_t value_w = text_width("-", 2), col_w = 0, row_w = text_width(o.y_label, 2);
    for (auto& row : values)
        for (double v : row)
            if (std::isfinite(v)) value_w = std::max(value_w, text_width(fmt_value(v), 2));
    for (auto& s : col_labels) col_w = std::max(col_w, text_width(s, 2));
    for (auto& s : row_labels) row_w = std::max(row_w, text_width(s, 2));
    const int64_t cw = o.cell_w > 0 ? o.cell_w : std::max<int64_t>({44, value_w + 14, std::min<int64_t>(col_w, 200) + 10});
    const int64_t ch = o.cell_h > 0 ? o.cell_h : 28;
    const int64_t value_scale = value_w + 4 <= cw && ch >= 2 * kFontH + 4 ? 2 : 1, col_scale = col_w + 4 <= cw ? 2 : 1;
    const int64_t pad = 10, gx0 = pad + row_w + 10;
    int64_t y = 8;
    const int64_t title_y = y;
    if (!o.title.empty()) y += 28;
    const int64_t xlabel_y = y;
    if (!o.x_label.empty()) y += 24;
    const int64_t collabel_y = y, gy0 = y + 24, gw = static_cast<int64_t>(C) * cw, gh = static_cast<int64_t>(R) * ch;
    const int64_t bar_x0 = gx0 + gw + 16, bar_w = 16, bar_h = std::max<int64_t>(gh, 100);
    const std::string max_s = any_finite ? fmt_value(hi) : "-", min_s = any_finite ? fmt_value(lo) : "-";
    const int64_t bar_label_w = std::max({text_width(max_s, 2), text_width(min_s, 2), log ? text_width("log", 2) - bar_w - 6 : 0});
    const int64_t W = std::max(bar_x0 + bar_w + 6 + bar_label_w + pad, text_width(o.title, 2) + 2 * pad), H = gy0 + bar_h + pad;

    Canvas c(H, W);
    c.text((W - text_width(o.title, 2)) / 2, title_y, o.title, 2, kBlack);
    c.text(gx0 + (gw - text_width(o.x_label, 2)) / 2, xlabel_y, o.x_label, 2, kBlack);
    c.text(pad, collabel_y + 4, o.y_label, 2, kBlack);
    for (size_t j = 0; j < C; ++j)
        c.text(gx0 + static_cast<int64_t>(j) * cw + (cw - 1 - text_width(col_labels[j], col_scale)) / 2, gy0 - 6 - kFontH * col_scale, col_labels[j],
               col_scale, kBlack);
    for (size_t i = 0; i < R; ++i) {
        const int64_t cy0 = gy0 + static_cast<int64_t>(i) * ch, mid = cy0 + (ch - 1) / 2;
        c.text(gx0 - 10 - text_width(row_labels[i], 2), mid - kFontH, row_labels[i], 2, kBlack);
        for (size_t j = 0; j < C; ++j) {
            // Each cell (cw - 1) x (ch - 1) with a 1-px white gap right and below; the value centred.
            const double v = values[i][j];
            const int64_t cx0 = gx0 + static_cast<int64_t>(j) * cw;
            const RGB bg = std::isfinite(v) ? viridis(t_of(v)) : RGB{0.6f, 0.6f, 0.6f};
            c.fill(cx0, cy0, cx0 + cw - 2, cy0 + ch - 2, bg);
            const std::string s = std::isfinite(v) ? fmt_value(v) : "-";
            c.text(cx0 + (cw - 1 - text_width(s, value_scale)) / 2, mid - kFontH * value_scale / 2, s, value_scale, text_colour_on(bg));
        }
    }
    // Colour bar: max at the top, min at the bottom.
    if (any_finite) {
        for (int64_t k = 0; k < bar_h; ++k) c.fill(bar_x0, gy0 + k, bar_x0 + bar_w - 1, gy0 + k, viridis(1.0 - static_cast<double>(k) / (bar_h - 1)));
        c.outline(bar_x0 - 1, gy0 - 1, bar_x0 + bar_w, gy0 + bar_h, kBlack);
        c.text(bar_x0 + bar_w + 6, gy0, max_s, 2, kBlack);
        c.text(bar_x0 + bar_w + 6, gy0 + bar_h - 2 * kFontH, min_s, 2, kBlack);
        if (log) c.text(bar_x0, collabel_y + 4, "log", 2, kBlack);
    }
    return c.img;
}

}  // namespace surgeon
