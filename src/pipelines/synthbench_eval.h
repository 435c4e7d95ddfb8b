// SynthBench evaluation of a synth model (`surgeon eval`): videos generated from the held-out prompts of eval
// seeds seed, seed+1, ... (world::eval_world_seed; no training run draws them), scored against their specs, with
// the ground-truth videos' score beside them; optionally PSNR/SSIM against a reference model's videos of the same
// prompts and noise, and the one-step denoising error per noise level on ground-truth clips.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <vector>

#include "pipelines/synth_model.h"

namespace surgeon {

struct EvalOptions {
    int64_t num_samples = 8, batch = 4;  // batch: videos generated together (does not change a video)
    uint64_t seed = 0;                   // sample i uses eval seed (seed + i): prompt, world and noise
    SampleOptions sampling;
    std::vector<double> denoise_sigmas;  // each in (0, 1]; empty = no denoising curve
    int64_t sheet_videos = 8;            // how many of the first videos EvalReport::sheet keeps
    bool progress = true;
};

struct EvalReport {
    // score, metrics, ground_truth_score, ground_truth_metrics, num_samples, sampling, samples (seed, world_seed,
    // prompt and scores with details, per sample), [denoise_mse {sigma: mse}], [psnr, ssim] (with a reference).
    nlohmann::json json;
    std::vector<torch::Tensor> sheet;  // the first sheet_videos videos [3, T, H, W], for a contact sheet
};

EvalReport evaluate_synthbench(SynthModel& model, const EvalOptions& options, SynthModel* reference = nullptr);

}  // namespace surgeon
