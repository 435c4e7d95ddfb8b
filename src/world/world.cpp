// The synthetic world: palettes and names, deterministic spec sampling (with non-overlap rejection), and the
// supersampled renderer. Sampling uses only SplitMix64 and basic double arithmetic (no libm calls) so that
// specs are bit-identical everywhere.
#include "world/world.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace surgeon::world {
namespace {

const char* const kShapeNames[] = {"circle", "square", "triangle", "diamond"};
const char* const kColourNames[] = {"red", "green", "blue", "yellow", "cyan", "magenta", "white", "orange"};
const char* const kSizeNames[] = {"small", "large"};
const char* const kMotionNames[] = {"still", "left", "right", "up", "down", "bouncing"};
const char* const kSpeedNames[] = {"slow", "fast"};
const char* const kKindNames[] = {"solid", "horizontal", "vertical"};
const char* const kBackgroundNames[] = {"black", "gray", "navy", "maroon", "teal", "purple", "olive"};

const Rgb kColourRgb[] = {
    {0.92f, 0.12f, 0.12f},  // red
    {0.15f, 0.80f, 0.20f},  // green
    {0.15f, 0.30f, 0.95f},  // blue
    {0.95f, 0.90f, 0.15f},  // yellow
    {0.15f, 0.90f, 0.90f},  // cyan
    {0.90f, 0.20f, 0.85f},  // magenta
    {0.97f, 0.97f, 0.97f},  // white
    {1.00f, 0.55f, 0.05f},  // orange
};
const Rgb kBackgroundRgb[] = {
    {0.06f, 0.06f, 0.06f},  // black
    {0.50f, 0.50f, 0.50f},  // gray
    {0.08f, 0.10f, 0.42f},  // navy
    {0.42f, 0.08f, 0.10f},  // maroon
    {0.06f, 0.38f, 0.40f},  // teal
    {0.36f, 0.10f, 0.42f},  // purple
    {0.38f, 0.38f, 0.06f},  // olive
};

template <typename E, size_t N>
E parse_name(const char* const (&names)[N], const std::string& s, const char* what) {
    for (size_t i = 0; i < N; ++i)
        if (s == names[i]) return static_cast<E>(i);
    std::string all;
    for (size_t i = 0; i < N; ++i) all += (i ? ", " : "") + std::string(names[i]);
    fail("unknown {} '{}' (expected one of: {})", what, s, all);
}

// Reflects p into [lo, hi] (a triangle wave): the position of a ball bouncing between two walls.
double fold(double p, double lo, double hi) {
    const double len = hi - lo;
    if (len <= 0) return 0.5 * (lo + hi);
    double u = p - lo;
    const double period = 2 * len;
    u = u - period * std::floor(u / period);
    return lo + (u <= len ? u : period - u);
}

// Number of wall reflections of the unfolded 1-D path p0 + d * t for t in (a, b).
bool reflects_between(double p0, double d, double lo, double hi, double a, double b) {
    const double len = hi - lo;
    auto cell = [&](double t) { return std::floor((p0 + d * t - lo) / len); };
    return cell(a) != cell(b);
}

// Circumradius of the shape's outline relative to r (corners of square/triangle stick out beyond r).
double circumradius(Shape s) {
    switch (s) {
        case Shape::Circle: return 1.0;
        case Shape::Diamond: return 1.0;
        case Shape::Square: return 1.21;    // 0.85 * sqrt(2)
        case Shape::Triangle: return 1.25;  // corner at (r, 0.75 r)
    }
    return 1.25;
}

// Draws start position and displacement for the object's motion. Returns false if a bouncing object
// would not reflect within t in [0.15, 0.85] (then the caller draws again, so bounces are visible).
bool place(ObjectSpec& o, SplitMix64& rng) {
    const double r = radius(o.size), lo = r, hi = 1.0 - r;
    const double d = travel(o.motion, o.speed);
    o.dx = o.dy = 0.0;
    o.x0 = rng.uniform(lo, hi);
    o.y0 = rng.uniform(lo, hi);
    switch (o.motion) {
        case Motion::Still: return true;
        case Motion::Left: o.x0 = rng.uniform(lo + d, hi); o.dx = -d; return true;
        case Motion::Right: o.x0 = rng.uniform(lo, hi - d); o.dx = d; return true;
        case Motion::Up: o.y0 = rng.uniform(lo + d, hi); o.dy = -d; return true;
        case Motion::Down: o.y0 = rng.uniform(lo, hi - d); o.dy = d; return true;
        case Motion::Bouncing: {
            // Direction between 30 and 60 degrees off the axes: cos/sin from a rational parametrisation
            // (no libm, so identical everywhere): (1 - m^2, 2m) / (1 + m^2) with m in [tan 15, tan 30].
            const double m = rng.uniform(0.2679, 0.5774);
            double c = (1 - m * m) / (1 + m * m), s = 2 * m / (1 + m * m);
            if (rng.coin()) std::swap(c, s);
            o.dx = (rng.coin() ? d : -d) * c;
            o.dy = (rng.coin() ? d : -d) * s;
            return reflects_between(o.x0, o.dx, lo, hi, 0.15, 0.85) ||
                   reflects_between(o.y0, o.dy, lo, hi, 0.15, 0.85);
        }
    }
    return true;
}

// True if the two objects keep a gap of >= 0.05 (normalised) between their circumcircles all clip long.
bool separated(const ObjectSpec& a, const ObjectSpec& b) {
    const double min_dist = circumradius(a.shape) * radius(a.size) + circumradius(b.shape) * radius(b.size) + 0.05;
    for (int i = 0; i <= 128; ++i) {
        const double t = i / 128.0;
        const auto pa = object_position(a, t), pb = object_position(b, t);
        const double ex = pa[0] - pb[0], ey = pa[1] - pb[1];
        if (ex * ex + ey * ey < min_dist * min_dist) return false;
    }
    return true;
}

ObjectSpec draw_object(SplitMix64& rng) {
    ObjectSpec o;
    o.shape = static_cast<Shape>(rng.index(kNumShapes));
    o.colour = static_cast<Colour>(rng.index(kNumColours));
    o.size = static_cast<Size>(rng.index(kNumSizes));
    o.motion = static_cast<Motion>(rng.index(kNumMotions));
    o.speed = static_cast<Speed>(rng.index(kNumSpeeds));
    if (o.motion == Motion::Still) o.speed = Speed::Slow;
    for (int attempt = 0; attempt < 1000 && !place(o, rng); ++attempt) {
    }
    return o;
}


}  // namespace

Rgb rgb(Colour c) { return kColourRgb[static_cast<int>(c)]; }
Rgb rgb(BackgroundColour c) { return kBackgroundRgb[static_cast<int>(c)]; }

std::string to_string(Shape v) { return kShapeNames[static_cast<int>(v)]; }
std::string to_string(Colour v) { return kColourNames[static_cast<int>(v)]; }
std::string to_string(Size v) { return kSizeNames[static_cast<int>(v)]; }
std::string to_string(Motion v) { return kMotionNames[static_cast<int>(v)]; }
std::string to_string(Speed v) { return kSpeedNames[static_cast<int>(v)]; }
std::string to_string(BackgroundKind v) { return kKindNames[static_cast<int>(v)]; }
std::string to_string(BackgroundColour v) { return kBackgroundNames[static_cast<int>(v)]; }
Shape parse_shape(const std::string& s) { return parse_name<Shape>(kShapeNames, s, "shape"); }
Colour parse_colour(const std::string& s) { return parse_name<Colour>(kColourNames, s, "colour"); }
Size parse_size(const std::string& s) { return parse_name<Size>(kSizeNames, s, "size"); }
Motion parse_motion(const std::string& s) { return parse_name<Motion>(kMotionNames, s, "motion"); }
Motion reversed(Motion m) {
    switch (m) {
        case Motion::Left: return Motion::Right;
        case Motion::Right: return Motion::Left;
        case Motion::Up: return Motion::Down;
        case Motion::Down: return Motion::Up;
        default: return m;
    }
}
Speed parse_speed(const std::string& s) { return parse_name<Speed>(kSpeedNames, s, "speed"); }
BackgroundKind parse_background_kind(const std::string& s) {
    return parse_name<BackgroundKind>(kKindNames, s, "background kind");
}
BackgroundColour parse_background_colour(const std::string& s) {
    return parse_name<BackgroundColour>(kBackgroundNames, s, "background colour");
}

namespace {
bool inside_shape(Shape s, double u, double v, double R) {
    switch (s) {
        case Shape::Circle: return u * u + v * v <= R * R;
        case Shape::Square: return std::abs(u) <= 0.85 * R && std::abs(v) <= 0.85 * R;
        case Shape::Diamond: return std::abs(u) + std::abs(v) <= R;
        case Shape::Triangle: return v <= 0.75 * R && std::abs(u) * 1.75 <= v + R;  // apex up at (0, -R)
    }
    return false;
}
}  // namespace

double pixel_coverage(Shape s, int64_t i, int64_t j, double cx, double cy, double R) {
    constexpr int kSub = 4;
    int hits = 0;
    for (int a = 0; a < kSub; ++a)
        for (int b = 0; b < kSub; ++b) hits += inside_shape(s, j + (b + 0.5) / kSub - cx, i + (a + 0.5) / kSub - cy, R);
    return hits / double(kSub * kSub);
}

double radius(Size s) { return s == Size::Small ? kSmallRadius : kLargeRadius; }

double shape_area(Shape shape, Size size) {
    const double r = radius(size);
    switch (shape) {
        case Shape::Circle: return 3.14159265358979 * r * r;
        case Shape::Square: return 1.7 * 1.7 * r * r;
        case Shape::Diamond: return 2.0 * r * r;
        case Shape::Triangle: return 1.75 * r * r;
    }
    return 0.0;
}

double travel(Motion m, Speed s) {
    if (m == Motion::Still) return 0.0;
    if (m == Motion::Bouncing) return s == Speed::Fast ? kBounceFast : kBounceSlow;
    return s == Speed::Fast ? kLinearFast : kLinearSlow;
}

WorldSpec sample_spec(uint64_t seed) {
    SplitMix64 rng(seed ^ 0x5EED0F5A11D0C0DEULL);
    WorldSpec spec;
    const double k = rng.uniform();
    spec.background.kind = k < 0.5 ? BackgroundKind::Solid
                           : k < 0.75 ? BackgroundKind::HorizontalGradient
                                      : BackgroundKind::VerticalGradient;
    spec.background.first = static_cast<BackgroundColour>(rng.index(kNumBackgroundColours));
    spec.background.second = spec.background.first;
    if (spec.background.kind != BackgroundKind::Solid) {
        const int off = 1 + rng.index(kNumBackgroundColours - 1);
        spec.background.second =
            static_cast<BackgroundColour>((static_cast<int>(spec.background.first) + off) % kNumBackgroundColours);
    }
    spec.objects.push_back(draw_object(rng));
    if (rng.coin()) {
        // Re-place both objects until they never touch; if a pair cannot be separated (e.g. two large fast
        // bouncers), draw a new second object; after 20 such draws keep one object.
        for (int redraw = 0; redraw < 20; ++redraw) {
            ObjectSpec b = draw_object(rng);
            for (int attempt = 0; attempt < 100; ++attempt) {
                if (separated(spec.objects[0], b)) {
                    spec.objects.push_back(b);
                    return spec;
                }
                ObjectSpec a = spec.objects[0];
                while (!place(a, rng)) {
                }
                while (!place(b, rng)) {
                }
                spec.objects[0] = a;
            }
        }
    }
    return spec;
}

std::array<double, 2> object_position(const ObjectSpec& o, double t) {
    const double r = radius(o.size);
    return {fold(o.x0 + o.dx * t, r, 1.0 - r), fold(o.y0 + o.dy * t, r, 1.0 - r)};
}

Rgb background_colour(const BackgroundSpec& b, double x, double y) {
    const Rgb c0 = rgb(b.first), c1 = rgb(b.second);
    double u = 0.0;
    if (b.kind == BackgroundKind::HorizontalGradient) u = x;
    if (b.kind == BackgroundKind::VerticalGradient) u = y;
    u = std::clamp(u, 0.0, 1.0);
    Rgb out;
    for (int c = 0; c < 3; ++c) out[c] = static_cast<float>(c0[c] + (c1[c] - c0[c]) * u);
    return out;
}

torch::Tensor render_background(const BackgroundSpec& b, int64_t height, int64_t width) {
    SURGEON_CHECK(height > 0 && width > 0, "background size must be positive, got {}x{}", height, width);
    auto out = torch::empty({3, height, width}, torch::kFloat32);  // [3, H, W]
    float* p = out.data_ptr<float>();
    for (int64_t i = 0; i < height; ++i)
        for (int64_t j = 0; j < width; ++j) {
            const Rgb c = background_colour(b, (j + 0.5) / width, (i + 0.5) / height);
            for (int ch = 0; ch < 3; ++ch) p[(ch * height + i) * width + j] = 2.0f * c[ch] - 1.0f;
        }
    return out;
}

torch::Tensor render(const WorldSpec& spec, const WorldSize& size) {
    const int64_t T = size.frames, H = size.height, W = size.width;
    SURGEON_CHECK(T >= 1 && H >= 8 && W >= 8, "world size must be at least 1x8x8 (frames x height x width), got {}x{}x{}",
                  T, H, W);
    SURGEON_CHECK(!spec.objects.empty() && spec.objects.size() <= 2, "a world sample has 1 or 2 objects, got {}",
                  spec.objects.size());
    const auto bg = render_background(spec.background, H, W);  // [3, H, W]
    auto video = bg.unsqueeze(1).repeat({1, T, 1, 1}).contiguous();  // [3, T, H, W]
    float* v = video.data_ptr<float>();
    const double scale = static_cast<double>(std::min(H, W));
    for (int64_t f = 0; f < T; ++f) {
        const double t = T > 1 ? static_cast<double>(f) / (T - 1) : 0.0;
        for (const auto& o : spec.objects) {
            const auto pos = object_position(o, t);
            const double cx = pos[0] * W, cy = pos[1] * H, R = radius(o.size) * scale;
            const Rgb col = rgb(o.colour);
            const int64_t i0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cy - 1.3 * R)));
            const int64_t i1 = std::min<int64_t>(H - 1, static_cast<int64_t>(std::ceil(cy + 1.3 * R)));
            const int64_t j0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cx - 1.3 * R)));
            const int64_t j1 = std::min<int64_t>(W - 1, static_cast<int64_t>(std::ceil(cx + 1.3 * R)));
            for (int64_t i = i0; i <= i1; ++i)
                for (int64_t j = j0; j <= j1; ++j) {
                    const float alpha = static_cast<float>(pixel_coverage(o.shape, i, j, cx, cy, R));
                    if (alpha == 0) continue;
                    for (int ch = 0; ch < 3; ++ch) {
                        float& px = v[((ch * T + f) * H + i) * W + j];
                        px = (1 - alpha) * px + alpha * (2.0f * col[ch] - 1.0f);
                    }
                }
        }
    }
    return video;
}

nlohmann::json to_json(const WorldSpec& spec) {
    nlohmann::json objs = nlohmann::json::array();
    for (const auto& o : spec.objects)
        objs.push_back({{"shape", to_string(o.shape)}, {"colour", to_string(o.colour)}, {"size", to_string(o.size)},
                        {"motion", to_string(o.motion)}, {"speed", to_string(o.speed)}, {"x0", o.x0},
                        {"y0", o.y0}, {"dx", o.dx}, {"dy", o.dy}});
    return {{"background",
             {{"kind", to_string(spec.background.kind)}, {"first", to_string(spec.background.first)},
              {"second", to_string(spec.background.second)}}},
            {"objects", objs}};
}

WorldSpec spec_from_json(const nlohmann::json& j) {
    try {
        WorldSpec spec;
        const auto& b = j.at("background");
        spec.background.kind = parse_background_kind(b.at("kind").get<std::string>());
        spec.background.first = parse_background_colour(b.at("first").get<std::string>());
        spec.background.second = parse_background_colour(b.at("second").get<std::string>());
        for (const auto& o : j.at("objects")) {
            ObjectSpec s;
            s.shape = parse_shape(o.at("shape").get<std::string>());
            s.colour = parse_colour(o.at("colour").get<std::string>());
            s.size = parse_size(o.at("size").get<std::string>());
            s.motion = parse_motion(o.at("motion").get<std::string>());
            s.speed = parse_speed(o.at("speed").get<std::string>());
            s.x0 = o.value("x0", 0.5);
            s.y0 = o.value("y0", 0.5);
            s.dx = o.value("dx", 0.0);
            s.dy = o.value("dy", 0.0);
            spec.objects.push_back(s);
        }
        SURGEON_CHECK(!spec.objects.empty() && spec.objects.size() <= 2, "spec must have 1 or 2 objects, got {}",
                      spec.objects.size());
        return spec;
    } catch (const nlohmann::json::exception& e) {
        fail("invalid world spec JSON: {}", e.what());
    }
}

}  // namespace surgeon::world
