// Denoising loop.
#include "pipelines/sampling.h"

#include "core/error.h"
#include "core/progress.h"
#include "core/tensor_checks.h"

namespace surgeon {

torch::Tensor sample_video(WanModel& model, const torch::Tensor& noise, const torch::Tensor& context,
                           const torch::Tensor& negative_context, const SampleOptions& o, const StepCallback& on_step) {
    SURGEON_CHECK(std::isfinite(o.guidance) && o.guidance >= 0 && o.guidance <= 100,
                  "--guidance must be in [0, 100], got {}", o.guidance);
    model->check_inputs(noise, torch::zeros({noise.size(0)}), context);
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
    Progress bar("sample", sch.steps(), o.progress);
    for (int64_t i = 0; i < sch.steps(); ++i) {
        auto t = torch::full({cfg ? 2 * B : B}, sch.timesteps[i], torch::TensorOptions().dtype(torch::kFloat64));
        auto xin = cfg ? torch::cat({x, x}, 0) : x;
        auto v = model->forward(xin, t, ctx);  // [2B or B, C, F, H, W]
        if (cfg) {
            auto vc = v.narrow(0, 0, B), vu = v.narrow(0, B, B);
            v = vu + o.guidance * (vc - vu);
        }
        x = solver->step(i, v, x);
        if (on_step) on_step(i, x);
        bar.update(i + 1);
    }
    return x;
}

}  // namespace surgeon
