// Wan-VAE building blocks; each forward mirrors the matching class of wan/modules/vae.py line by line,
// including the feat_cache bookkeeping (which slot is consumed when, and what is stored in it).
#include "vae/vae_layers.h"

#include <cmath>

#include "core/error.h"

namespace surgeon::vae {
namespace F = torch::nn::functional;

namespace {

using Dims = std::vector<int64_t>;

// A parameterless container so that children get the official indices ("residual.2", "resample.1").
std::shared_ptr<torch::nn::Module> make_holder() { return std::make_shared<torch::nn::Module>("Sequential"); }

// PyTorch's default Conv init (kaiming_uniform a=sqrt(5) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
void init_conv(torch::Tensor& w, torch::Tensor& b) {
    torch::NoGradGuard ng;
    const double fan_in = static_cast<double>(w.numel() / w.size(0));
    const double bound = 1.0 / std::sqrt(fan_in);
    w.uniform_(-bound, bound);
    b.uniform_(-bound, bound);
}

// Last `n` frames (dim 2) of x, as an owning copy so the chunk can be freed.
torch::Tensor last_frames(const torch::Tensor& x, int64_t n) {
    const int64_t t = x.size(2);
    return x.slice(2, std::max<int64_t>(0, t - n), t).clone();  // [B, C, <=n, H, W]
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
CausalConv3dImpl::CausalConv3dImpl(int64_t in, int64_t out, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                                   std::vector<int64_t> padding)
    : stride_(std::move(stride)), padding_(std::move(padding)) {
    SURGEON_ASSERT(kernel.size() == 3 && stride_.size() == 3 && padding_.size() == 3);
    weight = register_parameter("weight", torch::empty({out, in, kernel[0], kernel[1], kernel[2]}));
    bias = register_parameter("bias", torch::empty({out}));
    init_conv(weight, bias);
}

torch::Tensor CausalConv3dImpl::forward(torch::Tensor x, const torch::Tensor& cache) {
    // Official: pad (w, w, h, h, 2*p_t, 0). The spatial part is left to the convolution itself (the same
    // zeros, without materialising a padded copy); only the temporal front padding is built here.
    int64_t front = 2 * padding_[0];
    if (cache.defined() && front > 0) {
        x = torch::cat({cache.to(x.device()), x}, 2);  // [B, Cin, Tc + T, H, W]
        front -= cache.size(2);
    }
    if (front > 0) {
        auto sizes = x.sizes().vec();
        sizes[2] = front;
        x = torch::cat({torch::zeros(sizes, x.options()), x}, 2);  // [B, Cin, front + T, H, W]
    }
    return torch::conv3d(x, weight, bias, stride_, {0, padding_[1], padding_[2]});  // [B, Cout, T', H', W']
}

torch::Tensor cached_conv(CausalConv3d& conv, const torch::Tensor& x, FeatCache* cache) {
    if (cache == nullptr) return conv->forward(x);
    auto& slot = cache->current();
    auto cache_x = last_frames(x, kCacheT);  // [B, C, <=2, H, W]
    if (cache_x.size(2) < 2 && slot.t.defined()) {
        // A one-frame chunk: keep the last frame of the previous cache too, so the slot holds 2 frames.
        cache_x = torch::cat({last_frames(slot.t, 1), cache_x}, 2);  // [B, C, 2, H, W]
    }
    auto y = conv->forward(x, slot.t);
    slot.t = cache_x;
    cache->idx++;
    return y;
}

// ---------------------------------------------------------------------------------------------------------
RMSNormImpl::RMSNormImpl(int64_t dim, bool images) : scale_(std::sqrt(static_cast<double>(dim))) {
    gamma = register_parameter("gamma", images ? torch::ones({dim, 1, 1}) : torch::ones({dim, 1, 1, 1}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
    // F.normalize: x / max(||x||_2 over channels, 1e-12).
    return F::normalize(x, F::NormalizeFuncOptions().p(2).dim(1).eps(1e-12)) * scale_ * gamma;  // same as x
}

// ---------------------------------------------------------------------------------------------------------
ResidualBlockImpl::ResidualBlockImpl(int64_t in_dim, int64_t out_dim) {
    auto residual = register_module("residual", make_holder());
    norm1_ = residual->register_module("0", RMSNorm(in_dim, /*images=*/false));
    conv1_ = residual->register_module("2", CausalConv3d(in_dim, out_dim, Dims{3, 3, 3}, Dims{1, 1, 1}, Dims{1, 1, 1}));
    norm2_ = residual->register_module("3", RMSNorm(out_dim, /*images=*/false));
    conv2_ = residual->register_module("6", CausalConv3d(out_dim, out_dim, Dims{3, 3, 3}, Dims{1, 1, 1}, Dims{1, 1, 1}));
    if (in_dim != out_dim) {
        shortcut_ = register_module("shortcut", CausalConv3d(in_dim, out_dim, Dims{1, 1, 1}));
    }
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x_in, FeatCache* cache) {
    auto h = shortcut_ ? shortcut_->forward(x_in) : x_in;  // [B, Cout, T, H, W]
    auto x = torch::silu(norm1_->forward(x_in));           // [B, Cin, T, H, W]
    x = cached_conv(conv1_, x, cache);                      // [B, Cout, T, H, W]
    x = torch::silu(norm2_->forward(x));                    // dropout is the identity at inference
    x = cached_conv(conv2_, x, cache);                      // [B, Cout, T, H, W]
    return x + h;
}

// ---------------------------------------------------------------------------------------------------------
AttentionBlockImpl::AttentionBlockImpl(int64_t dim) {
    norm_ = register_module("norm", RMSNorm(dim, /*images=*/true));
    to_qkv_ = register_module("to_qkv", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, 3 * dim, 1)));
    proj_ = register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim, 1)));
}

torch::Tensor AttentionBlockImpl::forward(const torch::Tensor& identity) {
    const int64_t b = identity.size(0), c = identity.size(1), t = identity.size(2), h = identity.size(3),
                  w = identity.size(4);
    auto x = identity.permute({0, 2, 1, 3, 4}).reshape({b * t, c, h, w});  // [BT, C, H, W]
    x = norm_->forward(x);
    auto qkv = to_qkv_->forward(x).reshape({b * t, 1, 3 * c, h * w}).permute({0, 1, 3, 2}).contiguous();  // [BT,1,HW,3C]
    auto parts = qkv.chunk(3, -1);                                                   // 3 x [BT, 1, HW, C]
    x = at::scaled_dot_product_attention(parts[0], parts[1], parts[2]);              // [BT, 1, HW, C]
    x = x.squeeze(1).permute({0, 2, 1}).reshape({b * t, c, h, w});                   // [BT, C, H, W]
    x = proj_->forward(x);                                                           // [BT, C, H, W]
    x = x.view({b, t, c, h, w}).permute({0, 2, 1, 3, 4});                            // [B, C, T, H, W]
    return x + identity;
}

// ---------------------------------------------------------------------------------------------------------
ResampleImpl::ResampleImpl(int64_t dim, ResampleMode mode) : mode_(mode) {
    auto resample = register_module("resample", make_holder());
    const bool up = mode == ResampleMode::Upsample2d || mode == ResampleMode::Upsample3d;
    if (up) {
        conv_ = resample->register_module("1", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim / 2, 3).padding(1)));
    } else {
        conv_ = resample->register_module("1", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim, 3).stride(2)));
    }
    if (mode == ResampleMode::Upsample3d) {
        time_conv_ = register_module("time_conv", CausalConv3d(dim, 2 * dim, Dims{3, 1, 1}, Dims{1, 1, 1}, Dims{1, 0, 0}));
    } else if (mode == ResampleMode::Downsample3d) {
        time_conv_ = register_module("time_conv", CausalConv3d(dim, dim, Dims{3, 1, 1}, Dims{2, 1, 1}, Dims{0, 0, 0}));
    }
}

torch::Tensor ResampleImpl::forward(torch::Tensor x, FeatCache* cache) {
    const int64_t b = x.size(0), c = x.size(1), h = x.size(3), w = x.size(4);
    if (mode_ == ResampleMode::Upsample3d && cache != nullptr) {
        auto& slot = cache->current();
        if (slot.empty()) {
            // First chunk: mark the slot and skip the temporal doubling (latent frame 0 -> 1 video frame).
            slot.rep = true;
            cache->idx++;
        } else {
            const int64_t t = x.size(2);
            auto cache_x = last_frames(x, kCacheT);  // [B, C, <=2, H, W]
            if (cache_x.size(2) < 2 && slot.t.defined()) {
                cache_x = torch::cat({last_frames(slot.t, 1), cache_x}, 2);
            } else if (cache_x.size(2) < 2 && slot.rep) {
                cache_x = torch::cat({torch::zeros_like(cache_x), cache_x}, 2);
            }
            // After 'Rep' the conv runs with plain zero padding (it does not see the first chunk's frame).
            x = slot.rep ? time_conv_->forward(x) : time_conv_->forward(x, slot.t);  // [B, 2C, T, H, W]
            slot.t = cache_x;
            slot.rep = false;
            cache->idx++;
            x = x.reshape({b, 2, c, t, h, w});
            x = torch::stack({x.select(1, 0), x.select(1, 1)}, 3);  // [B, C, T, 2, H, W]
            x = x.reshape({b, c, 2 * t, h, w});                      // [B, C, 2T, H, W]
        }
    }
    const int64_t t = x.size(2);
    auto y = x.permute({0, 2, 1, 3, 4}).reshape({b * t, c, h, w});  // [BT, C, H, W]
    if (mode_ == ResampleMode::Upsample2d || mode_ == ResampleMode::Upsample3d) {
        // nn.Upsample(scale 2, 'nearest-exact'), computed in fp32 as the official Upsample does.
        const auto dtype = y.scalar_type();
        // (What F.interpolate(scale_factor=2) dispatches to, without libtorch's align_corners warning.)
        y = at::_upsample_nearest_exact2d(y.to(torch::kFloat), {2 * h, 2 * w}, 2.0, 2.0).to(dtype);  // [BT, C, 2H, 2W]
    } else {
        y = F::pad(y, F::PadFuncOptions({0, 1, 0, 1}));  // ZeroPad2d((0,1,0,1)): right and bottom
    }
    y = conv_->forward(y);  // [BT, C', H', W']
    x = y.view({b, t, y.size(1), y.size(2), y.size(3)}).permute({0, 2, 1, 3, 4});  // [B, C', T, H', W']

    if (mode_ == ResampleMode::Downsample3d && cache != nullptr) {
        auto& slot = cache->current();
        if (slot.empty()) {
            // First chunk (1 frame): store it and skip the temporal stride (1 frame stays 1).
            slot.t = x.clone();
            cache->idx++;
        } else {
            auto cache_x = last_frames(x, 1);                                        // [B, C, 1, H, W]
            x = time_conv_->forward(torch::cat({last_frames(slot.t, 1), x}, 2));  // [B, C, (T+1-3)/2+1, H, W]
            slot.t = cache_x;
            cache->idx++;
        }
    }
    return x;
}

}  // namespace surgeon::vae
