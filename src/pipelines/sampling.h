// The text-to-video denoising loop with classifier-free guidance (wan/text2video.py §3.4 of wan-reference.md).
#pragma once
#include <functional>

#include "model/wan_model.h"
#include "pipelines/flow_solvers.h"

namespace surgeon {

struct SampleOptions {
    SolverKind solver = SolverKind::UniPC;
    int64_t steps = 50;
    double shift = 5.0;
    double guidance = 5.0;   // 1 disables CFG (one forward per step)
    bool progress = false;   // progress line on stderr
};

// Called after every step with the step index and the latents after it.
using StepCallback = std::function<void(int64_t step, const torch::Tensor& latents)>;

// noise [B, C, F, H, W] (x at sigma_0), context / negative_context [B, Lt, text_dim] -> final latents (fp32).
// Cond and uncond run as one batch of 2B. The model is run under NoGradGuard.
// `y` [B, Cy, F, H, W] (optional) is concatenated to the latents on the channel axis before every forward, as
// Wan's model does with its `y` argument (I2V's mask + image latents); then in_dim = C + Cy.
torch::Tensor sample_video(WanModel& model, const torch::Tensor& noise, const torch::Tensor& context,
                           const torch::Tensor& negative_context, const SampleOptions& options,
                           const StepCallback& on_step = nullptr, const torch::Tensor& y = {});

}  // namespace surgeon
