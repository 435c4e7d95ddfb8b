// Stage 1's run (method.md §5.1): record the teacher's self-attention cores and train every (block, option) of an
// options file at once (stage1_trainer.h, StageOneTrainer), then write the block-error table that stage 2 selects
// with. One loop for every teacher (run_stage1); a teacher kind only says how its forwards are recorded
// (Stage1Source). run_distill is `surgeon distill` on a synth teacher; the surgery on Wan teachers records
// Wan's own sampling trajectories of umT5-encoded prompts (surgery.h).
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

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "surgery/stage1_trainer.h"

namespace surgeon {

struct DistillRunConfig {
    std::string model;        // synth model folder (the teacher)
    std::string options;      // JSON: {"options": [{"name": ..., plan entry keys}, ...]} (block_errors.h)
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

// A teacher's recordings: the forwards of training items (trajectories or clips) [first, first + count) and of
// the held-out set, per block in the order they ran.
using Recorded = std::map<int64_t, std::vector<AttentionSample>>;
struct Stage1Source {
    WanModel dit{nullptr};  // the teacher's DiT (its config: blocks, heads)
    TokenGrid grid;         // tokens of one recorded forward
    int64_t items = 0;      // training items; a round records `batch` of them
    std::function<Recorded(int64_t first, int64_t count)> record;
    std::function<Recorded()> record_heldout;
};

// The options file parsed and the run's record (progress.json, checked against the settings on --resume; the
// teacher kind adds its own settings), before any model is loaded.
struct Stage1Run {
    std::vector<std::string> names;
    std::vector<PlanEntry> entries;
    nlohmann::json settings, progress;
};
Stage1Run open_stage1(const DistillRunConfig& config, const nlohmann::json& source_settings);
// The rounds (resumed from the checkpoint), then the held-out errors and the outputs.
DistillRunResult run_stage1(const DistillRunConfig& config, Stage1Run run, const Stage1Source& source,
                            int64_t stop_after_rounds = -1);

// `stop_after_rounds` > 0 ends the call after that many rounds of this call (as a kill right after a checkpoint
// would; tests check that resuming reproduces an uninterrupted run).
DistillRunResult run_distill(const DistillRunConfig& config, int64_t stop_after_rounds = -1);

}  // namespace surgeon
