// Background estimation, foreground segmentation, connected components and per-component features.
// Plain loops over CPU float32 (a 16x64x64 clip is 65k pixels; this runs in about a millisecond).
#include "world/video_analysis.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "core/error.h"

namespace surgeon::world {
namespace {

// Soft IoU between a binary mask (pixel indices `core` of a W-wide frame of H rows) and the template of
// `shape` with the same area, centred so that its centroid is (mx, my) (pixel units, pixel centres at +0.5).
// Template coverage as render draws it (pixel_coverage); pixels outside the frame do not count.
double template_iou(Shape shape, const std::vector<int64_t>& core, double mx, double my, int64_t H, int64_t W) {
    const double A = static_cast<double>(core.size());
    const double r2_factor = shape_area(shape, Size::Small) / (kSmallRadius * kSmallRadius);  // area / R^2
    const double R = std::sqrt(A / r2_factor);
    const double cx = mx, cy = shape == Shape::Triangle ? my - R / 6.0 : my;
    int64_t i0 = static_cast<int64_t>(std::floor(cy - R)) - 1, i1 = static_cast<int64_t>(std::ceil(cy + R)) + 1;
    int64_t j0 = static_cast<int64_t>(std::floor(cx - R)) - 1, j1 = static_cast<int64_t>(std::ceil(cx + R)) + 1;
    for (int64_t p : core) i0 = std::min(i0, p / W), i1 = std::max(i1, p / W), j0 = std::min(j0, p % W), j1 = std::max(j1, p % W);
    i0 = std::max<int64_t>(i0, 0), j0 = std::max<int64_t>(j0, 0), i1 = std::min(i1, H - 1), j1 = std::min(j1, W - 1);
    const int64_t bw = j1 - j0 + 1;
    std::vector<uint8_t> m(static_cast<size_t>((i1 - i0 + 1) * bw), 0);
    for (int64_t p : core) m[static_cast<size_t>((p / W - i0) * bw + (p % W - j0))] = 1;
    double inter = 0, uni = 0;
    for (int64_t i = i0; i <= i1; ++i)
        for (int64_t j = j0; j <= j1; ++j) {
            const double cov = pixel_coverage(shape, i, j, cx, cy, R), in = m[static_cast<size_t>((i - i0) * bw + (j - j0))];
            inter += std::min(cov, in), uni += std::max(cov, in);
        }
    return uni > 0 ? inter / uni : 0.0;
}

// Solves the 3x3 system A x = b by Gaussian elimination with partial pivoting; false if singular.
bool solve3(double A[3][3], double b[3], double x[3]) {
    for (int c = 0; c < 3; ++c) {
        int piv = c;
        for (int r = c + 1; r < 3; ++r)
            if (std::abs(A[r][c]) > std::abs(A[piv][c])) piv = r;
        if (std::abs(A[piv][c]) < 1e-12) return false;
        std::swap(A[c], A[piv]);
        std::swap(b[c], b[piv]);
        for (int r = c + 1; r < 3; ++r) {
            const double f = A[r][c] / A[c][c];
            for (int k = c; k < 3; ++k) A[r][k] -= f * A[c][k];
            b[r] -= f * b[c];
        }
    }
    for (int c = 2; c >= 0; --c) {
        double s = b[c];
        for (int k = c + 1; k < 3; ++k) s -= A[c][k] * x[k];
        x[c] = s / A[c][c];
    }
    return true;
}

// Robust plane fit c(x, y) = a + b (x - 0.5) + d (y - 0.5) per channel of `img` [3, H, W]: 8 iterations of
// reweighted least squares with w = 1 / max(residual, 0.02) (an L1 fit, robust to the < 50% of pixels that
// still objects cover), then 2 trimmed least-squares passes on pixels within 0.12.
std::vector<float> fit_background(const float* img, int64_t H, int64_t W) {
    const int64_t N = H * W;
    std::vector<double> w(N, 1.0), res(N, 0.0);
    double coef[3][3] = {{0}};
    auto fit = [&]() {
        double A[3][3] = {{0}}, bs[3][3] = {{0}};
        for (int64_t i = 0; i < H; ++i)
            for (int64_t j = 0; j < W; ++j) {
                const int64_t p = i * W + j;
                const double f[3] = {1.0, (j + 0.5) / W - 0.5, (i + 0.5) / H - 0.5};
                for (int r = 0; r < 3; ++r) {
                    for (int c = 0; c < 3; ++c) A[r][c] += w[p] * f[r] * f[c];
                    for (int ch = 0; ch < 3; ++ch) bs[ch][r] += w[p] * f[r] * img[ch * N + p];
                }
            }
        for (int ch = 0; ch < 3; ++ch) {
            double Ac[3][3], b[3] = {bs[ch][0], bs[ch][1], bs[ch][2]}, x[3];
            std::copy(&A[0][0], &A[0][0] + 9, &Ac[0][0]);
            if (!solve3(Ac, b, x)) return false;
            std::copy(x, x + 3, coef[ch]);
        }
        for (int64_t i = 0; i < H; ++i)
            for (int64_t j = 0; j < W; ++j) {
                const int64_t p = i * W + j;
                const double u = (j + 0.5) / W - 0.5, v = (i + 0.5) / H - 0.5;
                double s = 0;
                for (int ch = 0; ch < 3; ++ch) {
                    const double e = img[ch * N + p] - (coef[ch][0] + coef[ch][1] * u + coef[ch][2] * v);
                    s += e * e;
                }
                res[p] = std::sqrt(s);
            }
        return true;
    };
    for (int it = 0; it < 10; ++it) {
        if (!fit()) break;
        int64_t kept = 0;
        for (int64_t p = 0; p < N; ++p) {
            w[p] = it < 7 ? 1.0 / std::max(res[p], 0.02) : (res[p] < 0.12 ? 1.0 : 0.0);
            kept += w[p] > 0;
        }
        if (kept < N / 10) break;  // nothing plane-like: keep the last fit
    }
    std::vector<float> out(3 * N);
    for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j) {
            const double u = (j + 0.5) / W - 0.5, v = (i + 0.5) / H - 0.5;
            for (int ch = 0; ch < 3; ++ch)
                out[ch * N + i * W + j] = static_cast<float>(coef[ch][0] + coef[ch][1] * u + coef[ch][2] * v);
        }
    return out;
}

}  // namespace

Colour classify_colour(const Rgb& c) {
    int best = 0;
    double best_d = 1e30;
    for (int k = 0; k < kNumColours; ++k) {
        const Rgb p = rgb(static_cast<Colour>(k));
        const double d = (c[0] - p[0]) * (c[0] - p[0]) + (c[1] - p[1]) * (c[1] - p[1]) + (c[2] - p[2]) * (c[2] - p[2]);
        if (d < best_d) best_d = d, best = k;
    }
    return static_cast<Colour>(best);
}

Shape classify_shape(const Component& c) {
    // Template matching, not bounding-box ratios: a faint halo or a two-pixel bump stretches a box (a drawn
    // square's fill ratio fell from 1.0 to 0.82 that way) but moves an IoU by a few per cent. Equal-area
    // templates of different shapes overlap by at most ~0.85, a rendered shape matches its own by > 0.9.
    return static_cast<Shape>(std::max_element(c.shape_iou.begin(), c.shape_iou.end()) - c.shape_iou.begin());
}

namespace {

// A clip [3, T, H, W] float32 in [0, 1], read as planes of N = H * W pixels.
struct Clip {
    const float* px;
    int64_t T, H, W, N;
    float at(int ch, int64_t t, int64_t p) const { return px[(ch * T + t) * N + p]; }
};

// Per-pixel temporal (lower) median [3, N], as torch::median would give, in plain loops: no thread pool here.
std::vector<float> temporal_median(const Clip& v) {
    std::vector<float> median(3 * v.N), column(v.T);
    for (int ch = 0; ch < 3; ++ch)
        for (int64_t p = 0; p < v.N; ++p) {
            for (int64_t t = 0; t < v.T; ++t) column[t] = v.at(ch, t, p);
            std::nth_element(column.begin(), column.begin() + (v.T - 1) / 2, column.end());
            median[ch * v.N + p] = column[(v.T - 1) / 2];
        }
    return median;
}

// RGB distance of every pixel of frame t to the background [3, N].
void background_distance(const Clip& v, const std::vector<float>& bg, int64_t t, std::vector<float>& dist) {
    for (int64_t p = 0; p < v.N; ++p) {
        double s = 0;
        for (int ch = 0; ch < 3; ++ch) {
            const double e = v.at(ch, t, p) - bg[ch * v.N + p];
            s += e * e;
        }
        dist[p] = static_cast<float>(std::sqrt(s));
    }
}

// Flood fill (4-connected) of the foreground from `seed`, labelling with `label`; the pixels in `members`.
void flood_fill(const Clip& v, const std::vector<float>& dist, int64_t seed, int32_t label, std::vector<int32_t>& lab,
                std::vector<int64_t>& members, std::vector<int64_t>& stack) {
    members.clear();
    stack.assign(1, seed);
    lab[seed] = label;
    while (!stack.empty()) {
        const int64_t p = stack.back();
        stack.pop_back();
        members.push_back(p);
        const int64_t i = p / v.W, j = p % v.W;
        const int64_t nb[4] = {i > 0 ? p - v.W : -1, i + 1 < v.H ? p + v.W : -1, j > 0 ? p - 1 : -1,
                               j + 1 < v.W ? p + 1 : -1};
        for (int64_t q : nb)
            if (q >= 0 && lab[q] == 0 && dist[q] > kForegroundDistance) {
                lab[q] = label;
                stack.push_back(q);
            }
    }
}

// One labelled component of frame t: its pixels, their distances and labels, and its bounding box.
struct ComponentPixels {
    const std::vector<int64_t>& members;
    const std::vector<float>& dist;
    const std::vector<int32_t>& lab;
    int32_t me;
    int64_t i0, i1, j0, j1;
};

// Box fill, top fraction and mean colour (of the interior pixels, or of all when none is interior).
void measure_box_and_colour(const Clip& v, int64_t t, const ComponentPixels& cp, Component& c) {
    const int64_t H = v.H, W = v.W;
    const auto& lab = cp.lab;
    c.fill = static_cast<double>(c.pixels) / ((cp.i1 - cp.i0 + 1) * (cp.j1 - cp.j0 + 1));
    const double mid2 = static_cast<double>(cp.i0 + cp.i1 + 1);  // twice the box's middle row coordinate
    double top = 0, csum[3] = {0, 0, 0};
    int64_t n_interior = 0;
    for (int64_t p : cp.members) {
        const double y2 = 2.0 * (p / W) + 1.0;
        top += y2 < mid2 ? 1.0 : (y2 == mid2 ? 0.5 : 0.0);
        const int64_t i = p / W, j = p % W;
        const bool interior = i > 0 && i + 1 < H && j > 0 && j + 1 < W && lab[p - W] == cp.me &&
                              lab[p + W] == cp.me && lab[p - 1] == cp.me && lab[p + 1] == cp.me;
        if (interior) {
            for (int ch = 0; ch < 3; ++ch) csum[ch] += v.at(ch, t, p);
            ++n_interior;
        }
    }
    c.top_fraction = top / c.pixels;
    if (n_interior == 0) {
        for (int64_t p : cp.members)
            for (int ch = 0; ch < 3; ++ch) csum[ch] += v.at(ch, t, p);
        n_interior = c.pixels;
    }
    for (int ch = 0; ch < 3; ++ch) c.colour[ch] = static_cast<float>(csum[ch] / n_interior);
}

// Shape evidence from the half-coverage core (a faint halo or blur ring does not count); `ref` is the
// component's full-coverage contrast.
void measure_shape(const Clip& v, const ComponentPixels& cp, double ref, Component& c) {
    std::vector<int64_t> core;
    for (int64_t p : cp.members)
        if (cp.dist[p] >= 0.5 * ref) core.push_back(p);
    if (core.empty()) core = cp.members;
    double mx = 0, my = 0;
    for (int64_t p : core) mx += (p % v.W) + 0.5, my += (p / v.W) + 0.5;
    mx /= static_cast<double>(core.size()), my /= static_cast<double>(core.size());
    for (int k = 0; k < kNumShapes; ++k) c.shape_iou[k] = template_iou(static_cast<Shape>(k), core, mx, my, v.H, v.W);
}

// Soft area and centroid: coverage min(1, dist / ref) over the component and its 1-pixel ring of background
// pixels (exact sub-pixel centroids for smooth edges).
void measure_soft_area(const Clip& v, const ComponentPixels& cp, double ref, Component& c) {
    const int64_t H = v.H, W = v.W;
    double wsum = 0, xs = 0, ys = 0;
    auto add = [&](int64_t p) {
        const double wgt = std::min(1.0, cp.dist[p] / ref);
        wsum += wgt, xs += wgt * ((p % W) + 0.5), ys += wgt * ((p / W) + 0.5);
    };
    for (int64_t p : cp.members) add(p);
    for (int64_t i = std::max<int64_t>(0, cp.i0 - 1); i <= std::min(H - 1, cp.i1 + 1); ++i)
        for (int64_t j = std::max<int64_t>(0, cp.j0 - 1); j <= std::min(W - 1, cp.j1 + 1); ++j) {
            const int64_t p = i * W + j;
            if (cp.lab[p] != 0) continue;
            bool ring = false;
            for (int64_t di = -1; di <= 1 && !ring; ++di)
                for (int64_t dj = -1; dj <= 1 && !ring; ++dj) {
                    const int64_t ii = i + di, jj = j + dj;
                    ring = ii >= 0 && ii < H && jj >= 0 && jj < W && cp.lab[ii * W + jj] == cp.me;
                }
            if (ring) add(p);
        }
    c.area = wsum;
    c.cx = xs / wsum / W;
    c.cy = ys / wsum / H;
}

// Every feature of one component (label `me` in `lab`) of frame t.
Component measure_component(const Clip& v, int64_t t, const std::vector<int64_t>& members, const std::vector<float>& dist,
                            const std::vector<int32_t>& lab, int32_t me) {
    Component c;
    c.pixels = static_cast<int64_t>(members.size());
    int64_t i0 = v.H, i1 = -1, j0 = v.W, j1 = -1;
    std::vector<float> ds;
    for (int64_t p : members) {
        i0 = std::min(i0, p / v.W), i1 = std::max(i1, p / v.W);
        j0 = std::min(j0, p % v.W), j1 = std::max(j1, p % v.W);
        ds.push_back(dist[p]);
    }
    const ComponentPixels cp{members, dist, lab, me, i0, i1, j0, j1};
    measure_box_and_colour(v, t, cp, c);
    // Soft coverage: distance relative to the component's 75th-percentile distance (its full-coverage contrast).
    std::nth_element(ds.begin(), ds.begin() + ds.size() * 3 / 4, ds.end());
    const double ref = std::max<double>(ds[ds.size() * 3 / 4], kForegroundDistance);
    measure_shape(v, cp, ref, c);
    measure_soft_area(v, cp, ref, c);
    return c;
}

// Labels frame t (0 background, -1 dropped, k > 0 object) and returns its components, area descending.
std::vector<Component> segment_frame(const Clip& v, const std::vector<float>& bg, int64_t t, int64_t min_pixels,
                                     int64_t max_pixels, std::vector<int32_t>& lab) {
    std::vector<float> dist(v.N);
    background_distance(v, bg, t, dist);
    std::vector<int64_t> stack, members;
    std::vector<Component> out;
    int32_t next_label = 1;
    for (int64_t seed = 0; seed < v.N; ++seed) {
        if (lab[seed] != 0 || dist[seed] <= kForegroundDistance) continue;
        flood_fill(v, dist, seed, next_label, lab, members, stack);
        if (static_cast<int64_t>(members.size()) < min_pixels || static_cast<int64_t>(members.size()) > max_pixels) {
            for (int64_t p : members) lab[p] = -1;
            continue;
        }
        const int32_t me = next_label++;
        out.push_back(measure_component(v, t, members, dist, lab, me));
    }
    std::sort(out.begin(), out.end(), [](const Component& l, const Component& r) { return l.area > r.area; });
    return out;
}

// Flicker: mean |x_t - x_{t-1}| over pixels with no component within 1 pixel in frames t-1 and t; the count.
std::pair<double, int64_t> measure_flicker(const Clip& v, const std::vector<std::vector<int32_t>>& labels) {
    const int64_t H = v.H, W = v.W;
    auto near_object = [&](int64_t t, int64_t p) {
        const int64_t i = p / W, j = p % W;
        for (int64_t di = -1; di <= 1; ++di)
            for (int64_t dj = -1; dj <= 1; ++dj) {
                const int64_t ii = i + di, jj = j + dj;
                if (ii >= 0 && ii < H && jj >= 0 && jj < W && labels[t][ii * W + jj] > 0) return true;
            }
        return false;
    };
    double fsum = 0;
    int64_t fcount = 0;
    for (int64_t t = 1; t < v.T; ++t)
        for (int64_t p = 0; p < v.N; ++p) {
            if (near_object(t, p) || near_object(t - 1, p)) continue;
            for (int ch = 0; ch < 3; ++ch) fsum += std::abs(v.at(ch, t, p) - v.at(ch, t - 1, p)) / 3.0;
            ++fcount;
        }
    return {fcount ? fsum / fcount : 0.0, fcount};
}

}  // namespace

VideoAnalysis analyse_video(const torch::Tensor& video, int64_t min_pixels, int64_t max_pixels) {
    SURGEON_CHECK(video.dim() == 4 && video.size(0) == 3, "SynthBench expects a video [3, T, H, W], got {}",
                  c10::str(video.sizes()));
    VideoAnalysis a;
    const int64_t T = a.frames = video.size(1), H = a.height = video.size(2), W = a.width = video.size(3);
    SURGEON_CHECK(H >= 16 && W >= 16, "SynthBench needs frames of at least 16x16, got {}x{}", H, W);
    auto x = ((video.detach().to(torch::kCPU, torch::kFloat32) + 1) * 0.5).clamp(0, 1).contiguous();  // [3, T, H, W]
    const Clip v{x.data_ptr<float>(), T, H, W, H * W};
    auto median = temporal_median(v);
    auto bg = fit_background(median.data(), H, W);
    a.background = torch::from_blob(bg.data(), {3, H, W}, torch::kFloat32).clone();  // [3, H, W]
    std::vector<std::vector<int32_t>> labels(T, std::vector<int32_t>(v.N, 0));  // 0 bg, -1 dropped, k > 0 object
    a.components.resize(T);
    for (int64_t t = 0; t < T; ++t) a.components[t] = segment_frame(v, bg, t, min_pixels, max_pixels, labels[t]);
    std::tie(a.flicker, a.flicker_pixels) = measure_flicker(v, labels);
    return a;
}

}  // namespace surgeon::world
