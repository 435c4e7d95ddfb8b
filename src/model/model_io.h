// Model folders as published: official Wan2.1 (config.json + diffusion_pytorch_model*.safetensors, official
// names) and diffusers (transformer/config.json, diffusers names), detected automatically. Loading is strict.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "model/wan_config.h"
#include "model/wan_model.h"
#include "model/weight_names.h"

namespace surgeon {

struct ModelFolder {
    std::string root;          // folder given by the user
    std::string config_path;   // config.json used
    WeightNaming naming = WeightNaming::Official;
    std::string weights_path;  // a .safetensors file or a .safetensors.index.json
    bool sharded = false;
};

// Finds config and weights in `path` (an official folder, a diffusers folder or its `transformer/`).
ModelFolder find_model_folder(const std::string& path);
WanConfig read_model_config(const ModelFolder& folder);
// All tensors of the folder, renamed to official names.
TensorMap read_model_tensors(const ModelFolder& folder, Metadata* metadata = nullptr);

struct StrictLoadOptions {
    // Parameters under these name prefixes may be missing from the checkpoint (they keep their init),
    // e.g. feature-map weights when a teacher is loaded under a surgery plan.
    std::vector<std::string> allow_missing_prefixes;
};
// Copies `tensors` into `module`'s parameters and buffers. Errors name the tensor and the expected vs actual
// value for: missing, unexpected, wrong shape, non-float or mixed dtypes.
void load_state_dict_strict(torch::nn::Module& module, const TensorMap& tensors,
                            const StrictLoadOptions& options = {}, const std::string& source = "checkpoint");

struct LoadedModel {
    WanModel model{nullptr};
    ModelFolder folder;
    Metadata metadata;
    torch::ScalarType checkpoint_dtype = torch::kFloat32;
};
LoadedModel load_wan_model(const std::string& path, torch::Device device = torch::kCPU,
                           Precision precision = Precision::Float32);

// Writes config.json + diffusion_pytorch_model.safetensors (or shards of at most `max_shard_bytes` with an
// index) in `dtype`, official names, atomically per file. Creates `dir` if needed.
void save_wan_model(const WanModel& model, const std::string& dir, torch::ScalarType dtype = torch::kFloat32,
                    uint64_t max_shard_bytes = 0, const Metadata& metadata = {});

// The module's parameters and persistent buffers as a name -> tensor map.
TensorMap state_dict(const torch::nn::Module& module);

}  // namespace surgeon
