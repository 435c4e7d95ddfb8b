// What a training run keeps on disk (see trainer.h): checkpoint/ (weights, EMA, AdamW moments, loss history,
// step; atomic, exact resume), model/ (the EMA as a synth model folder), loss.csv + loss.png, train_config.json.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "pipelines/synth_model.h"
#include "pipelines/train_config.h"
#include "pipelines/train_optimizer.h"

namespace surgeon {

// One row per log window: step, loss, lr, grad_norm, elapsed seconds.
using TrainHistory = std::vector<std::array<double, 5>>;

// Writes out_dir/train_config.json: the config as run. A resume without init_from keeps the warm start recorded
// before, so the record says how the run began.
void write_train_record(const TrainConfig& config, const std::string& out_dir, bool resume);

// loss.csv and loss.png of the history.
void write_train_history(const std::string& out_dir, const TrainHistory& history);

// The checkpoint of out_dir (checkpoint/, or checkpoint.old/ after a kill mid-swap) into the parameters, the EMA
// and moments of `optimizer` and `history`; returns the step it was taken at (0 and nothing loaded when there is
// none) and the seconds trained before it in `elapsed_s`.
int64_t load_train_checkpoint(const std::string& out_dir, TrainParams& params, TrainOptimizer& optimizer,
                              TrainHistory& history, double& elapsed_s);
// Writes checkpoint/ atomically (then loss.csv / loss.png).
void save_train_checkpoint(const std::string& out_dir, int64_t step, double elapsed_s, const TrainParams& params,
                           const TrainOptimizer& optimizer, const TrainHistory& history);

// out_dir/model: the EMA weights as a synth model folder (bf16 shards of config.max_shard_bytes), atomically.
void export_train_model(const std::string& out_dir, const TrainConfig& config, const SynthSettings& settings,
                        const TrainOptimizer& optimizer);

}  // namespace surgeon
