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
    double eta = 0.0;        // Euler only: > 0 makes the steps ancestral (fresh noise each step, euler_ancestral_step)
    bool progress = false;   // progress line on stderr
    // Observes every model forward of the loop (not saved with settings): e.g. stage 1 records the teacher's
    // attention along its own sampling trajectory (cond and uncond rows together when CFG is on).
    const ActivationTap* tap = nullptr;
};

// What one sampling step saw and did, passed to a StepCallback after the step. Tensors are on the model's device;
// the references are valid during the callback only (clone what you keep).
struct StepState {
    int64_t step;                    // i = 0 .. steps - 1
    double sigma, sigma_next;        // sigma_i (of `sample`) and sigma_{i+1} (of `next`); the last sigma_next is 0
    const torch::Tensor& sample;     // x_i [B, C, F, H, W] (fp32)
    const torch::Tensor& velocity;   // the (guided) velocity v_i the solver stepped with
    const torch::Tensor& next;       // x_{i+1}
    // The model's prediction of the clean video at this step, x_i - sigma_i v_i (flow matching: v = eps - x0).
    torch::Tensor x0() const { return sample - sigma * velocity; }
};
// Called after every step.
using StepCallback = std::function<void(const StepState& state)>;
// Fresh standard-normal noise [B, C, F, H, W] for ancestral step i (options.eta > 0); its own stream per video, so a
// video does not depend on the batch it is sampled in (SynthModel::generate seeds one per video).
using StepNoise = std::function<torch::Tensor(int64_t step)>;

// noise [B, C, F, H, W] (x at sigma_0), context / negative_context [B, Lt, text_dim] -> final latents (fp32).
// Cond and uncond run as one batch of 2B. The model is run under NoGradGuard.
// `y` [B, Cy, F, H, W] (optional) is concatenated to the latents on the channel axis before every forward, as
// Wan's model does with its `y` argument (I2V's mask + image latents); then in_dim = C + Cy.
torch::Tensor sample_video(WanModel& model, const torch::Tensor& noise, const torch::Tensor& context,
                           const torch::Tensor& negative_context, const SampleOptions& options,
                           const StepCallback& on_step = nullptr, const torch::Tensor& y = {},
                           const StepNoise& step_noise = nullptr);

}  // namespace surgeon
