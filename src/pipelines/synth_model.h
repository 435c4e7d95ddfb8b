// A text-to-video model of the synthetic world: a Wan2.1-architecture DiT in pixel space plus the world's
// tokenizer and learned text encoder, stored as one folder:
//   config.json + diffusion_pytorch_model*.safetensors   the DiT (official Wan names; loads like any Wan folder)
//   text_encoder.safetensors                             the text encoder ("text_encoder." prefix)
//   surgeon.json                                         world size, text-encoder config, default sampling
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "model/wan_model.h"
#include "pipelines/sampling.h"
#include "world/text_encoder.h"
#include "world/tokenizer.h"
#include "world/world.h"

namespace surgeon {

// The sampler settings as surgeon.json and `surgeon eval` reports write them (solver, steps, shift, guidance, eta).
nlohmann::json sampling_to_json(const SampleOptions& o);

struct SynthSettings {
    world::WorldSize size;                   // video size the model was trained on
    // Position channels: the DiT's input is the RGB video concatenated (Wan's `y`, as in Wan2.1 I2V) with three
    // constant planes holding each pixel's frame, row and column in [-1, 1], so in_dim = out_dim + 3. RoPE only
    // gives the DiT relative positions; where an object starts and which way it goes ("moving left" in an
    // absolute frame) needs absolute ones (docs/history/teacher-training.md).
    bool position_channels = false;
    world::TextEncoderConfig text_encoder;
    SampleOptions sampling;                  // defaults for generate/eval
    nlohmann::json to_json() const;
    static SynthSettings from_json(const nlohmann::json& j);
};

struct SynthModel {
    WanModel dit{nullptr};
    world::TextEncoder text_encoder{nullptr};
    world::Tokenizer tokenizer;
    SynthSettings settings;

    // [B, text_len, text_dim] contexts for prompts ("" = the unconditional prompt used for CFG).
    torch::Tensor encode(const std::vector<std::string>& prompts);
    // Generates one video per prompt from seeded noise (seed i for prompt i): [B, 3, T, H, W] in [-1, 1].
    // on_step (optional) sees every sampling step (e.g. its x0 prediction, `surgeon generate --trace`).
    torch::Tensor generate(const std::vector<std::string>& prompts, const std::vector<uint64_t>& seeds,
                           const SampleOptions& options, const StepCallback& on_step = nullptr);
    // Initial noise for a seed: [1, out_dim, T, H, W] float32 from a CPU generator (same on every machine).
    torch::Tensor noise(uint64_t seed) const;
    // The DiT's conditioning input `y` for a batch of B videos: the position planes [B, 3, T, H, W] on the DiT's
    // device, or an undefined tensor when the model has no position channels.
    torch::Tensor condition(int64_t batch) const;
    // The DiT's velocity for videos x [B, out_dim, T, H, W] at timesteps t [B] (sigma * 1000): the forward with
    // this model's conditioning concatenated. `y` = condition(B) when given (a loop passes it once made), else
    // made here.
    // `tap` (optional) observes the DiT's intermediates (model/wan_model.h).
    torch::Tensor velocity(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context,
                           const torch::Tensor& y = {}, const ActivationTap* tap = nullptr);
    void to(torch::Device device);
};

// Position planes [3, T, H, W] float32: channel 0 the frame, 1 the row, 2 the column, each mapped linearly to
// [-1, 1] over the clip / frame (pixel centres; a single frame or row is 0).
torch::Tensor position_planes(int64_t frames, int64_t height, int64_t width);
// in_dim the DiT must have for out_dim with or without position channels (checked at load and in train configs).
int64_t expected_in_dim(bool position_channels, int64_t out_dim);

bool is_synth_model_folder(const std::string& dir);
// `plan_path` (optional): run the DiT under that attention plan (phi drawn from `seed` where the checkpoint has
// none); a DiT checkpoint that carries a plan (a student) runs under it (surgery/student_checkpoint.h).
SynthModel load_synth_model(const std::string& dir, torch::Device device = torch::kCPU,
                            Precision precision = Precision::Float32, const std::string& plan_path = "",
                            uint64_t seed = 0);
// Writes the folder atomically file by file; the DiT in `dtype`, sharded at `max_shard_bytes` (0 = one file).
void save_synth_model(const SynthModel& m, const std::string& dir, torch::ScalarType dtype = torch::kFloat32,
                      uint64_t max_shard_bytes = 0);

}  // namespace surgeon
