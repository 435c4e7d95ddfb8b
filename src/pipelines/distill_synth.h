// `surgeon distill` on a synth model (method.md §5.1, stage 1, first version): record the teacher's
// self-attention cores on noised clips of the synthetic world, distil every (block, option) from them
// (surgery/distill.h) and write the block-error table that `surgeon plan knapsack` selects with.
//
// Data: `clips` training and `heldout_clips` held-out world clips (world seeds train_world_seed(data_seed, n), never
// SynthBench's), each noised as flow matching does, x = (1 - sigma) x0 + sigma eps, at every sigma in `sigmas`, with
// its prompt. Not yet the teacher's own sampling trajectories (method.md's choice): clips of the world the teacher
// was trained on, at the noise levels the sampler visits.
//
// Output folder: block_errors.json (surgeon.block_errors: options, errors[block][option] = held-out mean |y - y_hat|,
// 0 for softmax), phi/<option>/block<N>.safetensors (the distilled feature maps, names as in a student:
// "phi_q.w1", ...), progress.json (the run's settings and every finished entry, rewritten atomically after each;
// --resume skips finished entries and refuses other settings).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "surgery/distill.h"

namespace surgeon {

struct DistillRunConfig {
    std::string model;        // synth model folder (the teacher)
    std::string options;      // JSON: {"options": [{"name": ..., plan entry keys}, ...]} (rate_selection.h)
    std::string out;          // output folder
    int64_t clips = 8, heldout_clips = 2;
    std::vector<double> sigmas = {0.3, 0.5, 0.7, 0.85, 0.95};
    uint64_t data_seed = 90;  // world seeds of the clips; must keep clear of SynthBench's (checked)
    DistillOptions train;     // per (block, option)
    bool resume = false;
    double time_limit_s = 0;  // > 0: stop cleanly after the entry that crosses it (resume continues)
    torch::Device device = torch::kCPU;
    bool progress = true;
    // What must match on --resume; `options` = the parsed options file.
    nlohmann::json settings_json(const nlohmann::json& options) const;
};

struct DistillRunResult {
    bool finished = false;  // every entry done and block_errors.json written
    int64_t entries_done = 0, entries_total = 0;
};

DistillRunResult run_distill(const DistillRunConfig& config);

}  // namespace surgeon
