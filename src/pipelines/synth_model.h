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

struct SynthSettings {
    world::WorldSize size;                   // video size the model was trained on
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
    torch::Tensor generate(const std::vector<std::string>& prompts, const std::vector<uint64_t>& seeds,
                           const SampleOptions& options);
    // Initial noise for a seed: [1, C, T, H, W] float32 from a CPU generator (same on every machine).
    torch::Tensor noise(uint64_t seed) const;
    void to(torch::Device device);
};

bool is_synth_model_folder(const std::string& dir);
SynthModel load_synth_model(const std::string& dir, torch::Device device = torch::kCPU,
                            Precision precision = Precision::Float32);
// Writes the folder atomically file by file; the DiT in `dtype`, sharded at `max_shard_bytes` (0 = one file).
void save_synth_model(const SynthModel& m, const std::string& dir, torch::ScalarType dtype = torch::kFloat32,
                      uint64_t max_shard_bytes = 0);

}  // namespace surgeon
