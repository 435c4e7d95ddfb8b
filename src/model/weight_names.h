// The one place where other naming schemes meet Wan's official names (as stable-diffusion.cpp's
// name_conversion.cpp). Surgeon's modules use the official names (`blocks.N.self_attn.q.weight`, ...).
#pragma once
#include <string>

#include "core/safetensors.h"

namespace surgeon {

enum class WeightNaming { Official, Diffusers };

// diffusers WanTransformer3DModel name -> official WanModel name; throws for a name with no mapping.
std::string diffusers_to_official(const std::string& name);
// official -> diffusers (inverse of the above).
std::string official_to_diffusers(const std::string& name);
// Renames every tensor of a map into official names; throws on collisions or unknown names.
TensorMap to_official_names(const TensorMap& tensors, WeightNaming from);
// Guesses the scheme from the tensor names (diffusers has `condition_embedder.*` / `proj_out.*`).
WeightNaming detect_naming(const TensorMap& tensors);

}  // namespace surgeon
