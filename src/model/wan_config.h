// WanConfig: the hyper-parameters of a Wan2.1 DiT (official `config.json` names), read from the
// official or the diffusers config format, validated, and written back in the official format.
#pragma once
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/types.h"

namespace surgeon {

struct WanConfig {
    std::string model_type = "t2v";
    int64_t dim = 1536;
    int64_t ffn_dim = 8960;
    int64_t freq_dim = 256;
    int64_t in_dim = 16;
    int64_t out_dim = 16;
    int64_t num_heads = 12;
    int64_t num_layers = 30;
    int64_t text_len = 512;
    int64_t text_dim = 4096;
    std::array<int64_t, 3> patch_size{1, 2, 2};
    double eps = 1e-6;
    bool qk_norm = true;
    bool cross_attn_norm = true;
    // Official WanModel zero-pads the context to text_len rows (cross-attention sees the padded rows); diffusers'
    // transformer uses the context as given (its pipeline pads to 512 before calling it). Diffusers configs have
    // no text_len, so they load with pad_context = false and text_len 512 as the upper bound.
    bool pad_context = true;

    int64_t head_dim() const { return dim / num_heads; }
    int64_t patch_volume() const { return patch_size[0] * patch_size[1] * patch_size[2]; }

    // Official (WanModel) config.json; missing keys keep the published class defaults (text_dim 4096, ...).
    static WanConfig from_official_json(const nlohmann::json& j);
    // diffusers WanTransformer3DModel config.json.
    static WanConfig from_diffusers_json(const nlohmann::json& j);
    nlohmann::json to_json() const;  // official format
    // Throws a one-line error for an inconsistent config (e.g. dim not divisible by num_heads).
    void validate() const;
    // Parameter count implied by the config (used by `inspect` and tests).
    int64_t num_parameters() const;
};

// The DiT's token grid for an input of frames x height x width (latents [B, C, F, H, W] of a Wan model, pixel videos
// of a synth model): each size divided by the patch size, as the patch embedding's stride divides it.
TokenGrid token_grid(const WanConfig& cfg, int64_t frames, int64_t height, int64_t width);

// The latent size {F, H, W} of a frames x height x width video under the Wan-VAE's 4x8x8 compression (the first
// frame alone, then 4 per latent frame: frames = 4k + 1 gives k + 1).
inline std::array<int64_t, 3> vae_latent_size(int64_t frames, int64_t height, int64_t width) {
    return {(frames - 1) / 4 + 1, height / 8, width / 8};
}

// Presets: "wan2.1-t2v-1.3b", "wan2.1-t2v-14b".
WanConfig wan_preset(const std::string& name);

}  // namespace surgeon
