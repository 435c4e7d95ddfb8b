// The Wan2.1 video VAE (official `WanVAE_` of wan/modules/vae.py): Encoder3d, Decoder3d and the chunked
// encode (frames 1, 4, 4, ...) / decode (one latent frame per chunk) driven by the causal feature cache.
// State-dict keys are the official ones (`decoder.upsamples.3.resample.1.weight`); see wan-reference.md §5.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vae/vae_layers.h"

namespace surgeon::vae {

// Constructor arguments of WanVAE_ (defaults: the published Wan2.1 VAE).
struct WanVAEConfig {
    int64_t dim = 96;
    int64_t z_dim = 16;
    std::vector<int64_t> dim_mult{1, 2, 4, 4};
    int64_t num_res_blocks = 2;
    std::vector<double> attn_scales{};
    std::vector<bool> temperal_downsample{false, true, true};
};
// Reads an official config.json ({dim, z_dim, ...}) or a diffusers AutoencoderKLWan one ({base_dim, ...});
// absent fields keep the defaults. Throws on fields Surgeon does not support (Wan2.2 `is_residual`, ...).
WanVAEConfig vae_config_from_json(const nlohmann::json& j, const std::string& source);

// Latent normalisation applied outside the network: z = (mu - mean) / std.
struct LatentStats {
    torch::Tensor mean, std;  // [z_dim] float32
    // The published Wan2.1 constants (wan/modules/vae.py: WanVAE), z_dim 16.
    static LatentStats wan21();
    // (mu - mean) * (1/std), as the official encode computes it. mu [B, Z, T, H, W].
    torch::Tensor normalize(const torch::Tensor& mu) const;
    // z / (1/std) + mean, as the official decode computes it. z [B, Z, T, H, W].
    torch::Tensor denormalize(const torch::Tensor& z) const;
};

class Encoder3dImpl : public torch::nn::Module {
public:
    explicit Encoder3dImpl(const WanVAEConfig& c);
    torch::Tensor forward(const torch::Tensor& x, FeatCache* cache);  // [B, 3, t, H, W] -> [B, 2Z, 1, H/8, W/8]

private:
    CausalConv3d conv1_{nullptr}, head_conv_{nullptr};
    std::vector<ResidualBlock> down_res_;  // parallel to `kinds_`
    std::vector<AttentionBlock> down_attn_;
    std::vector<Resample> down_resample_;
    std::vector<std::pair<char, size_t>> kinds_;  // ('r'|'a'|'s', index into the vector of that kind)
    ResidualBlock middle0_{nullptr}, middle2_{nullptr};
    AttentionBlock middle1_{nullptr};
    RMSNorm head_norm_{nullptr};
};
TORCH_MODULE(Encoder3d);

class Decoder3dImpl : public torch::nn::Module {
public:
    explicit Decoder3dImpl(const WanVAEConfig& c);
    torch::Tensor forward(const torch::Tensor& x, FeatCache* cache);  // [B, Z, 1, h, w] -> [B, 3, 1|4, 8h, 8w]

private:
    CausalConv3d conv1_{nullptr}, head_conv_{nullptr};
    std::vector<ResidualBlock> up_res_;
    std::vector<AttentionBlock> up_attn_;
    std::vector<Resample> up_resample_;
    std::vector<std::pair<char, size_t>> kinds_;
    ResidualBlock middle0_{nullptr}, middle2_{nullptr};
    AttentionBlock middle1_{nullptr};
    RMSNorm head_norm_{nullptr};
};
TORCH_MODULE(Decoder3d);

struct Posterior {
    torch::Tensor mean;     // [B, Z, 1 + (T-1)/4, H/8, W/8], un-normalised
    torch::Tensor log_var;  // same shape, raw (not clamped)
};

// WanVAE_: encoder, conv1 (1x1x1, 2Z->2Z), conv2 (1x1x1, Z->Z), decoder.
class WanVAEImpl : public torch::nn::Module {
public:
    explicit WanVAEImpl(const WanVAEConfig& c);
    const WanVAEConfig& config() const { return config_; }
    // video [B, 3, T, H, W] in [-1, 1]. Frames beyond the last 1 + 4k are ignored, as in the official code.
    Posterior encode(const torch::Tensor& video);
    // Raw (un-normalised) latents [B, Z, T, h, w] -> video [B, 3, 1 + 4(T-1), 8h, 8w], not clamped.
    torch::Tensor decode(const torch::Tensor& z);

private:
    WanVAEConfig config_;
    Encoder3d encoder_{nullptr};
    Decoder3d decoder_{nullptr};
    CausalConv3d conv1_{nullptr}, conv2_{nullptr};
};
TORCH_MODULE(WanVAE);

}  // namespace surgeon::vae
