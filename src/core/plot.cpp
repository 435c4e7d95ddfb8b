#include "core/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stb/stb_easy_font.h>

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

namespace {
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
}  // namespace

torch::Tensor render_line_plot(const std::vector<double>& xs, const std::vector<double>& ys, const LinePlotOptions& o) {
    std::vector<std::pair<double, double>> pts;
    for (size_t i = 0; i < xs.size() && i < ys.size(); ++i)
        if (std::isfinite(xs[i]) && std::isfinite(ys[i]) && (!o.log_y || ys[i] > 0)) pts.push_back({xs[i], ys[i]});
    // y range and ticks first: the left margin is as wide as the widest tick label.
    auto fy = [&](double v) { return o.log_y ? std::log10(v) : v; };
    double lo = 1e300, hi = -1e300;
    std::vector<double> yt;
    int64_t label_w = 0;
    if (pts.size() >= 2) {
        for (auto& p : pts) lo = std::min(lo, fy(p.second)), hi = std::max(hi, fy(p.second));
        if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
        const double pad = 0.03 * (hi - lo);
        lo -= pad, hi += pad;
        if (o.log_y) {
            if (hi - lo < 1.0) {
                // Under a decade: linear "nice" steps between the end values (0.013..0.023 -> 0.014, 0.016, ...).
                const double vlo = std::pow(10.0, lo), vhi = std::pow(10.0, hi), st = nice_step(vhi - vlo, 8);
                for (int64_t k = static_cast<int64_t>(std::ceil(vlo / st)); k * st <= vhi; ++k) yt.push_back(k * st);
            } else {
                const bool fine = hi - lo < 2.5;
                for (int d = static_cast<int>(std::floor(lo)); d <= static_cast<int>(std::ceil(hi)); ++d)
                    for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) yt.push_back(m * std::pow(10.0, d));
            }
        } else {
            const double st = nice_step(hi - lo, 6);
            for (double v = std::ceil(lo / st) * st; v <= hi; v += st) yt.push_back(v);
        }
        yt.erase(std::remove_if(yt.begin(), yt.end(), [&](double v) { return fy(v) < lo || fy(v) > hi; }), yt.end());
        for (double v : yt) label_w = std::max(label_w, text_width(tick_label(v), 2));
    }
    const int64_t H = o.height, W = o.width, left = std::max<int64_t>(70, label_w + 18), right = 20, top = 56, bottom = 50;
    auto img = torch::ones({3, H, W});
    auto a = img.accessor<float, 3>();
    auto px = [&](int64_t x, int64_t y, std::array<float, 3> c) {
        if (x < 0 || y < 0 || x >= W || y >= H) return;
        for (int k = 0; k < 3; ++k) a[k][y][x] = c[k];
    };
    const std::array<float, 3> black{-1, -1, -1}, grid{0.6f, 0.6f, 0.6f}, line{-1, -0.4f, 0.6f};
    const int64_t x0 = left, x1 = W - right, y0 = top, y1 = H - bottom;  // plot area [x0, x1] x [y0, y1]
    draw_text(img, (W - text_width(o.title, 2)) / 2, 8, o.title, 2, black);
    draw_text(img, (x0 + x1 - text_width(o.x_label, 2)) / 2, H - 22, o.x_label, 2, black);
    draw_text(img, 6, y0 - 18, o.y_label, 2, black);

    if (pts.size() >= 2) {
        const double sx0 = pts.front().first, sx1 = std::max(pts.back().first, sx0 + 1);
        auto X = [&](double v) { return x0 + static_cast<int64_t>(std::lround((v - sx0) / (sx1 - sx0) * (x1 - x0))); };
        auto Y = [&](double v) { return y1 - static_cast<int64_t>(std::lround((fy(v) - lo) / (hi - lo) * (y1 - y0))); };
        // y grid + labels
        for (double v : yt) {
            const int64_t y = Y(v);
            for (int64_t x = x0; x <= x1; x += 3) px(x, y, grid);
            const std::string s = tick_label(v);
            draw_text(img, x0 - 6 - text_width(s, 2), y - 6, s, 2, black);
        }
        // x grid + labels
        const double st = nice_step(sx1 - sx0, 6);
        for (double v = std::ceil(sx0 / st) * st; v <= sx1 + 1e-9; v += st) {
            const int64_t x = X(v);
            for (int64_t y = y0; y <= y1; y += 3) px(x, y, grid);
            const std::string s = tick_label(v);
            draw_text(img, x - text_width(s, 2) / 2, y1 + 8, s, 2, black);
        }
        // the series, 3 px wide
        for (size_t i = 1; i < pts.size(); ++i) {
            const int64_t ax = X(pts[i - 1].first), ay = Y(pts[i - 1].second), bx = X(pts[i].first), by = Y(pts[i].second);
            const int64_t n = std::max(std::abs(bx - ax), std::abs(by - ay)) + 1;
            for (int64_t k = 0; k <= n; ++k)
                for (int64_t d = -1; d <= 1; ++d) px(ax + (bx - ax) * k / n, ay + (by - ay) * k / n + d, line);
        }
    }
    for (int64_t x = x0; x <= x1; ++x) px(x, y1, black), px(x, y0, black);
    for (int64_t y = y0; y <= y1; ++y) px(x0, y, black), px(x1, y, black);
    return img;
}

}  // namespace surgeon
