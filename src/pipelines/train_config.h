// The training config of `surgeon train` (configs/*.json): a plain config, or a curriculum (a base config and
// stages, each a JSON merge patch applied in order) whose stage N is one run of the bundled teacher's training.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pipelines/synth_model.h"

namespace surgeon {

struct TrainConfig {
    WanConfig model;  // in_dim = out_dim = 3 (RGB), patch (1, 4, 4) for the bundled teacher
    world::TextEncoderConfig text_encoder;
    world::WorldSize world;
    SampleOptions sampling;  // stored with the model as its defaults
    int64_t steps = 1000, batch = 8, warmup = 100;
    double lr = 3e-4, min_lr_ratio = 0.1, weight_decay = 0.01, beta1 = 0.9, beta2 = 0.99, grad_clip = 1.0;
    double ema = 0.999;
    // sigma = sigmoid(N(mean, std)) (logit-normal, SD3): puts the training signal on mid noise levels, where
    // the velocity is hardest to predict; uniform is available for comparison.
    std::string sigma_sampling = "logit_normal";
    // A sampler with flow shift s visits sigmas whose logit is shifted by ln(s) (sigma' = s*sigma/(1+(s-1)*sigma)),
    // so logit_mean = ln(shift) (about 1.1 for shift 3) trains where that sampler spends its steps.
    double logit_mean = 0.0, logit_std = 1.0;
    double cfg_dropout = 0.1;  // probability of training on the empty prompt (enables classifier-free guidance)
    uint64_t seed = 0;         // data stream: sample i of step s uses world seed (seed * 1e9 + s * batch + i); not 7
                               // (SynthBench's held-out seeds, world::kEvalWorldSeedBase)
    int64_t log_every = 10, checkpoint_every = 200;
    std::string dtype = "bf16";   // precision on CUDA: bf16 | bf16-lean | fp32 (fp32 master weights); CPU always fp32
    std::string device = "cuda";  // "cpu" for tests
    int64_t max_shard_bytes = 16 << 20;
    // Warm start: DiT + text encoder weights from this synth model folder (same architecture) instead of Wan's
    // init; optimiser state and EMA start fresh. For training in stages across time-boxed machines.
    std::string init_from;
    // "flat" (FlatAdamW: one buffer, a few kernels per step) or "torch" (torch::optim::AdamW, the slow twin).
    std::string optimizer = "flat";
    // Concatenate the position planes to the DiT's input (SynthSettings::position_channels; in_dim 6).
    bool position_channels = false;
    // Curriculum: world samples with an object whose motion is listed here are skipped (the sample's seed is
    // re-hashed until none is), e.g. ["left", "up"] so that every linear motion in the data goes right or
    // down. The world is symmetric under time reversal + swapping the direction words; without the reverse
    // directions it is not, so a model that ignores the sign is no longer a stationary point. Empty = the world's
    // own distribution.
    std::vector<std::string> exclude_motions;
    // Warm start only: > 0 draws the patch embedding's position-channel weights from N(0, std^2) (seeded by `seed`)
    // instead of copying them from the source (or zeros when the source has none). Zero position weights are a
    // saddle: the frame/column planes only help together with a readout of the direction word, and each has no
    // first-order gradient while the other is zero. 0 = keep.
    double position_init_std = 0.0;
    // Warm start only: > 0 redraws the text encoder's position embedding from N(0, std^2) (seeded by `seed`). The
    // bundled teacher's was initialised at N(0, 0.02^2), ~3% of the token embeddings' scale, and it stayed a bag of
    // words (word order and which colour goes with which shape did not reach the DiT); fresh encoders now start at
    // N(0, 1). 0 = keep.
    double text_pos_init_std = 0.0;
    // Swap contrast: the prompt's order-carrying words swapped must predict the same noisy clip worse than the true
    // prompt. Kinds: "direction" swaps left <-> right and up <-> down (the prompt of the clip played backwards);
    // "gradient" swaps a gradient background's two colours (the prompt of the mirrored background); "binding"
    // exchanges the colours or the shapes of two objects (the same words bound the other way round). A sample with
    // several gets one of them (chosen by its seed). swap_contrast * mean(relu((1 + swap_margin) * loss_true -
    // loss_swapped)) is added to the loss. Both are symmetries of the world that the bundled teacher did not break
    // without it (docs/history/teacher-training.md). 0 = off.
    double swap_contrast = 0.0;
    double swap_margin = 0.1;
    std::vector<std::string> swap_kinds{"direction", "gradient", "binding"};
    // > 0: the contrast is taken at its own noise level, drawn uniformly from [swap_sigma_min, 1), on the swapped
    // samples' clips and noise (one extra forward of those samples with the true prompt), instead of at the main
    // loss's sigma. Where an object starts, and so which way it can go, is decided at the sampler's first steps
    // (sigma > 0.9), where the main sigma sampling puts ~12% of the samples. 0 = off (the contrast reuses the
    // main forward).
    double swap_sigma_min = 0.0;

    // JSON: top-level model / text_encoder / world / sampling / position_channels (a synth model's surgeon.json
    // schema) and "train" with the fields above, each read, written and checked from one table (train_config.cpp);
    // an unknown key is an error naming it.
    static TrainConfig from_json(const nlohmann::json& j);
    nlohmann::json to_json() const;
};

// Training must not draw SynthBench's held-out evaluation clips (world.h: the world seed split); also checked when
// training starts, after a --steps override.
void check_world_seeds(const TrainConfig& c);

// A config file: a plain config (`stage` empty) or stage `stage` of a curriculum ({"base": config, "stages":
// [{"stage": name, "about": text, "patch": merge patch}, ...]}: base with the patches of every stage up to this one).
// `set`: "key=value" overrides of "train" fields (`surgeon train --set`), the value read as JSON or else as a
// string, applied before the checks (an unknown key is an error naming it).
TrainConfig load_train_config(const std::string& path, const std::string& stage = "",
                              const std::vector<std::string>& set = {});
// The stage names of a curriculum file in order; empty for a plain config.
std::vector<std::string> train_config_stages(const std::string& path);

}  // namespace surgeon
