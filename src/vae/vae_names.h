// Wan-VAE weight names: the one conversion table between the official names (`Wan2.1_VAE.pth`) and
// diffusers' AutoencoderKLWan (`decoder.up_blocks.1.upsamplers.0.resample.1.weight`), as
// scripts/convert_wan_to_diffusers.py (convert_vae) maps them. Surgeon's modules use the official names.
#pragma once
#include <string>

#include "core/safetensors.h"
#include "vae/wan_vae.h"

namespace surgeon::vae {

// Official key -> diffusers key for a VAE of config `c` (block indices depend on num_res_blocks).
// Throws on a name that is not part of the official Wan2.1 VAE layout.
std::string official_to_diffusers_vae_name(const std::string& official, const WanVAEConfig& c);

// True if the keys look like diffusers' (e.g. `decoder.conv_in.weight` or `quant_conv.weight`).
bool has_diffusers_vae_names(const TensorMap& weights);

// Renames every tensor of a diffusers state dict to the official name. Keys with no official
// counterpart raise "unexpected tensor 'k' in <source>".
// The table comes from `model`'s own (official) parameter names.
TensorMap diffusers_to_official_vae(const TensorMap& weights, const WanVAE& model, const std::string& source);

}  // namespace surgeon::vae
