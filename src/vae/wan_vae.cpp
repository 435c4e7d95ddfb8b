// Wan-VAE encoder/decoder and the chunked encode/decode of WanVAE_ (wan/modules/vae.py), with the
// latent normalisation constants of the published Wan2.1 VAE.
#include "vae/wan_vae.h"

#include <algorithm>

#include "core/error.h"

namespace surgeon::vae {

namespace {

using Dims = std::vector<int64_t>;

std::shared_ptr<torch::nn::Module> make_holder() { return std::make_shared<torch::nn::Module>("Sequential"); }

bool contains_scale(const std::vector<double>& scales, double s) {
    return std::any_of(scales.begin(), scales.end(), [&](double v) { return v == s; });
}

// Runs one block list (downsamples / upsamples) with the cache, in order.
torch::Tensor run_blocks(torch::Tensor x, const std::vector<std::pair<char, size_t>>& kinds,
                         std::vector<ResidualBlock>& res, std::vector<AttentionBlock>& attn,
                         std::vector<Resample>& resample, FeatCache* cache) {
    for (const auto& [kind, i] : kinds) {
        if (kind == 'r') {
            x = res[i]->forward(x, cache);
        } else if (kind == 'a') {
            x = attn[i]->forward(x);
        } else {
            x = resample[i]->forward(x, cache);
        }
    }
    return x;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
WanVAEConfig vae_config_from_json(const nlohmann::json& j, const std::string& source) {
    WanVAEConfig c;
    try {
        SURGEON_CHECK(j.is_object(), "{}: VAE config is not a JSON object", source);
        if (j.contains("dim")) c.dim = j.at("dim").get<int64_t>();
        if (j.contains("base_dim")) c.dim = j.at("base_dim").get<int64_t>();
        if (j.contains("z_dim")) c.z_dim = j.at("z_dim").get<int64_t>();
        if (j.contains("dim_mult")) c.dim_mult = j.at("dim_mult").get<std::vector<int64_t>>();
        if (j.contains("num_res_blocks")) c.num_res_blocks = j.at("num_res_blocks").get<int64_t>();
        if (j.contains("attn_scales")) c.attn_scales = j.at("attn_scales").get<std::vector<double>>();
        if (j.contains("temperal_downsample")) c.temperal_downsample = j.at("temperal_downsample").get<std::vector<bool>>();
        if (j.contains("is_residual") && !j.at("is_residual").is_null()) {
            SURGEON_CHECK(!j.at("is_residual").get<bool>(), "{}: is_residual=true (the Wan2.2 VAE) is not supported",
                          source);
        }
        if (j.contains("patch_size") && !j.at("patch_size").is_null()) {
            SURGEON_CHECK(j.at("patch_size").get<int64_t>() == 1, "{}: patch_size {} (the Wan2.2 VAE) is not supported",
                          source, j.at("patch_size").dump());
        }
        if (j.contains("decoder_base_dim") && !j.at("decoder_base_dim").is_null()) {
            SURGEON_CHECK(j.at("decoder_base_dim").get<int64_t>() == c.dim,
                          "{}: decoder_base_dim {} differs from base_dim {} (not supported)", source,
                          j.at("decoder_base_dim").dump(), c.dim);
        }
        for (const char* k : {"in_channels", "out_channels"}) {
            if (j.contains(k)) SURGEON_CHECK(j.at(k).get<int64_t>() == 3, "{}: {} must be 3, got {}", source, k, j.at(k).dump());
        }
    } catch (const nlohmann::json::exception& e) {
        fail("{}: bad VAE config field ({})", source, e.what());
    }
    SURGEON_CHECK(c.dim > 0 && c.z_dim > 0 && c.num_res_blocks > 0, "{}: dim, z_dim and num_res_blocks must be positive",
                  source);
    SURGEON_CHECK(c.dim_mult.size() == 4, "{}: dim_mult must have 4 entries (Wan2.1 VAE), got {}", source,
                  c.dim_mult.size());
    SURGEON_CHECK(c.temperal_downsample.size() == c.dim_mult.size() - 1,
                  "{}: temperal_downsample must have {} entries, got {}", source, c.dim_mult.size() - 1,
                  c.temperal_downsample.size());
    return c;
}

LatentStats LatentStats::wan21() {
    static const std::vector<float> mean{-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                                         0.4134,  -0.0715, 0.5517,  -0.3632, -0.1922, -0.9497, 0.2503,  -0.2921};
    static const std::vector<float> std{2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                        3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160};
    return {torch::tensor(mean), torch::tensor(std)};
}

torch::Tensor LatentStats::normalize(const torch::Tensor& mu) const {
    SURGEON_CHECK(mu.dim() == 5 && mu.size(1) == mean.numel(), "latents have {} channels, the VAE's latent mean has {}",
                  mu.dim() == 5 ? mu.size(1) : -1, mean.numel());
    auto m = mean.to(mu.device(), mu.scalar_type()).view({1, -1, 1, 1, 1});
    auto inv_std = (1.0 / std).to(mu.device(), mu.scalar_type()).view({1, -1, 1, 1, 1});
    return (mu - m) * inv_std;  // [B, Z, T, H, W]
}

torch::Tensor LatentStats::denormalize(const torch::Tensor& z) const {
    SURGEON_CHECK(z.dim() == 5 && z.size(1) == mean.numel(), "latents have {} channels, the VAE's latent mean has {}",
                  z.dim() == 5 ? z.size(1) : -1, mean.numel());
    auto m = mean.to(z.device(), z.scalar_type()).view({1, -1, 1, 1, 1});
    auto inv_std = (1.0 / std).to(z.device(), z.scalar_type()).view({1, -1, 1, 1, 1});
    return z / inv_std + m;  // [B, Z, T, H, W]
}

// ---------------------------------------------------------------------------------------------------------
Encoder3dImpl::Encoder3dImpl(const WanVAEConfig& c) {
    const int64_t z2 = 2 * c.z_dim;
    std::vector<int64_t> dims{c.dim};
    for (auto u : c.dim_mult) dims.push_back(c.dim * u);
    double scale = 1.0;

    conv1_ = register_module("conv1", CausalConv3d(3, dims[0], Dims{3, 3, 3}, Dims{1, 1, 1}, Dims{1, 1, 1}));
    auto downsamples = register_module("downsamples", make_holder());
    int64_t n = 0, out_dim = dims[0];
    auto name = [&] { return std::to_string(n++); };
    for (size_t i = 0; i + 1 < dims.size(); ++i) {
        int64_t in_dim = dims[i];
        out_dim = dims[i + 1];
        for (int64_t r = 0; r < c.num_res_blocks; ++r) {
            kinds_.emplace_back('r', down_res_.size());
            down_res_.push_back(downsamples->register_module(name(), ResidualBlock(in_dim, out_dim)));
            if (contains_scale(c.attn_scales, scale)) {
                kinds_.emplace_back('a', down_attn_.size());
                down_attn_.push_back(downsamples->register_module(name(), AttentionBlock(out_dim)));
            }
            in_dim = out_dim;
        }
        if (i != c.dim_mult.size() - 1) {
            const auto mode = c.temperal_downsample[i] ? ResampleMode::Downsample3d : ResampleMode::Downsample2d;
            kinds_.emplace_back('s', down_resample_.size());
            down_resample_.push_back(downsamples->register_module(name(), Resample(out_dim, mode)));
            scale /= 2.0;
        }
    }
    auto middle = register_module("middle", make_holder());
    middle0_ = middle->register_module("0", ResidualBlock(out_dim, out_dim));
    middle1_ = middle->register_module("1", AttentionBlock(out_dim));
    middle2_ = middle->register_module("2", ResidualBlock(out_dim, out_dim));
    auto head = register_module("head", make_holder());
    head_norm_ = head->register_module("0", RMSNorm(out_dim, /*images=*/false));
    head_conv_ = head->register_module("2", CausalConv3d(out_dim, z2, Dims{3, 3, 3}, Dims{1, 1, 1}, Dims{1, 1, 1}));
}

torch::Tensor Encoder3dImpl::forward(const torch::Tensor& video, FeatCache* cache) {
    auto x = cached_conv(conv1_, video, cache);                                         // [B, dim, t, H, W]
    x = run_blocks(x, kinds_, down_res_, down_attn_, down_resample_, cache);            // [B, C, 1, H/8, W/8]
    x = middle0_->forward(x, cache);
    x = middle1_->forward(x);
    x = middle2_->forward(x, cache);
    x = torch::silu(head_norm_->forward(x));
    return cached_conv(head_conv_, x, cache);  // [B, 2Z, 1, H/8, W/8]
}

// ---------------------------------------------------------------------------------------------------------
Decoder3dImpl::Decoder3dImpl(const WanVAEConfig& c) {
    std::vector<int64_t> dims{c.dim * c.dim_mult.back()};
    for (auto it = c.dim_mult.rbegin(); it != c.dim_mult.rend(); ++it) dims.push_back(c.dim * *it);
    const std::vector<bool> temperal_upsample(c.temperal_downsample.rbegin(), c.temperal_downsample.rend());
    double scale = 1.0 / static_cast<double>(1 << (c.dim_mult.size() - 2));

    conv1_ = register_module("conv1", CausalConv3d(c.z_dim, dims[0], Dims{3, 3, 3}, Dims{1, 1, 1}, Dims{1, 1, 1}));
    auto middle = register_module("middle", make_holder());
    middle0_ = middle->register_module("0", ResidualBlock(dims[0], dims[0]));
    middle1_ = middle->register_module("1", AttentionBlock(dims[0]));
    middle2_ = middle->register_module("2", ResidualBlock(dims[0], dims[0]));

    auto upsamples = register_module("upsamples", make_holder());
    int64_t n = 0, out_dim = dims[0];
    auto name = [&] { return std::to_string(n++); };
    for (size_t i = 0; i + 1 < dims.size(); ++i) {
        int64_t in_dim = dims[i];
        out_dim = dims[i + 1];
        if (i == 1 || i == 2 || i == 3) in_dim /= 2;  // the previous Resample halved the channels
        for (int64_t r = 0; r < c.num_res_blocks + 1; ++r) {
            kinds_.emplace_back('r', up_res_.size());
            up_res_.push_back(upsamples->register_module(name(), ResidualBlock(in_dim, out_dim)));
            if (contains_scale(c.attn_scales, scale)) {
                kinds_.emplace_back('a', up_attn_.size());
                up_attn_.push_back(upsamples->register_module(name(), AttentionBlock(out_dim)));
            }
            in_dim = out_dim;
        }
        if (i != c.dim_mult.size() - 1) {
            const auto mode = temperal_upsample[i] ? ResampleMode::Upsample3d : ResampleMode::Upsample2d;
            kinds_.emplace_back('s', up_resample_.size());
            up_resample_.push_back(upsamples->register_module(name(), Resample(out_dim, mode)));
            scale *= 2.0;
        }
    }
    auto head = register_module("head", make_holder());
    head_norm_ = head->register_module("0", RMSNorm(out_dim, /*images=*/false));
    head_conv_ = head->register_module("2", CausalConv3d(out_dim, 3, Dims{3, 3, 3}, Dims{1, 1, 1}, Dims{1, 1, 1}));
}

torch::Tensor Decoder3dImpl::forward(const torch::Tensor& z, FeatCache* cache) {
    auto x = cached_conv(conv1_, z, cache);  // [B, 4*dim, 1, h, w]
    x = middle0_->forward(x, cache);
    x = middle1_->forward(x);
    x = middle2_->forward(x, cache);
    x = run_blocks(x, kinds_, up_res_, up_attn_, up_resample_, cache);  // [B, dim, 1|4, 8h, 8w]
    x = torch::silu(head_norm_->forward(x));
    return cached_conv(head_conv_, x, cache);  // [B, 3, 1|4, 8h, 8w]
}

// ---------------------------------------------------------------------------------------------------------
WanVAEImpl::WanVAEImpl(const WanVAEConfig& c) : config_(c) {
    encoder_ = register_module("encoder", Encoder3d(c));
    conv1_ = register_module("conv1", CausalConv3d(2 * c.z_dim, 2 * c.z_dim, Dims{1, 1, 1}));
    conv2_ = register_module("conv2", CausalConv3d(c.z_dim, c.z_dim, Dims{1, 1, 1}));
    decoder_ = register_module("decoder", Decoder3d(c));
}

Posterior WanVAEImpl::encode(const torch::Tensor& video) {
    SURGEON_CHECK(video.dim() == 5 && video.size(1) == 3, "VAE encode: expected a video [B, 3, T, H, W], got {}",
                  c10::str(video.sizes()));
    SURGEON_CHECK(video.size(2) >= 1, "VAE encode: the video has no frames");
    torch::InferenceMode guard;
    FeatCache cache;
    const int64_t t = video.size(2), n_iter = 1 + (t - 1) / 4;
    std::vector<torch::Tensor> outs;
    for (int64_t i = 0; i < n_iter; ++i) {
        cache.start_chunk();
        // Chunks of frames 1, 4, 4, ...: each gives one latent frame.
        auto chunk = i == 0 ? video.slice(2, 0, 1) : video.slice(2, 1 + 4 * (i - 1), 1 + 4 * i);  // [B, 3, 1|4, H, W]
        outs.push_back(encoder_->forward(chunk, &cache));                                    // [B, 2Z, 1, H/8, W/8]
    }
    auto h = conv1_->forward(torch::cat(outs, 2));  // [B, 2Z, T', H/8, W/8]
    auto parts = h.chunk(2, 1);
    return {parts[0], parts[1]};
}

torch::Tensor WanVAEImpl::decode(const torch::Tensor& z) {
    SURGEON_CHECK(z.dim() == 5 && z.size(1) == config_.z_dim, "VAE decode: expected latents [B, {}, T, h, w], got {}",
                  config_.z_dim, c10::str(z.sizes()));
    SURGEON_CHECK(z.size(2) >= 1, "VAE decode: the latents have no frames");
    torch::InferenceMode guard;
    FeatCache cache;
    auto x = conv2_->forward(z);  // [B, Z, T, h, w]
    std::vector<torch::Tensor> outs;
    for (int64_t i = 0; i < x.size(2); ++i) {
        cache.start_chunk();
        outs.push_back(decoder_->forward(x.slice(2, i, i + 1), &cache));  // [B, 3, 1 (i=0) | 4, 8h, 8w]
    }
    return torch::cat(outs, 2);  // [B, 3, 1 + 4(T-1), 8h, 8w]
}

}  // namespace surgeon::vae
