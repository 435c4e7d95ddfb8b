// `surgeon train`: a Wan-architecture DiT + the world's text encoder trained from scratch with flow matching
// on the synthetic world (pixel space). AdamW, linear warm-up + cosine decay, EMA, gradient clipping,
// bf16 compute on CUDA, logit-normal sigma sampling, CFG dropout; atomic checkpoints and exact resume.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "pipelines/train_batch.h"
#include "pipelines/train_config.h"
#include "pipelines/train_init.h"

namespace surgeon {

struct TrainResult {
    int64_t steps_done = 0;
    double final_loss = 0;  // mean loss over the last log window
    double seconds = 0;
};


// Trains into `out_dir`: checkpoint/ (resume state), model/ (EMA weights, a synth model folder, refreshed
// atomically at every checkpoint and at the end), loss.csv, loss.png and train_config.json. With `resume`,
// continues from out_dir/checkpoint if present.
// `stop_after` > 0 ends the run after that many steps (with a checkpoint), as a kill right after a
// checkpoint would: tests use it to check that resuming reproduces an uninterrupted run.
// `time_limit_s` > 0 ends the run (checkpoint + model export) at the first step that finishes after that many
// seconds of this call, for time-boxed machines; `--resume` continues it.
TrainResult train_synth_model(const TrainConfig& config, const std::string& out_dir, bool resume, bool progress = true,
                              int64_t stop_after = -1, double time_limit_s = -1);

}  // namespace surgeon
