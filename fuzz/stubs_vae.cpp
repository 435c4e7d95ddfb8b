// The VAE model code that vae_io.cpp also holds but the .pth reader never reaches: stubs that abort (a harness
// reaching one is a finding), so fuzz_pth links without compiling the model.
#include <cstdlib>

#include "vae/vae_names.h"
#include "vae/wan_vae.h"

namespace surgeon::vae {
bool has_diffusers_vae_names(const TensorMap&) { std::abort(); }
TensorMap diffusers_to_official_vae(const TensorMap&, const WanVAE&, const std::string&) { std::abort(); }
WanVAEConfig vae_config_from_json(const nlohmann::json&, const std::string&) { std::abort(); }
LatentStats LatentStats::wan21() { std::abort(); }
torch::Tensor LatentStats::denormalize(const torch::Tensor&) const { std::abort(); }
WanVAEImpl::WanVAEImpl(const WanVAEConfig&) { std::abort(); }
torch::Tensor WanVAEImpl::decode(const torch::Tensor&) { std::abort(); }
}  // namespace surgeon::vae
