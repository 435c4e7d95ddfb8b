// The synthetic video world: a sample spec (background + 1-2 moving shapes) drawn deterministically from a
// seed, and its anti-aliased rendering to a [3, T, H, W] video in [-1, 1]. Geometry is in normalised frame
// units (x across the width, y down the height, both in [0, 1]); motion is given per clip, so one spec
// renders consistently at any frame count or resolution. Spec: shared/docs/synthetic-world.md.
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace surgeon::world {

enum class Shape { Circle, Square, Triangle, Diamond };
enum class Colour { Red, Green, Blue, Yellow, Cyan, Magenta, White, Orange };
enum class Size { Small, Large };
enum class Motion { Still, Left, Right, Up, Down, Bouncing };
enum class Speed { Slow, Fast };
enum class BackgroundKind { Solid, HorizontalGradient, VerticalGradient };
// Muted background colours, each >= 0.25 (RGB distance on [0, 1]) from the others and >= 0.45 from every
// object colour, so the foreground separates from the background by colour alone.
enum class BackgroundColour { Black, Gray, Navy, Maroon, Teal, Purple, Olive };

constexpr int kNumShapes = 4, kNumColours = 8, kNumSizes = 2, kNumMotions = 6, kNumSpeeds = 2;
constexpr int kNumBackgroundKinds = 3, kNumBackgroundColours = 7;

using Rgb = std::array<float, 3>;  // [0, 1]
Rgb rgb(Colour c);
Rgb rgb(BackgroundColour c);

// Prompt words ("circle", "red", "large", "left", "fast", "navy", ...). parse_* throw surgeon::Error.
std::string to_string(Shape v);
std::string to_string(Colour v);
std::string to_string(Size v);
std::string to_string(Motion v);
std::string to_string(Speed v);
std::string to_string(BackgroundKind v);  // "solid" | "horizontal" | "vertical"
std::string to_string(BackgroundColour v);
Shape parse_shape(const std::string& s);
Colour parse_colour(const std::string& s);
Size parse_size(const std::string& s);
Motion parse_motion(const std::string& s);
// The motion of the clip played backwards: left <-> right, up <-> down; still and bouncing stay.
Motion reversed(Motion m);
Speed parse_speed(const std::string& s);
BackgroundKind parse_background_kind(const std::string& s);
BackgroundColour parse_background_colour(const std::string& s);

// Radius of an object in units of min(H, W): every shape fits in the square [-r, r]^2 around its centre.
constexpr double kSmallRadius = 0.10, kLargeRadius = 0.17;
double radius(Size s);
// Area of the shape in units of min(H, W)^2 (circle pi r^2, square (1.7r)^2, diamond 2r^2, triangle 1.75r^2).
double shape_area(Shape shape, Size size);
// Share of pixel (row i, column j) covered by the shape centred at (cx, cy) with radius R, all in pixels (pixel
// (i, j) spans [j, j+1) x [i, i+1)); 4x4 supersampled, so in steps of 1/16. What render draws and what SynthBench
// matches objects against. The triangle points up (apex at cy - R, base at cy + 0.75 R; centroid at cy + R / 6).
double pixel_coverage(Shape s, int64_t i, int64_t j, double cx, double cy, double R);
// Per-clip travel: linear motions move kLinear{Slow,Fast} along one axis; bouncing objects travel
// kBounce{Slow,Fast} (path length, diagonal) and reflect off the walls.
constexpr double kLinearSlow = 0.30, kLinearFast = 0.60, kBounceSlow = 0.90, kBounceFast = 1.80;
double travel(Motion m, Speed s);  // 0 for still objects

struct ObjectSpec {
    Shape shape = Shape::Circle;
    Colour colour = Colour::Red;
    Size size = Size::Small;
    Motion motion = Motion::Still;
    Speed speed = Speed::Slow;  // Slow for still objects (and not in the prompt)
    double x0 = 0.5, y0 = 0.5;  // centre at t = 0
    double dx = 0.0, dy = 0.0;  // unfolded displacement over the clip; bouncing folds it into [r, 1 - r]
};

struct BackgroundSpec {
    BackgroundKind kind = BackgroundKind::Solid;
    BackgroundColour first = BackgroundColour::Gray;   // solid colour, or left/top end of the gradient
    BackgroundColour second = BackgroundColour::Gray;  // right/bottom end (== first when solid)
};

struct WorldSpec {
    BackgroundSpec background;
    std::vector<ObjectSpec> objects;  // 1 or 2, never overlapping during the clip
};

struct WorldSize {
    int64_t frames = 16, height = 64, width = 64;
};

// Deterministic on any machine (SplitMix64, no std:: distributions, no torch RNG).
WorldSpec sample_spec(uint64_t seed);

// World seeds are split between uses so that evaluation never scores a clip the model was trained on: training
// with config seed s draws train_world_seed(s, n) = s * 1e9 + n for its n-th clip, SynthBench evaluation draws
// eval_world_seed(i) = 7e9 + i. A training run whose clips would reach [7e9, 8e9) (config seed 7) is refused.
constexpr uint64_t kWorldSeedsPerTrainSeed = 1000000000ull;
constexpr uint64_t kEvalWorldSeedBase = 7000000000ull;
inline uint64_t train_world_seed(uint64_t train_seed, uint64_t n) { return train_seed * kWorldSeedsPerTrainSeed + n; }
inline uint64_t eval_world_seed(uint64_t i) { return kEvalWorldSeedBase + i; }
// Whether the world seeds [first, first + count) avoid the evaluation range [7e9, 8e9).
inline bool avoids_eval_world_seeds(uint64_t first, uint64_t count) {
    return first + count <= kEvalWorldSeedBase || first >= kEvalWorldSeedBase + kWorldSeedsPerTrainSeed;
}
// Centre of an object at clip time t in [0, 1] (frame f of T is t = f / (T - 1)), normalised units.
std::array<double, 2> object_position(const ObjectSpec& o, double t);
// Background colour at normalised (x, y).
Rgb background_colour(const BackgroundSpec& b, double x, double y);
// [3, T, H, W] float32 in [-1, 1]; 4x4 supersampled coverage for anti-aliasing.
torch::Tensor render(const WorldSpec& spec, const WorldSize& size = {});
// Background only: [3, H, W] in [-1, 1].
torch::Tensor render_background(const BackgroundSpec& b, int64_t height, int64_t width);

nlohmann::json to_json(const WorldSpec& spec);
WorldSpec spec_from_json(const nlohmann::json& j);

}  // namespace surgeon::world
