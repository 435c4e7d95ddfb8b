// The bundled models' "it is trained" check: one denoising step from sigma 0.5 on the ground-truth clip of a
// held-out world seed (the trainer refuses runs that would draw it; not among the usual eval prompts either).
#pragma once
#include <string>

#include "pipelines/synth_model.h"
#include "world/prompt.h"
#include "world/world.h"

namespace surgeon::testing {

struct HeldOutDenoise {
    double noisy = 0;     // mean squared error of the noisy clip
    double denoised = 0;  // of the one-step x0 prediction with the clip's prompt
    double empty = 0;     // of the one-step x0 prediction with the empty prompt (with_empty_prompt only)
};

inline HeldOutDenoise held_out_denoise(SynthModel& m, bool with_empty_prompt = false) {
    m.dit->eval();
    torch::NoGradGuard ng;
    const auto spec = world::sample_spec(world::eval_world_seed(500000));
    auto x0 = world::render(spec, m.settings.size).unsqueeze(0);
    auto eps = m.noise(11);
    const double s = 0.5;
    auto xs = (1 - s) * x0 + s * eps;
    auto mse = [&](const std::string& prompt) {
        auto v = m.velocity(xs, torch::full({1}, 1000.0 * s), m.encode({prompt}));
        return (xs - s * v - x0).pow(2).mean().item<double>();
    };
    HeldOutDenoise r;
    r.noisy = (xs - x0).pow(2).mean().item<double>();
    r.denoised = mse(world::prompt(spec));
    if (with_empty_prompt) r.empty = mse("");
    return r;
}

}  // namespace surgeon::testing
