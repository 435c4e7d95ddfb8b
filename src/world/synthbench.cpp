// SynthBench metrics from the video analysis and the spec. Objects are tracked per frame by appearance
// (palette colour, expected area) and continuity (distance to the object's last centroid); with two objects
// both frame-0 assignments are tried and the better one kept, since the prompt names objects only by their
// attributes. Each metric is the mean over objects (and frames) of the checks described below.
#include "world/synthbench.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "world/video_analysis.h"

namespace surgeon::world {
namespace {

double clamp01(double v) { return std::clamp(v, 0.0, 1.0); }

double colour_distance(const Rgb& a, const Rgb& b) {
    double s = 0;
    for (int c = 0; c < 3; ++c) s += (a[c] - b[c]) * (a[c] - b[c]);
    return std::sqrt(s);
}

using Track = std::vector<std::optional<Component>>;  // [T]

// Assigns components to objects frame by frame. `first` fixes frame 0's assignment order (a permutation).
std::vector<Track> track_objects(const VideoAnalysis& a, const WorldSpec& spec, const std::vector<int>& first,
                                 double px_per_unit2) {
    const int K = static_cast<int>(spec.objects.size());
    std::vector<Track> tracks(K, Track(a.frames));
    std::vector<std::optional<std::array<double, 2>>> last(K);
    for (int64_t t = 0; t < a.frames; ++t) {
        const auto& comps = a.components[t];
        const int n = std::min<int>(static_cast<int>(comps.size()), 4);  // the 4 largest candidates
        auto cost = [&](int k, int c) {
            const auto& o = spec.objects[k];
            const auto& m = comps[c];
            double v = colour_distance(m.colour, rgb(o.colour)) / 0.6 +
                       std::abs(std::log(m.area / (shape_area(o.shape, o.size) * px_per_unit2)));
            if (last[k]) v += std::hypot(m.cx - (*last[k])[0], m.cy - (*last[k])[1]) / 0.1;
            return v;
        };
        // Choose distinct candidates (or none, only when there are fewer candidates than objects).
        std::vector<int> best(K, -1);
        double best_cost = 1e300;
        std::vector<int> pick(K, -1);
        const int need = std::min(K, n);
        auto search = [&](auto&& self, int k, double acc, int used) -> void {
            if (k == K) {
                if (used == need && acc < best_cost) best_cost = acc, best = pick;
                return;
            }
            for (int c = -1; c < n; ++c) {
                if (c >= 0 && std::find(pick.begin(), pick.begin() + k, c) != pick.begin() + k) continue;
                if (t == 0 && K == 2 && n >= 2 && c != first[k]) continue;
                pick[k] = c;
                self(self, k + 1, acc + (c >= 0 ? cost(k, c) : 0.0), used + (c >= 0));
            }
            pick[k] = -1;
        };
        search(search, 0, 0.0, 0);
        for (int k = 0; k < K; ++k)
            if (best[k] >= 0) {
                tracks[k][t] = comps[best[k]];
                last[k] = std::array<double, 2>{comps[best[k]].cx, comps[best[k]].cy};
            }
    }
    return tracks;
}

// Mean |second difference| over mean |first difference| of the centroid path (bounces give ~0.45 at most,
// shuffled frames ~1.7); the 0.005 per step keeps still objects' jitter from counting.
double acceleration_ratio(const std::vector<std::array<double, 2>>& c) {
    double acc = 0, vel = 0;
    for (size_t i = 1; i < c.size(); ++i) vel += std::hypot(c[i][0] - c[i - 1][0], c[i][1] - c[i - 1][1]);
    for (size_t i = 2; i < c.size(); ++i)
        acc += std::hypot(c[i][0] - 2 * c[i - 1][0] + c[i - 2][0], c[i][1] - 2 * c[i - 1][1] + c[i - 2][1]);
    return acc / (vel + 0.005 * c.size());
}

enum class Observed { Still, Left, Right, Up, Down, Bouncing, Erratic, Missing };
const char* name(Observed o) {
    static const char* const n[] = {"still", "left", "right", "up", "down", "bouncing", "erratic", "missing"};
    return n[static_cast<int>(o)];
}

struct ObjectScores {
    double colour = 0, shape = 0, motion = 0, consistency = 0;
    nlohmann::json details;
};

ObjectScores score_object(const Track& track, const ObjectSpec& o, double px_per_unit2) {
    ObjectScores s;
    const int64_t T = static_cast<int64_t>(track.size());
    std::vector<std::array<double, 2>> cs;
    std::vector<double> areas;
    std::vector<Rgb> colours;
    std::vector<int> shapes(kNumShapes, 0);
    int colour_ok = 0, colour_hits[kNumColours] = {0};
    double shape_ok = 0, fill_sum = 0;
    const double a_small = shape_area(o.shape, Size::Small) * px_per_unit2;
    const double a_large = shape_area(o.shape, Size::Large) * px_per_unit2;
    for (const auto& c : track) {
        if (!c) continue;
        cs.push_back({c->cx, c->cy});
        areas.push_back(c->area);
        colours.push_back(c->colour);
        const Colour col = classify_colour(c->colour);
        colour_hits[static_cast<int>(col)]++;
        colour_ok += col == o.colour;
        const Shape sh = classify_shape(*c);
        fill_sum += c->fill;
        shapes[static_cast<int>(sh)]++;
        // Size bucket: nearer (in log area) to the expected small or large area of the prompted shape.
        const Size size = std::abs(std::log(c->area / a_small)) < std::abs(std::log(c->area / a_large)) ? Size::Small
                                                                                                          : Size::Large;
        if (sh == o.shape) shape_ok += size == o.size ? 1.0 : 0.5;
    }
    const int64_t n = static_cast<int64_t>(cs.size());
    const double presence = static_cast<double>(n) / T;
    s.details["presence"] = presence;
    if (n == 0) {
        s.details["motion"] = name(Observed::Missing);
        return s;
    }
    // colour: share of frames whose interior mean colour is nearest to the prompted palette colour.
    s.colour = static_cast<double>(colour_ok) / T;
    // shape: share of frames with the prompted shape class (half credit if its size bucket is wrong).
    s.shape = shape_ok / T;
    s.details["colour"] = to_string(static_cast<Colour>(std::max_element(colour_hits, colour_hits + kNumColours) - colour_hits));
    s.details["fill"] = fill_sum / n;  // mean bounding-box fill ratio (diagnostic; the classifier uses templates)
    s.details["shape"] = to_string(static_cast<Shape>(std::max_element(shapes.begin(), shapes.end()) - shapes.begin()));

    // motion: classify the centroid path. Still: it never leaves a 0.05 radius (3 px at 64). Linear: one axis
    // carries > 74% of the path and moves monotonically (net >= 0.7 of its path). Otherwise bouncing when
    // smooth (acceleration ratio < 0.8), else erratic. Speed bucket: net travel for linear motions, path
    // length for bouncing, split at the geometric mean of the slow and fast travel.
    Observed cls = Observed::Erratic;
    double travelled = 0;
    const double rho = acceleration_ratio(cs);
    if (n >= 3) {
        double mx = 0, my = 0;
        for (const auto& c : cs) mx += c[0] / n, my += c[1] / n;
        double spread = 0, px = 0, py = 0, path = 0;
        for (int64_t i = 0; i < n; ++i) {
            spread = std::max(spread, std::hypot(cs[i][0] - mx, cs[i][1] - my));
            if (i > 0) {
                px += std::abs(cs[i][0] - cs[i - 1][0]);
                py += std::abs(cs[i][1] - cs[i - 1][1]);
                path += std::hypot(cs[i][0] - cs[i - 1][0], cs[i][1] - cs[i - 1][1]);
            }
        }
        const double dx = cs.back()[0] - cs.front()[0], dy = cs.back()[1] - cs.front()[1];
        if (spread < 0.05) {
            cls = Observed::Still;
        } else if (px >= py && py < 0.35 * px && std::abs(dx) >= 0.7 * px) {
            cls = dx < 0 ? Observed::Left : Observed::Right;
            travelled = std::abs(dx);
        } else if (py > px && px < 0.35 * py && std::abs(dy) >= 0.7 * py) {
            cls = dy < 0 ? Observed::Up : Observed::Down;
            travelled = std::abs(dy);
        } else if (rho < 0.8) {
            cls = Observed::Bouncing;
            travelled = path;
        }
    }
    const bool bounce = o.motion == Motion::Bouncing;
    const double split = bounce ? std::sqrt(kBounceSlow * kBounceFast) : std::sqrt(kLinearSlow * kLinearFast);
    const Speed observed_speed = travelled >= split ? Speed::Fast : Speed::Slow;
    const bool direction_ok = static_cast<int>(cls) == static_cast<int>(o.motion);
    if (o.motion == Motion::Still) {
        s.motion = direction_ok ? 1.0 : 0.0;
    } else {
        const bool moving = cls != Observed::Still && cls != Observed::Erratic;
        s.motion = 0.5 * direction_ok + 0.5 * (moving && observed_speed == o.speed);
    }
    s.motion *= presence;
    s.details["motion"] = name(cls);
    if (cls != Observed::Still && cls != Observed::Erratic) s.details["speed"] = to_string(observed_speed);
    s.details["travel"] = travelled;
    // Where the object's path starts and ends (normalised centroids): whether the start already fits the prompted
    // direction ("moving left" objects start on the right) is the diagnostic for a sampler whose noise fixes
    // the start before the direction word acts.
    s.details["start"] = {cs.front()[0], cs.front()[1]};
    s.details["end"] = {cs.back()[0], cs.back()[1]};

    // consistency: soft area steady (coefficient of variation, 0 at cv >= 0.3), interior colour steady
    // (mean deviation, 0 at >= 0.15), one shape class throughout, a smooth path (acceleration ratio:
    // full marks <= 0.6, 0 at >= 1.4); all scaled by presence.
    double am = 0, av = 0;
    for (double v : areas) am += v / n;
    for (double v : areas) av += (v - am) * (v - am) / n;
    const double area_steady = clamp01(1.0 - std::sqrt(av) / am / 0.3);
    Rgb cm{0, 0, 0};
    for (const auto& c : colours)
        for (int ch = 0; ch < 3; ++ch) cm[ch] += c[ch] / n;
    double cdev = 0;
    for (const auto& c : colours) cdev += colour_distance(c, cm) / n;
    const double colour_steady = clamp01(1.0 - cdev / 0.15);
    const double shape_steady = static_cast<double>(*std::max_element(shapes.begin(), shapes.end())) / n;
    const double smooth = n >= 3 ? clamp01(1.0 - (rho - 0.6) / 0.8) : 0.0;
    s.consistency = presence * (area_steady + colour_steady + shape_steady + smooth) / 4.0;
    s.details["area_steady"] = area_steady;
    s.details["colour_steady"] = colour_steady;
    s.details["shape_steady"] = shape_steady;
    s.details["smooth"] = smooth;
    return s;
}

}  // namespace

std::vector<std::string> metric_names() { return {"background", "count", "colour", "shape", "motion", "consistency"}; }

BenchScores synthbench(const torch::Tensor& video, const WorldSpec& spec) {
    SURGEON_CHECK(!spec.objects.empty() && spec.objects.size() <= 2, "SynthBench: spec must have 1 or 2 objects, got {}",
                  spec.objects.size());
    SURGEON_CHECK(video.dim() == 4 && video.size(0) == 3 && video.size(1) >= 3,
                  "SynthBench expects a video [3, T, H, W] with T >= 3, got {}", c10::str(video.sizes()));
    const int64_t H = video.size(2), W = video.size(3);
    const double px_per_unit2 = static_cast<double>(std::min(H, W)) * std::min(H, W);
    // Components below 30% of the smallest object (a small triangle: 1.75 * 0.1^2) are noise.
    const int64_t min_pixels = std::max<int64_t>(4, static_cast<int64_t>(0.3 * shape_area(Shape::Triangle, Size::Small) * px_per_unit2));
    // ... and components over 3x the largest object (a large circle, pi 0.17^2 = 9% of the frame) are not objects.
    const int64_t max_pixels = static_cast<int64_t>(3.0 * shape_area(Shape::Circle, Size::Large) * px_per_unit2);
    const VideoAnalysis a = analyse_video(video, min_pixels, max_pixels);
    const int64_t T = a.frames, N = H * W;
    const int K = static_cast<int>(spec.objects.size());
    BenchScores out;

    // background: share of all pixels within 0.15 of the prompted background (rendered from the spec), over
    // the share the objects leave free (their area plus a 1-pixel ring for anti-aliased edges, 4 sqrt(area)).
    {
        const auto v = video.detach().to(torch::kCPU, torch::kFloat32).contiguous();  // [3, T, H, W] in [-1, 1]
        const auto expected = render_background(spec.background, H, W);                // [3, H, W] in [-1, 1]
        const float* pv = v.data_ptr<float>();
        const float* pe = expected.data_ptr<float>();
        int64_t hits = 0;
        for (int64_t t = 0; t < T; ++t)
            for (int64_t p = 0; p < N; ++p) {
                double s = 0;
                for (int ch = 0; ch < 3; ++ch) {
                    const double e = 0.5 * (std::clamp(pv[(ch * T + t) * N + p], -1.0f, 1.0f) - pe[ch * N + p]);
                    s += e * e;
                }
                hits += s < 0.15 * 0.15;
            }
        const double match = static_cast<double>(hits) / (T * N);
        double covered = 0;
        for (const auto& o : spec.objects) {
            const double area = shape_area(o.shape, o.size) * px_per_unit2;
            covered += area + 4.0 * std::sqrt(area);
        }
        out.background = clamp01(match / std::max(0.05, 1.0 - covered / N));
    }
    // count: share of frames with exactly as many components as prompted objects.
    int64_t count_ok = 0;
    for (const auto& comps : a.components) count_ok += static_cast<int>(comps.size()) == K;
    out.count = static_cast<double>(count_ok) / T;

    // Per-object metrics, with the better of the frame-0 assignments when there are two objects.
    std::vector<std::vector<int>> orders = {{0, 1}};
    if (K == 2) orders.push_back({1, 0});
    double best_total = -1;
    std::vector<ObjectScores> best;
    for (const auto& order : orders) {
        const auto tracks = track_objects(a, spec, order, px_per_unit2);
        std::vector<ObjectScores> per;
        double total = 0;
        for (int k = 0; k < K; ++k) {
            per.push_back(score_object(tracks[k], spec.objects[k], px_per_unit2));
            total += per.back().colour + per.back().shape + per.back().motion + per.back().consistency;
        }
        if (total > best_total) best_total = total, best = per;
    }
    double consistency = 0;
    for (const auto& s : best) {
        out.colour += s.colour / K;
        out.shape += s.shape / K;
        out.motion += s.motion / K;
        consistency += s.consistency / K;
        out.details["objects"].push_back(s.details);
    }
    // consistency: the objects' steadiness (4/5) and no flicker on pixels away from objects (1/5): mean
    // |x_t - x_{t-1}| on [0, 1], full marks <= 0.01, 0 at >= 0.06; 0 if nothing of the background is left.
    const double flicker = a.flicker_pixels > 0 ? clamp01(1.0 - (a.flicker - 0.01) / 0.05) : 0.0;
    out.consistency = 0.8 * consistency + 0.2 * flicker;
    out.details["flicker"] = a.flicker;
    out.details["components_per_frame"] = nlohmann::json::array();
    for (const auto& comps : a.components) out.details["components_per_frame"].push_back(comps.size());
    out.score = (out.background + out.count + out.colour + out.shape + out.motion + out.consistency) / 6.0;
    return out;
}

BenchScores mean_scores(const std::vector<BenchScores>& scores) {
    BenchScores m;
    if (scores.empty()) return m;
    const double n = static_cast<double>(scores.size());
    for (const auto& s : scores) {
        m.background += s.background / n;
        m.count += s.count / n;
        m.colour += s.colour / n;
        m.shape += s.shape / n;
        m.motion += s.motion / n;
        m.consistency += s.consistency / n;
        m.score += s.score / n;
    }
    return m;
}

nlohmann::json to_json(const BenchScores& s, bool with_details) {
    nlohmann::json j = {{"score", s.score},
                        {"metrics",
                         {{"background", s.background},
                          {"count", s.count},
                          {"colour", s.colour},
                          {"shape", s.shape},
                          {"motion", s.motion},
                          {"consistency", s.consistency}}}};
    if (with_details) j["details"] = s.details;
    return j;
}

}  // namespace surgeon::world
