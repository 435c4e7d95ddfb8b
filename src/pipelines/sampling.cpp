// Denoising loop.
#include "pipelines/sampling.h"

#include "core/error.h"
#include "core/progress.h"
#include "core/tensor_checks.h"

namespace surgeon {

torch::Tensor sample_video(WanModel& model, const torch::Tensor& noise, const torch::Tensor& context,
                           const torch::Tensor& negative_context, const SampleOptions& o, const StepCallback& on_step,
                           const torch::Tensor& y, const StepNoise& step_noise) {
    SURGEON_CHECK(std::isfinite(o.guidance) && o.guidance >= 0 && o.guidance <= 100,
                  "--guidance must be in [0, 100], got {}", o.guidance);
    SURGEON_CHECK(noise.dim() == 5, "tensor 'noise': expected 5 dims [B, C, F, H, W], got {}", noise.dim());
    SURGEON_CHECK(noise.size(1) == model->config().out_dim,
                  "tensor 'noise': {} channels, but the model predicts out_dim = {}", noise.size(1), model->config().out_dim);
    if (y.defined()) {
        check_shape("y", y, {noise.size(0), -1, noise.size(2), noise.size(3), noise.size(4)});
        model->check_inputs(torch::cat({noise, y.to(noise.device(), noise.scalar_type())}, 1), torch::zeros({noise.size(0)}), context);
    } else {
        model->check_inputs(noise, torch::zeros({noise.size(0)}), context);
    }
    SURGEON_CHECK(std::isfinite(o.eta) && o.eta >= 0 && o.eta <= 1, "--eta must be in [0, 1], got {}", o.eta);
    SURGEON_CHECK(o.eta == 0 || o.solver == SolverKind::Euler, "--eta (ancestral steps) needs --solver euler, got {}",
                  to_string(o.solver));
    SURGEON_CHECK(o.eta == 0 || step_noise, "sample_video: eta > 0 needs a per-step noise source");
    const bool cfg = o.guidance != 1.0;
    if (cfg) {
        check_shape("negative_context", negative_context, {noise.size(0), -1, model->config().text_dim});
        check_finite("negative_context", negative_context);
    }
    torch::NoGradGuard ng;
    auto solver = make_solver(o.solver, o.steps, o.shift);
    const auto& sch = solver->schedule();
    const auto dev = model->device();
    const int64_t B = noise.size(0);
    auto x = noise.to(dev, torch::kFloat32);
    // Pad both contexts to a common length so they can share one batch (padding rows are zeros, as Wan pads).
    auto pad = [&](const torch::Tensor& c, int64_t len) {
        auto t = c.to(dev, torch::kFloat32);
        if (t.size(1) < len) t = torch::cat({t, t.new_zeros({B, len - t.size(1), t.size(2)})}, 1);
        return t;
    };
    torch::Tensor ctx;
    if (cfg) {
        const int64_t len = std::max(context.size(1), negative_context.size(1));
        ctx = torch::cat({pad(context, len), pad(negative_context, len)}, 0);  // [2B, Lt, D]
    } else {
        ctx = context.to(dev, torch::kFloat32);
    }
    torch::Tensor yin;  // y for the batch the model sees (doubled for CFG)
    if (y.defined()) {
        yin = y.to(dev, torch::kFloat32);
        if (cfg) yin = torch::cat({yin, yin}, 0);
    }
    Progress bar("sample", sch.steps(), o.progress);
    for (int64_t i = 0; i < sch.steps(); ++i) {
        auto t = torch::full({cfg ? 2 * B : B}, sch.timesteps[i], torch::TensorOptions().dtype(torch::kFloat64));
        auto xin = cfg ? torch::cat({x, x}, 0) : x;
        if (yin.defined()) xin = torch::cat({xin, yin}, 1);
        auto v = model->forward(xin, t, ctx, o.tap);  // [2B or B, C, F, H, W]
        if (cfg) {
            auto vc = v.narrow(0, 0, B), vu = v.narrow(0, B, B);
            v = vu + o.guidance * (vc - vu);
        }
        auto next = o.eta > 0 && sch.sigmas[i + 1] > 0
                        ? euler_ancestral_step(x, v, sch.sigmas[i], sch.sigmas[i + 1], o.eta, step_noise(i))
                        : solver->step(i, v, x);
        if (on_step) on_step(StepState{i, sch.sigmas[i], sch.sigmas[i + 1], x, v, next});
        x = next;
        bar.update(i + 1);
    }
    return x;
}

}  // namespace surgeon
