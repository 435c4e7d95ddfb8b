// Tests of the synthetic world: deterministic sampling and rendering (golden checksums), prompt grammar,
// geometry invariants (objects inside the frame, never touching). Run: ctest --test-dir build -R World
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/error.h"

#include "world/prompt.h"
#include "world/world.h"

using namespace surgeon::world;

namespace {

// Order-dependent checksum of the video quantised to 8 bits (robust to last-bit float differences).
uint64_t checksum(const torch::Tensor& video) {
    auto q = ((video.contiguous() + 1) * 127.5).round().to(torch::kInt64).contiguous();
    const int64_t* p = q.data_ptr<int64_t>();
    uint64_t h = 1469598103934665603ULL;
    for (int64_t i = 0; i < q.numel(); ++i) h = (h ^ static_cast<uint64_t>(p[i])) * 1099511628211ULL;
    return h;
}

bool contains_word(const std::string& text, const std::string& word) {
    return (" " + text + " ").find(" " + word + " ") != std::string::npos;
}

}  // namespace

TEST(WorldDeterminism, SameSeedSameSpecVideoAndPrompt) {
    for (uint64_t seed : {0ULL, 7ULL, 123456789ULL}) {
        const auto a = sample_spec(seed), b = sample_spec(seed);
        EXPECT_EQ(to_json(a).dump(), to_json(b).dump());
        EXPECT_EQ(prompt(a), prompt(b));
        EXPECT_TRUE(torch::equal(render(a), render(b)));
    }
    EXPECT_NE(prompt(sample_spec(1)) + to_json(sample_spec(1)).dump(), prompt(sample_spec(2)) + to_json(sample_spec(2)).dump());
}

TEST(WorldDeterminism, GoldenPromptsAndChecksums) {
    // Recorded from this implementation; a change here changes every dataset and trained teacher.
    struct Golden {
        uint64_t seed;
        const char* prompt;
        uint64_t checksum;
    };
    const Golden goldens[] = {
        {0, "a large cyan square moving up slowly on a maroon background", 14193004891079685091ULL},
        {1, "a large red triangle bouncing slowly on a black background", 14195778718669911306ULL},
        {42,
         "a large blue circle moving left fast on a navy to gray vertical gradient background and a large yellow "
         "diamond moving left fast",
         8834632052295590482ULL},
        {2024, "a small magenta triangle moving up fast on a black background", 5796830939225987767ULL},
    };
    for (const auto& g : goldens) {
        const auto spec = sample_spec(g.seed);
        const auto video = render(spec);
        EXPECT_EQ(prompt(spec), g.prompt) << "seed " << g.seed;
        EXPECT_EQ(checksum(video), g.checksum) << "seed " << g.seed;
    }
}

TEST(WorldRender, ShapeRangeAndAntiAliasing) {
    const auto spec = sample_spec(3);
    const auto v = render(spec, {8, 48, 40});
    ASSERT_EQ(v.sizes(), (std::vector<int64_t>{3, 8, 48, 40}));
    EXPECT_EQ(v.scalar_type(), torch::kFloat32);
    EXPECT_GE(v.min().item<float>(), -1.0f);
    EXPECT_LE(v.max().item<float>(), 1.0f);
    // Anti-aliased: some pixels are strict blends of object and background (not only palette values).
    const auto bg = render_background(spec.background, 48, 40).unsqueeze(1);  // [3, 1, H, W]
    const auto changed = (v - bg).abs().amax(0).gt(1e-4);                     // [T, H, W]
    EXPECT_GT(changed.sum().item<int64_t>(), 0);
    const auto c = rgb(spec.objects[0].colour);
    const auto obj = torch::tensor({2 * c[0] - 1, 2 * c[1] - 1, 2 * c[2] - 1}).view({3, 1, 1, 1});
    const auto pure = (v - obj).abs().amax(0).lt(1e-4);  // [T, H, W]
    EXPECT_GT((changed & ~pure).sum().item<int64_t>(), 0);
}

TEST(WorldRender, ObjectsStayInsideAndNeverTouch) {
    for (uint64_t seed = 0; seed < 300; ++seed) {
        const auto spec = sample_spec(seed);
        ASSERT_GE(spec.objects.size(), 1u);
        ASSERT_LE(spec.objects.size(), 2u);
        for (int i = 0; i <= 60; ++i) {
            const double t = i / 60.0;
            std::vector<std::array<double, 2>> ps;
            for (const auto& o : spec.objects) {
                const auto p = object_position(o, t);
                const double r = radius(o.size);
                ASSERT_GE(p[0] - r, -1e-9) << "seed " << seed;
                ASSERT_LE(p[0] + r, 1 + 1e-9) << "seed " << seed;
                ASSERT_GE(p[1] - r, -1e-9) << "seed " << seed;
                ASSERT_LE(p[1] + r, 1 + 1e-9) << "seed " << seed;
                ps.push_back(p);
            }
            if (ps.size() == 2) {
                const double min_d = radius(spec.objects[0].size) + radius(spec.objects[1].size) + 0.04;
                ASSERT_GT(std::hypot(ps[0][0] - ps[1][0], ps[0][1] - ps[1][1]), min_d) << "seed " << seed;
            }
        }
        // Linear motions travel exactly their speed's distance; still objects do not move.
        for (const auto& o : spec.objects) {
            const auto p0 = object_position(o, 0), p1 = object_position(o, 1);
            const double d = std::hypot(p1[0] - p0[0], p1[1] - p0[1]);
            if (o.motion == Motion::Still) EXPECT_EQ(d, 0.0);
            if (o.motion != Motion::Still && o.motion != Motion::Bouncing) EXPECT_NEAR(d, travel(o.motion, o.speed), 1e-9);
        }
    }
}

TEST(WorldRender, AttributeCoverage) {
    // 500 seeds reach every value of every attribute, and both object counts and background kinds.
    std::set<std::string> seen;
    for (uint64_t seed = 0; seed < 500; ++seed) {
        const auto s = sample_spec(seed);
        seen.insert("n" + std::to_string(s.objects.size()));
        seen.insert("k" + to_string(s.background.kind));
        seen.insert("b" + to_string(s.background.first));
        for (const auto& o : s.objects) {
            seen.insert("s" + to_string(o.shape));
            seen.insert("c" + to_string(o.colour));
            seen.insert("z" + to_string(o.size));
            seen.insert("m" + to_string(o.motion));
            seen.insert("v" + to_string(o.speed));
        }
    }
    EXPECT_EQ(seen.size(), 2u + 3u + 7u + 4u + 8u + 2u + 6u + 2u);
}

TEST(WorldPrompt, ContainsEveryAttributeAndParsesBack) {
    for (uint64_t seed = 0; seed < 300; ++seed) {
        const auto spec = sample_spec(seed);
        const auto p = prompt(spec);
        EXPECT_TRUE(contains_word(p, to_string(spec.background.first))) << p;
        EXPECT_TRUE(contains_word(p, to_string(spec.background.second))) << p;
        if (spec.background.kind != BackgroundKind::Solid) EXPECT_TRUE(contains_word(p, to_string(spec.background.kind))) << p;
        for (const auto& o : spec.objects) {
            for (const auto& w : {to_string(o.shape), to_string(o.colour), to_string(o.size)})
                EXPECT_TRUE(contains_word(p, w)) << p;
            if (o.motion != Motion::Still && o.motion != Motion::Bouncing) EXPECT_TRUE(contains_word(p, to_string(o.motion))) << p;
            if (o.motion != Motion::Still) EXPECT_TRUE(contains_word(p, o.speed == Speed::Fast ? "fast" : "slowly")) << p;
        }
        // parse_prompt recovers every attribute (positions are not in the prompt).
        auto back = parse_prompt(p);
        auto a = spec;
        for (auto& o : a.objects) o.x0 = o.y0 = 0.5, o.dx = o.dy = 0.0;
        EXPECT_EQ(to_json(back).dump(), to_json(a).dump()) << p;
        EXPECT_EQ(prompt(back), p);
    }
}

TEST(WorldPrompt, ExampleAndErrors) {
    WorldSpec s;
    s.background = {BackgroundKind::Solid, BackgroundColour::Gray, BackgroundColour::Gray};
    ObjectSpec a;
    a.size = Size::Large, a.colour = Colour::Red, a.shape = Shape::Circle, a.motion = Motion::Left, a.speed = Speed::Fast;
    ObjectSpec b;
    b.size = Size::Small, b.colour = Colour::Blue, b.shape = Shape::Square, b.motion = Motion::Bouncing;
    s.objects = {a, b};
    EXPECT_EQ(prompt(s), "a large red circle moving left fast on a gray background and a small blue square bouncing slowly");
    EXPECT_EQ(prompt(parse_prompt("A large red circle moving left fast on a gray background and a small blue square bouncing slowly.")),
              prompt(s));
    s.background = {BackgroundKind::VerticalGradient, BackgroundColour::Navy, BackgroundColour::Teal};
    s.objects = {a};
    s.objects[0].motion = Motion::Still;
    s.objects[0].speed = Speed::Slow;
    EXPECT_EQ(prompt(s), "a large red circle staying still on a navy to teal vertical gradient background");
    try {
        parse_prompt("a large purple circle staying still on a gray background");
        FAIL() << "expected an error";
    } catch (const surgeon::Error& e) {
        EXPECT_NE(std::string(e.what()).find("'purple'"), std::string::npos) << e.what();
    }
    EXPECT_THROW(parse_prompt("a large red circle moving sideways fast on a gray background"), surgeon::Error);
    EXPECT_THROW(parse_prompt("a large red circle staying still on a gray"), surgeon::Error);
    EXPECT_THROW(parse_prompt(""), surgeon::Error);
}

TEST(WorldSpecJson, RoundTrip) {
    const auto s = sample_spec(99);
    EXPECT_EQ(to_json(spec_from_json(to_json(s))).dump(), to_json(s).dump());
    EXPECT_TRUE(torch::equal(render(spec_from_json(to_json(s))), render(s)));
    EXPECT_THROW(spec_from_json(nlohmann::json::parse(R"({"background": {}})")), surgeon::Error);
}

// reversed(): the motion of the clip played backwards; an involution that swaps the four directions' names.
TEST(World, ReversedMotionSwapsDirectionsOnly) {
    EXPECT_EQ(reversed(Motion::Left), Motion::Right);
    EXPECT_EQ(reversed(Motion::Up), Motion::Down);
    EXPECT_EQ(reversed(Motion::Still), Motion::Still);
    EXPECT_EQ(reversed(Motion::Bouncing), Motion::Bouncing);
    for (int i = 0; i < kNumMotions; ++i) EXPECT_EQ(reversed(reversed(Motion(i))), Motion(i));
    EXPECT_EQ(to_string(reversed(parse_motion("right"))), "left");
    EXPECT_EQ(to_string(reversed(parse_motion("down"))), "up");
}
