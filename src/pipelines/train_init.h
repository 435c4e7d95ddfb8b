// The model a training run starts from: Wan's initialisation seeded by the config, or a warm start from a synth
// model folder (init_from) with optional widening / redrawing of the position inputs.
#pragma once
#include "pipelines/synth_model.h"
#include "pipelines/train_config.h"

namespace surgeon {

// The untrained model of a run: seeded exactly as train_synth_model does (same config -> same weights).
SynthModel init_synth_model(const TrainConfig& config);

// init_synth_model, then (when config.init_from is set) the DiT and text encoder weights of that folder (strict:
// same architecture), zero weights for position channels the source lacks, and the position_init_std /
// text_pos_init_std redraws. Optimiser state and EMA are not part of it: they start fresh.
SynthModel initial_train_model(const TrainConfig& config);

}  // namespace surgeon
