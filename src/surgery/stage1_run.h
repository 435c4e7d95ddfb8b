// `surgeon distill` on a synth teacher (method.md §5.1, stage 1): record the teacher's self-attention cores and
// train every (block, option) of an options file at once (surgery/distill.h, StageOneTrainer), then write the
// block-error table that `surgeon plan knapsack` selects with.
//
// Data (`data`):
//  * "trajectories" (default, the paper's): the teacher samples world prompts (world seeds
//    train_world_seed(data_seed, n), never SynthBench's) with `noise_seeds` noise seeds each along its own sampler
//    (surgeon.json's solver/shift/guidance, `sample_steps` steps), and every forward of every step is recorded:
//    the conditional and the unconditional CFG rows alike, x_sigma from sigma = 1 down to the last step.
//  * "noised": world clips noised as flow matching does, x = (1 - sigma) x0 + sigma eps, at each of `sigmas`,
//    conditional prompt only (the first version's data; kept as the ablation "noised ground truth").
// Training runs in rounds: a round records `batch` trajectories (or clips), then makes `updates` optimiser steps,
// each on one recorded forward per block (chosen by a generator seeded with the round). Held-out errors: value L1
// on `heldout_prompts` further prompts (recorded at the end), before (fresh, calibrated cores) and after training.
//
// Output folder: block_errors.json (surgeon.block_errors, errors[block][option] = held-out mean |y - y_hat|, 0 for
// softmax), block_errors_init.json (the same for untrained cores), errors.png (heat map), phi/<option>/block<N>
// .safetensors (names as in a student: "phi_q.w1", ..., "linear_log_scale"), loss.csv (mean training loss per round
// and option), checkpoint/ (cores + optimiser + progress.json, replaced atomically after every round; --resume
// continues from it and refuses other settings).
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
    std::string data = "trajectories";  // trajectories | noised
    int64_t prompts = 8, heldout_prompts = 2, noise_seeds = 1;
    int64_t batch = 2;        // trajectories (or clips) recorded per round
    int64_t updates = 40;     // optimiser steps per round
    int64_t sample_steps = 0; // sampler steps of the recorded trajectories; 0 = the teacher's default
    std::vector<double> sigmas = {0.3, 0.5, 0.7, 0.85, 0.95};  // "noised" only
    int64_t heldout_queries = 0;  // > 0: held-out errors of hybrid/linear options on that many queries per sample
    uint64_t data_seed = 90;  // world seeds of the prompts/clips; must keep clear of SynthBench's (checked)
    StageOneOptions train;
    bool resume = false;
    double time_limit_s = 0;  // > 0: stop cleanly after the round that crosses it (resume continues)
    torch::Device device = torch::kCPU;
    bool progress = true;
    // What must match on --resume; `options` = the parsed options file.
    nlohmann::json settings_json(const nlohmann::json& options) const;
    void validate() const;  // every value, before any work (one-line errors)
};

struct DistillRunResult {
    bool finished = false;  // every round done and block_errors.json written
    int64_t rounds_done = 0, rounds_total = 0;
};

// `stop_after_rounds` > 0 ends the call after that many rounds of this call (as a kill right after a checkpoint
// would; tests check that resuming reproduces an uninterrupted run).
DistillRunResult run_distill(const DistillRunConfig& config, int64_t stop_after_rounds = -1);

}  // namespace surgeon
