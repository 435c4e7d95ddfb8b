// Wan2.1 text-to-video end to end from a model folder, as the official generate.py (and diffusers' WanPipeline)
// run it: umT5 context of the prompt and of the negative prompt (Wan's default one unless given), the DiT
// sampled from seeded noise with CFG, the Wan-VAE decode. Folders:
//  * official: config.json + diffusion_pytorch_model*.safetensors, models_t5_umt5-xxl-enc-bf16.pth,
//    google/umt5-xxl/spiece.model, Wan2.1_VAE.pth (the published VAE config);
//  * diffusers: transformer/, text_encoder/, tokenizer/, vae/.
#pragma once
#include <torch/torch.h>

#include <string>

#include "model/wan_model.h"
#include "pipelines/sampling.h"

namespace surgeon {

// A folder with a DiT and a text encoder (official or diffusers layout).
bool is_wan_t2v_folder(const std::string& dir);

struct WanT2VRequest {
    std::string prompt;
    std::string negative_prompt;  // empty: Wan's default negative prompt (text::kWanNegativePrompt)
    int64_t frames = 81, height = 480, width = 832;
    uint64_t seed = 0;
    SampleOptions sampling;       // progress is shown when sampling.progress is set
    std::string vae;              // another VAE folder/file instead of the folder's own (e.g. a tiny test VAE)
    std::string plan;             // attention plan for the DiT (surgery), as `generate --plan`
    torch::Device device = torch::kCPU;
    Precision precision = Precision::Float32;  // bf16 also runs umT5 in bf16, as Wan does
    AttentionImpl attention_impl = AttentionImpl::Fast;
    bool progress = true;         // one line per stage on stderr
};

// -> video [3, frames, height, width] in [-1, 1], float32 on the CPU.
torch::Tensor generate_wan_t2v(const std::string& dir, const WanT2VRequest& request);

}  // namespace surgeon
