// The trainer's data: world clips of a training seed, their prompts (with CFG dropout and the swap contrast's
// swapped prompts), noise and sigma, all a function of (config, step) only, so a resumed run sees the batches an
// uninterrupted one would, on any device.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "pipelines/train_config.h"

namespace surgeon {

// One training batch of step `step`: world videos [B, 3, T, H, W] in [-1, 1], their prompts ("" with
// probability cfg_dropout), noise like the videos and sigma [B] from a per-step generator (same on any device).
struct TrainBatch {
    torch::Tensor videos, eps, sigma;
    std::vector<std::string> prompts;
    // swap_contrast > 0: the swapped prompts of the samples in `swapped_index` (those with a non-empty prompt and
    // something of swap_kinds to swap), in that order, and the kind of swap of each ("direction", ...).
    std::vector<std::string> swapped_prompts, swapped_kinds;
    std::vector<int64_t> swapped_index;
    // swap_sigma_min > 0: the contrast's noise level per swapped sample, in [swap_sigma_min, 1) (else undefined).
    torch::Tensor swap_sigma;
};
TrainBatch make_train_batch(const TrainConfig& config, int64_t step);

}  // namespace surgeon
