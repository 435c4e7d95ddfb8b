// Loading the Wan-VAE: the official torch pickle `Wan2.1_VAE.pth` (read by libtorch's zip reader and
// unpickler, no Python), its safetensors copy, and diffusers AutoencoderKLWan folders; strict weight
// checks with one-line errors; the latent normalisation that goes with each form.
#pragma once
#include <torch/torch.h>

#include <optional>
#include <string>

#include "core/safetensors.h"
#include "vae/wan_vae.h"

namespace surgeon::vae {

// Every tensor of a `torch.save` zip checkpoint holding a state dict (optionally nested under
// "state_dict" or "model"). Truncated, legacy-format or malformed files give a one-line error.
TensorMap read_torch_checkpoint(const std::string& path);

// Copies `weights` (official names) into `model`. Strict: a missing tensor, an unexpected tensor, a wrong
// shape or a non-float dtype is an error naming the tensor, the expected and the actual value; nothing is
// copied unless everything matches. Float16/bfloat16 inputs are converted to the model's dtype.
void load_vae_weights(WanVAE& model, const TensorMap& weights, const std::string& source);

struct LoadedVAE {
    WanVAE model{nullptr};
    std::optional<LatentStats> stats;  // from config.json, else the Wan2.1 constants when z_dim is 16
    std::string weights_path;
    bool diffusers_names = false;  // the file used diffusers' names and was converted
};

// `path` is a folder holding Wan2.1_VAE.safetensors or Wan2.1_VAE.pth (config.json optional: the published
// config is assumed), a diffusers folder (config.json + diffusion_pytorch_model.safetensors, or its parent
// with vae/), or a weights file. The model is in eval mode on `device`, float32.
LoadedVAE load_vae(const std::string& path, torch::Device device = torch::kCPU);

// Latents -> video as `surgeon decode` and a generate pipeline need it: with `normalized`, undo the latent
// normalisation first (an error if the VAE has no mean/std); decode; clamp to [-1, 1] as WanVAE.decode does.
// latents [B, Z, T, h, w] on any device -> video [B, 3, 1 + 4(T-1), 8h, 8w] on the VAE's device.
torch::Tensor decode_latents(LoadedVAE& vae, const torch::Tensor& latents, bool normalized);

}  // namespace surgeon::vae
