// Measurements SynthBench scores from, spec-free: the background is estimated from the video (per-pixel
// temporal median, then a robust per-channel plane fit, which covers solid and linear-gradient backgrounds);
// the foreground is every pixel farther than kForegroundDistance from it; objects are its 4-connected components.
#pragma once
#include <array>
#include <torch/torch.h>

#include <vector>

#include "world/world.h"

namespace surgeon::world {

// RGB distance on [0, 1] above which a pixel is foreground: below half of the 0.45 minimum distance between
// object and background palettes, so anti-aliased edges with coverage >= ~0.45 count as the object.
constexpr double kForegroundDistance = 0.2;

struct Component {
    int64_t pixels = 0;        // hard-mask pixel count
    double area = 0;           // soft area in pixels (coverage-weighted, edges included)
    double cx = 0, cy = 0;     // soft centroid, normalised (x / W, y / H)
    Rgb colour{};              // mean colour of interior pixels, [0, 1]
    double fill = 0;           // hard pixels / bounding-box area (square 1, circle 0.79, triangle/diamond 0.5)
    double top_fraction = 0;   // share of hard pixels in the upper half of the box (triangle 0.25, others 0.5)
    // Soft IoU of the half-coverage core with each shape's template (indexed by Shape) of the core's area,
    // placed at its centroid: the shape classifier's evidence.
    std::array<double, kNumShapes> shape_iou{};
};

struct VideoAnalysis {
    int64_t frames = 0, height = 0, width = 0;
    torch::Tensor background;  // [3, H, W] estimated background, [0, 1]
    std::vector<std::vector<Component>> components;  // per frame, area descending, within the size bounds
    double flicker = 0;        // mean |x_t - x_{t-1}| on pixels far from any component in both frames
    int64_t flicker_pixels = 0;  // how many (t, pixel) pairs that mean is over
};

// video [3, T, H, W] in [-1, 1] (any float dtype/device). Components with fewer than min_pixels or more than
// max_pixels pixels are not objects (speckle; a frame-filling blob such as noise) and are dropped.
VideoAnalysis analyse_video(const torch::Tensor& video, int64_t min_pixels, int64_t max_pixels);

// Nearest object palette colour; shape class with the best template IoU.
Colour classify_colour(const Rgb& c);
Shape classify_shape(const Component& c);

}  // namespace surgeon::world
