// Samplers against shared/golden traces: official UniPC (batch 1), diffusers UniPC and flow Euler (batch 2),
// with CFG 5 over the tiny golden model, every step's latents compared.
#include <ATen/CPUGeneratorImpl.h>

#include <memory>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/model_io.h"
#include "pipelines/sampling.h"
#include "testing/testing.h"

using namespace surgeon;
using namespace surgeon::testing;

namespace {
void check_trace(const std::string& file, const std::string& prefix, SolverKind kind, double shift) {
    auto g = load_safetensors(golden(file));
    auto model = load_wan_model(golden("wan-t2v-tiny")).model;
    // Schedule first: sigmas and model timesteps.
    auto sch = make_schedule(kind, 6, shift);
    auto sig = g.at(prefix + "sigmas"), ts = g.at(prefix + "timesteps");
    ASSERT_EQ(sig.numel(), 7);
    for (int i = 0; i < 7; ++i) EXPECT_NEAR(sch.sigmas[i], sig[i].item<double>(), 1e-6) << "sigma " << i;
    for (int i = 0; i < 6; ++i) EXPECT_NEAR(sch.timesteps[i], ts[i].item<double>(), 1e-3) << "timestep " << i;
    SampleOptions o;
    o.solver = kind;
    o.steps = 6;
    o.shift = shift;
    o.guidance = g.at("in.guidance").item<double>();
    std::vector<torch::Tensor> steps;
    auto out = sample_video(model, g.at("in.noise"), g.at("in.context"), g.at("in.negative_context"), o,
                            [&](const StepState& s) { steps.push_back(s.next.clone()); });
    ASSERT_EQ(steps.size(), 6u);
    for (int i = 0; i < 6; ++i)
        EXPECT_LE(rel_error(steps[i], g.at(prefix + "step" + std::to_string(i))), kGoldenRelTol) << "step " << i;
    EXPECT_LE(rel_error(out, g.at(prefix + "final")), kGoldenRelTol);
}
}  // namespace

TEST(Samplers, OfficialUniPCMatchesGolden) {
    SURGEON_REQUIRE_GOLDEN(golden("sampler_official_unipc.safetensors"));
    check_trace("sampler_official_unipc.safetensors", "", SolverKind::UniPC, 5.0);
}

TEST(Samplers, DiffusersUniPCMatchesGolden) {
    SURGEON_REQUIRE_GOLDEN(golden("sampler_diffusers.safetensors"));
    check_trace("sampler_diffusers.safetensors", "unipc.", SolverKind::UniPCDiffusers, 3.0);
}

TEST(Samplers, EulerMatchesGolden) {
    SURGEON_REQUIRE_GOLDEN(golden("sampler_diffusers.safetensors"));
    check_trace("sampler_diffusers.safetensors", "euler.", SolverKind::Euler, 3.0);
}

// What a StepCallback sees is what the loop did: sigma_i of the schedule, x_{i+1} of one step is x_i of the next,
// Euler's update is x + (sigma_next - sigma) v, and at the last Euler step (sigma_next = 0) x0() is the output.
TEST(Samplers, StepStateDescribesEachStep) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-t2v-tiny"));
    auto model = load_wan_model(golden("wan-t2v-tiny")).model;
    const auto& cfg = model->config();
    torch::manual_seed(3);
    auto noise = torch::randn({2, cfg.out_dim, 3, 8, 12});  // awkward grid: 3 x 4 x 6 tokens
    auto ctx = torch::randn({2, 5, cfg.text_dim}), neg = torch::randn({2, 7, cfg.text_dim});
    for (auto kind : {SolverKind::Euler, SolverKind::UniPC}) {
        SampleOptions o;
        o.solver = kind;
        o.steps = 5;
        o.shift = 3.0;
        o.guidance = 4.0;
        const auto sch = make_schedule(kind, o.steps, o.shift);
        std::vector<torch::Tensor> samples, nexts;
        torch::Tensor last_x0;
        int64_t expected_step = 0;
        auto out = sample_video(model, noise, ctx, neg, o, [&](const StepState& s) {
            EXPECT_EQ(s.step, expected_step++);
            EXPECT_EQ(s.sigma, sch.sigmas[s.step]);
            EXPECT_EQ(s.sigma_next, sch.sigmas[s.step + 1]);
            samples.push_back(s.sample.clone());
            nexts.push_back(s.next.clone());
            if (kind == SolverKind::Euler)
                EXPECT_LE(rel_error(s.next, s.sample + (s.sigma_next - s.sigma) * s.velocity), 1e-6) << s.step;
            last_x0 = s.x0().clone();
        });
        ASSERT_EQ(expected_step, 5);
        EXPECT_TRUE(torch::equal(samples[0], noise));
        for (int i = 0; i + 1 < 5; ++i) EXPECT_TRUE(torch::equal(nexts[i], samples[i + 1])) << i;
        EXPECT_TRUE(torch::equal(nexts.back(), out));
        EXPECT_EQ(sch.sigmas.back(), 0.0);
        if (kind == SolverKind::Euler) EXPECT_LE(rel_error(last_x0, out), 1e-6);
    }
}

// Rectified-flow Euler ancestral: eta 0 is the Euler step; for a sample on the flow-matching path with its exact
// velocity, any eta lands on the path at sigma_next again (clean part (1 - sigma_next) x0, noise of std sigma_next).
TEST(Samplers, EulerAncestralStepStaysOnThePath) {
    torch::manual_seed(11);
    const int64_t n = 1 << 18;
    auto x0 = torch::rand({n}) * 2 - 1, eps = torch::randn({n}), z = torch::randn({n});
    for (auto [sigma, sigma_next] : {std::pair{0.999, 0.95}, {0.9, 0.6}, {0.3, 0.05}}) {
        auto x = (1 - sigma) * x0 + sigma * eps, v = eps - x0;
        EXPECT_LE(rel_error(euler_ancestral_step(x, v, sigma, sigma_next, 0.0, z), x + (sigma_next - sigma) * v), 1e-6);
        for (double eta : {0.3, 1.0}) {
            auto next = euler_ancestral_step(x, v, sigma, sigma_next, eta, z);
            auto noise = next - (1 - sigma_next) * x0;  // what is left must be noise of std sigma_next
            EXPECT_NEAR(noise.std().item<double>() / sigma_next, 1.0, 0.01) << sigma << " " << eta;
            EXPECT_NEAR((noise * x0).mean().item<double>(), 0.0, 0.01 * sigma_next) << sigma << " " << eta;
            // Fresh noise enters: the less of the old noise is kept, the larger eta.
            const double kept = (noise * eps).mean().item<double>() / sigma_next;
            EXPECT_LT(kept, 0.999) << sigma << " " << eta;
            if (eta == 1.0) EXPECT_LT(kept, (euler_ancestral_step(x, v, sigma, sigma_next, 0.3, z) - (1 - sigma_next) * x0).mul(eps).mean().item<double>() / sigma_next);
        }
    }
    auto x = torch::randn({8}), v = torch::randn({8});
    EXPECT_THROW(euler_ancestral_step(x, v, 0.5, 0.3, 1.5, x), Error);
    EXPECT_THROW(euler_ancestral_step(x, v, 0.5, 0.0, 1.0, x), Error);
    EXPECT_THROW(euler_ancestral_step(x, v, 0.5, 0.3, 1.0, torch::randn({9})), Error);
}

// sample_video with eta > 0: Euler only, needs a noise source, reproducible with the same noise, ends on x0.
TEST(Samplers, AncestralSamplingIsReproducibleAndEndsOnX0) {
    SURGEON_REQUIRE_GOLDEN(golden("wan-t2v-tiny"));
    auto model = load_wan_model(golden("wan-t2v-tiny")).model;
    const auto& cfg = model->config();
    torch::manual_seed(5);
    auto noise = torch::randn({1, cfg.out_dim, 2, 8, 8});
    auto ctx = torch::randn({1, 5, cfg.text_dim}), neg = torch::randn({1, 5, cfg.text_dim});
    SampleOptions o;
    o.solver = SolverKind::Euler;
    o.steps = 4;
    o.shift = 3.0;
    o.guidance = 3.0;
    o.eta = 1.0;
    auto source = [&](uint64_t seed) {
        auto gen = std::make_shared<at::Generator>(at::make_generator<at::CPUGeneratorImpl>(seed));
        return [=](int64_t) { return at::randn(noise.sizes(), *gen); };
    };
    torch::Tensor last_x0;
    int64_t steps = 0;
    auto a = sample_video(model, noise, ctx, neg, o, [&](const StepState& s) { ++steps; last_x0 = s.x0().clone(); }, {}, source(1));
    EXPECT_EQ(steps, 4);
    EXPECT_LE(rel_error(last_x0, a), 1e-6);  // the last step is a plain Euler step to sigma 0
    EXPECT_TRUE(torch::equal(a, sample_video(model, noise, ctx, neg, o, nullptr, {}, source(1))));
    EXPECT_GT((a - sample_video(model, noise, ctx, neg, o, nullptr, {}, source(2))).abs().max().item<double>(), 1e-4);
    EXPECT_THROW(sample_video(model, noise, ctx, neg, o), Error);  // no noise source
    o.solver = SolverKind::UniPC;
    try {
        sample_video(model, noise, ctx, neg, o, nullptr, {}, source(1));
        ADD_FAILURE() << "eta with UniPC accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--solver euler"), std::string::npos) << e.what();
    }
}

TEST(Samplers, PublishedScheduleValues) {
    // wan-reference.md §3.3: N=50, shift=5 -> timesteps 999, 995, 991, ... 405, 356, 302, 241, 172, 92.
    auto s = make_schedule(SolverKind::UniPC, 50, 5.0);
    EXPECT_EQ(s.timesteps.front(), 999);
    EXPECT_EQ(s.timesteps[1], 995);
    const std::vector<double> tail{405, 356, 302, 241, 172, 92};
    for (int i = 0; i < 6; ++i) EXPECT_EQ(s.timesteps[44 + i], tail[i]);
    EXPECT_NEAR(s.sigmas[0], 0.9998, 1e-4);
    // N=50, shift=3: 999, 992, 985, ... 160, 111, 57.
    auto s3 = make_schedule(SolverKind::UniPC, 50, 3.0);
    EXPECT_EQ(s3.timesteps[1], 992);
    EXPECT_EQ(s3.timesteps.back(), 57);
}

TEST(Samplers, EulerIsExactForConstantVelocity) {
    // With v = eps - x0 constant, x_sigma = x0 + sigma * v is on the straight path: any solver lands on x0.
    auto x0 = torch::randn({1, 2, 1, 2, 2}), eps = torch::randn({1, 2, 1, 2, 2});
    for (auto kind : {SolverKind::Euler, SolverKind::UniPC, SolverKind::UniPCDiffusers}) {
        auto solver = make_solver(kind, 7, 3.0);
        const auto& sch = solver->schedule();
        auto x = x0 + sch.sigmas[0] * (eps - x0);
        for (int64_t i = 0; i < 7; ++i) x = solver->step(i, eps - x0, x);
        EXPECT_LE(rel_error(x, x0), 1e-5) << to_string(kind);
    }
}

TEST(Samplers, RejectsBadOptions) {
    EXPECT_THROW(make_schedule(SolverKind::UniPC, 0, 5.0), Error);
    EXPECT_THROW(make_schedule(SolverKind::UniPC, 10, -1.0), Error);
    EXPECT_THROW(make_schedule(SolverKind::UniPC, 10, std::nan("")), Error);
    EXPECT_THROW(parse_solver("ddim"), Error);
}
