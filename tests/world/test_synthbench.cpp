// Validation of SynthBench: ground truth scores >= 0.98, and each corruption (noise, shuffled frames,
// recoloured objects, frozen frames) lowers the metric it breaks; PSNR/SSIM sanity.
// Run: ctest --test-dir build -R 'SynthBench|Fidelity'
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "world/fidelity.h"
#include "world/prompt.h"
#include "world/synthbench.h"
#include "world/world.h"

using namespace surgeon::world;

namespace {

constexpr int kSeeds = 40;

bool has_moving(const WorldSpec& s) {
    for (const auto& o : s.objects)
        if (o.motion != Motion::Still) return true;
    return false;
}

// Frames in a fixed non-identity order (reverse halves interleaved), deterministic.
torch::Tensor shuffle_frames(const torch::Tensor& v) {
    const int64_t T = v.size(1);
    std::vector<int64_t> order;
    for (int64_t i = 0; i < T; ++i) order.push_back((i * 7 + 3) % T);  // 7 is coprime with 16
    return v.index_select(1, torch::tensor(order));
}

struct Sample {
    WorldSpec spec;
    torch::Tensor video;  // [3, 16, 64, 64]
    BenchScores scores;   // of the ground truth
};
// Seeds 0 .. kSeeds-1 rendered and scored once for all tests (keeps the file well under a minute).
const std::vector<Sample>& samples() {
    static const std::vector<Sample> all = [] {
        std::vector<Sample> v;
        for (uint64_t seed = 0; seed < kSeeds; ++seed) {
            Sample s{sample_spec(seed), {}, {}};
            s.video = render(s.spec);
            s.scores = synthbench(s.video, s.spec);
            v.push_back(s);
        }
        return v;
    }();
    return all;
}

}  // namespace

TEST(SynthBench, GroundTruthScoresHigh) {
    std::vector<BenchScores> all;
    for (const auto& s : samples()) {
        EXPECT_GE(s.scores.score, 0.9) << prompt(s.spec) << ": " << to_json(s.scores, true).dump();
        all.push_back(s.scores);
    }
    const auto m = mean_scores(all);
    EXPECT_GE(m.score, 0.98) << to_json(m).dump();
    for (double v : {m.background, m.count, m.colour, m.shape, m.motion, m.consistency}) EXPECT_GE(v, 0.95) << to_json(m).dump();
}

TEST(SynthBench, GroundTruthAtOtherSizes) {
    std::vector<BenchScores> all;
    for (uint64_t seed = 100; seed < 106; ++seed) {
        const auto spec = sample_spec(seed);
        all.push_back(synthbench(render(spec, {12, 96, 80}), spec));
    }
    EXPECT_GE(mean_scores(all).score, 0.95) << to_json(mean_scores(all)).dump();
}

TEST(SynthBench, NoiseScoresLow) {
    torch::manual_seed(0);
    std::vector<BenchScores> all;
    for (uint64_t seed = 0; seed < 6; ++seed) {
        const auto spec = sample_spec(seed);
        all.push_back(synthbench(torch::rand({3, 16, 64, 64}) * 2 - 1, spec));
    }
    const auto m = mean_scores(all);
    EXPECT_LT(m.score, 0.35) << to_json(m).dump();
    EXPECT_LT(m.background, 0.1);
    EXPECT_LT(m.consistency, 0.5);
}

TEST(SynthBench, ShuffledFramesBreakMotionAndConsistency) {
    std::vector<BenchScores> gt, bad;
    for (const auto& s : samples()) {
        if (!has_moving(s.spec)) continue;
        gt.push_back(s.scores);
        bad.push_back(synthbench(shuffle_frames(s.video), s.spec));
    }
    ASSERT_GE(gt.size(), 20u);
    const auto g = mean_scores(gt), b = mean_scores(bad);
    EXPECT_LT(b.motion, g.motion - 0.4) << to_json(b).dump();
    EXPECT_LT(b.consistency, g.consistency - 0.1) << to_json(b).dump();
    // Per-frame content is intact, so the content metrics stay high.
    EXPECT_GE(b.colour, 0.9);
    EXPECT_GE(b.shape, 0.9);
    EXPECT_GE(b.background, 0.95);
}

TEST(SynthBench, RecolouredObjectsBreakColour) {
    std::vector<BenchScores> gt, bad;
    for (const auto& s : samples()) {
        auto recoloured = s.spec;
        for (auto& o : recoloured.objects) o.colour = static_cast<Colour>((static_cast<int>(o.colour) + 3) % kNumColours);
        gt.push_back(s.scores);
        bad.push_back(synthbench(render(recoloured), s.spec));
    }
    const auto g = mean_scores(gt), b = mean_scores(bad);
    EXPECT_LT(b.colour, 0.1) << to_json(b).dump();
    EXPECT_NEAR(b.shape, g.shape, 0.05);
    EXPECT_NEAR(b.motion, g.motion, 0.05);
    EXPECT_NEAR(b.count, g.count, 0.05);
}

TEST(SynthBench, FrozenFramesBreakMotion) {
    std::vector<BenchScores> gt, bad;
    for (const auto& s : samples()) {
        bool all_moving = true;
        for (const auto& o : s.spec.objects) all_moving = all_moving && o.motion != Motion::Still;
        if (!all_moving) continue;
        gt.push_back(s.scores);
        bad.push_back(synthbench(s.video.slice(1, 0, 1).expand_as(s.video).contiguous(), s.spec));
    }
    ASSERT_GE(gt.size(), 15u);
    const auto g = mean_scores(gt), b = mean_scores(bad);
    EXPECT_LT(b.motion, 0.05) << to_json(b).dump();
    EXPECT_GE(g.motion, 0.95);
    EXPECT_GE(b.colour, 0.9);
    EXPECT_GE(b.shape, 0.9);
}

TEST(SynthBench, WrongBackgroundBreaksBackground) {
    std::vector<BenchScores> bad;
    for (uint64_t seed = 0; seed < 12; ++seed) {
        const auto spec = sample_spec(seed);
        auto other = spec;
        other.background.first = static_cast<BackgroundColour>((static_cast<int>(spec.background.first) + 1) % kNumBackgroundColours);
        if (other.background.kind == BackgroundKind::Solid) other.background.second = other.background.first;
        bad.push_back(synthbench(render(other), spec));
    }
    const auto b = mean_scores(bad);
    EXPECT_LT(b.background, 0.75) << to_json(b).dump();
    EXPECT_GE(b.count, 0.95);
}

TEST(SynthBench, MissingObjectBreaksCount) {
    std::vector<BenchScores> bad;
    for (uint64_t seed = 0; seed < 30; ++seed) {
        const auto spec = sample_spec(seed);
        if (spec.objects.size() != 2) continue;
        auto one = spec;
        one.objects.pop_back();
        bad.push_back(synthbench(render(one), spec));
    }
    ASSERT_GE(bad.size(), 8u);
    EXPECT_LT(mean_scores(bad).count, 0.05);
}

TEST(SynthBench, WrongShapeBreaksShape) {
    std::vector<BenchScores> gt, bad;
    for (const auto& s : samples()) {
        auto reshaped = s.spec;
        for (auto& o : reshaped.objects) o.shape = static_cast<Shape>((static_cast<int>(o.shape) + 1) % kNumShapes);
        gt.push_back(s.scores);
        bad.push_back(synthbench(render(reshaped), s.spec));
    }
    const auto g = mean_scores(gt), b = mean_scores(bad);
    EXPECT_LT(b.shape, 0.1) << to_json(b).dump();
    EXPECT_GE(g.shape, 0.95);
    EXPECT_NEAR(b.colour, g.colour, 0.05);
    EXPECT_NEAR(b.count, g.count, 0.05);
}

// What a generator draws is not pixel-exact: each shape, small and large, at sub-pixel offsets, with a faint
// one-sided halo (1 pixel at 30% of the object's contrast) and a 2-pixel bump on its top edge is still that shape
// in every frame. The perturbation is strong enough to break a bounding-box classifier (the small square's box
// fill ratio falls below the 0.89 that separated squares from circles), which SynthBench once used.
TEST(SynthBench, ShapeSurvivesHaloAndBump) {
    const int64_t H = 64, W = 64, T = 4;
    int cases = 0;
    for (int k = 0; k < kNumShapes; ++k)
        for (Size size : {Size::Small, Size::Large})
            for (double off : {0.0, 0.3, 0.55}) {
                WorldSpec spec;
                spec.background = {BackgroundKind::Solid, BackgroundColour::Maroon, BackgroundColour::Maroon};
                ObjectSpec o;
                o.shape = static_cast<Shape>(k), o.colour = Colour::Orange, o.size = size;
                o.x0 = 0.5 + off / W, o.y0 = 0.45 + off / H;
                spec.objects = {o};
                auto clean = render(spec, {T, H, W});  // [3, T, H, W] in [-1, 1]
                auto bg = clean.select(1, 0).select(1, 2).select(1, 2).view({3, 1, 1, 1});  // a corner pixel
                auto obj = (clean - bg).abs().sum(0, true) > 0.5;  // [1, T, H, W] covered > ~half
                auto objf = obj.to(torch::kFloat32).unsqueeze(0);  // [1, 1, T, H, W]
                auto ring = (torch::max_pool3d(objf, {1, 3, 3}, 1, {0, 1, 1}).squeeze(0) > 0) & ~obj;
                // Only on the left and lower sides (a one-sided halo stretches the box; a full ring would not).
                auto yx = obj.select(0, 0).select(0, 0).nonzero().to(torch::kFloat32).mean(0);  // centre row, col
                auto ii = torch::arange(H).view({1, 1, H, 1}).to(torch::kFloat32);
                auto jj = torch::arange(W).view({1, 1, 1, W}).to(torch::kFloat32);
                ring = ring & ((jj < yx[1]) | (ii > yx[0]));
                const Rgb c = rgb(Colour::Orange);
                auto colour = (torch::tensor({double(c[0]), double(c[1]), double(c[2])}).to(torch::kFloat32) * 2 - 1).view({3, 1, 1, 1});
                auto v = torch::where(ring, bg + 0.3 * (colour - bg), clean);
                // Bump: two pixels above the topmost covered row, at its leftmost covered column.
                auto rows = obj.select(0, 0).select(0, 0).any(1).nonzero().min().item<int64_t>();
                auto cols = obj.select(0, 0).select(0, 0).select(0, rows).nonzero().min().item<int64_t>();
                for (int64_t dj = 0; dj < 2; ++dj)
                    v.select(2, rows - 2).select(2, cols + dj).copy_(colour.view({3, 1}).expand({3, T}));
                v.select(2, rows - 1).select(2, cols).copy_(colour.view({3, 1}).expand({3, T}));
                v.select(2, rows - 1).select(2, cols + 1).copy_(colour.view({3, 1}).expand({3, T}));
                const auto sc = synthbench(v, spec);
                EXPECT_GE(sc.shape, 0.99) << to_string(o.shape) << " size " << to_string(size) << " offset " << off
                                          << ": " << to_json(sc, true).dump();
                if (o.shape == Shape::Square && size == Size::Small) {
                    EXPECT_LT(sc.details["objects"][0]["fill"].get<double>(), 0.89) << "perturbation too weak";
                }
                ++cases;
            }
    EXPECT_EQ(cases, kNumShapes * 2 * 3);
}

TEST(Fidelity, PsnrSsimIdentityAndMonotoneInNoise) {
    const auto v = render(sample_spec(5));
    EXPECT_TRUE(std::isinf(psnr(v, v)));
    EXPECT_NEAR(ssim(v, v), 1.0, 1e-9);
    torch::manual_seed(0);
    const auto noise = torch::randn_like(v);
    double last_psnr = 1e9, last_ssim = 1.0 + 1e-12;
    for (double sigma : {0.01, 0.05, 0.2, 0.5}) {
        const auto n = (v + sigma * noise).clamp(-1, 1);
        const double p = psnr(n, v), s = ssim(n, v);
        EXPECT_LT(p, last_psnr);
        EXPECT_LT(s, last_ssim);
        last_psnr = p, last_ssim = s;
    }
    // sigma 0.01 on [-1, 1] is 0.005 on [0, 1]: PSNR = -20 log10(0.005) = 46 dB (clamping lowers MSE a bit).
    EXPECT_NEAR(psnr((v + 0.01 * noise), v), 46.0, 0.5);
    EXPECT_THROW(psnr(v, v.slice(1, 0, 4)), surgeon::Error);
}

// The reported start and end of each object's path are where the renderer put it at the first and last frame
// (normalised centroids), so a report can say where generated objects start (e.g. "moving left" on the right).
// Tolerance 0.05: a triangle's area centroid sits up to ~0.03 below the point it is placed by.
TEST(SynthBench, ReportsWhereEachPathStartsAndEnds) {
    constexpr double kTol = 0.05;
    int checked = 0, left = 0;
    for (const auto& s : samples()) {
        const auto d = to_json(s.scores, true)["details"]["objects"];
        ASSERT_EQ(d.size(), s.spec.objects.size()) << prompt(s.spec);
        for (size_t k = 0; k < d.size(); ++k) {
            const auto& o = s.spec.objects[k];
            ASSERT_TRUE(d[k].contains("start") && d[k].contains("end")) << d[k].dump();
            const auto a = object_position(o, 0.0), b = object_position(o, 1.0);
            EXPECT_NEAR(d[k]["start"][0].get<double>(), a[0], kTol) << prompt(s.spec);
            EXPECT_NEAR(d[k]["start"][1].get<double>(), a[1], kTol) << prompt(s.spec);
            EXPECT_NEAR(d[k]["end"][0].get<double>(), b[0], kTol) << prompt(s.spec);
            EXPECT_NEAR(d[k]["end"][1].get<double>(), b[1], kTol) << prompt(s.spec);
            if (o.motion == Motion::Left) {
                EXPECT_GT(d[k]["start"][0].get<double>(), d[k]["end"][0].get<double>() + 0.1);
                ++left;
            }
            ++checked;
        }
    }
    EXPECT_GE(checked, kSeeds);
    EXPECT_GE(left, 3);
}
