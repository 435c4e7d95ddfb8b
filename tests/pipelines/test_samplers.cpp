// Samplers against shared/golden traces: official UniPC (batch 1), diffusers UniPC and flow Euler (batch 2),
// with CFG 5 over the tiny golden model, every step's latents compared.
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
