// Building blocks of the Wan2.1 VAE (wan/modules/vae.py): CausalConv3d, RMS_norm, Resample, ResidualBlock,
// AttentionBlock, and the per-call feature cache (`feat_cache`) that lets the causal convolutions run chunk
// by chunk exactly as the official code does. Module names match the official state_dict keys.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace surgeon::vae {

// Frames of input each cached causal conv keeps between chunks (CACHE_T in vae.py).
constexpr int64_t kCacheT = 2;

// The official `feat_cache` list plus its running index `feat_idx`. A slot is empty (None), 'Rep' (the
// first-chunk marker of upsample3d) or a tensor of at most kCacheT frames.
struct FeatCache {
    struct Slot {
        bool rep = false;
        torch::Tensor t;
        bool empty() const { return !rep && !t.defined(); }
    };
    std::vector<Slot> slots;
    size_t idx = 0;

    Slot& current() {
        if (idx >= slots.size()) slots.resize(idx + 1);
        return slots[idx];
    }
    void start_chunk() { idx = 0; }
    void clear() { slots.clear(), idx = 0; }
};

// Conv3d whose temporal padding (2*p_t) sits entirely in front; cached frames replace that zero padding.
class CausalConv3dImpl : public torch::nn::Module {
public:
    CausalConv3dImpl(int64_t in, int64_t out, std::vector<int64_t> kernel, std::vector<int64_t> stride = {1, 1, 1},
                     std::vector<int64_t> padding = {0, 0, 0});
    // x [B, Cin, T, H, W]; cache [B, Cin, <=2, H, W] or undefined -> [B, Cout, T', H', W'].
    torch::Tensor forward(torch::Tensor x, const torch::Tensor& cache = {});
    torch::Tensor weight, bias;

private:
    std::vector<int64_t> stride_, padding_;
};
TORCH_MODULE(CausalConv3d);

// The official "cache the last two input frames, then run the conv on cat(old cache, x)" step, used
// around every cached CausalConv3d (stem, residual convs, head).
torch::Tensor cached_conv(CausalConv3d& conv, const torch::Tensor& x, FeatCache* cache);

// RMS_norm: F.normalize over channels * sqrt(C) * gamma. gamma is [C,1,1,1] (video) or [C,1,1] (images).
class RMSNormImpl : public torch::nn::Module {
public:
    RMSNormImpl(int64_t dim, bool images);
    torch::Tensor forward(const torch::Tensor& x);  // [B, C, ...] -> same
    torch::Tensor gamma;

private:
    double scale_;
};
TORCH_MODULE(RMSNorm);

// ResidualBlock: residual = [RMS_norm, SiLU, CausalConv3d 3, RMS_norm, SiLU, Dropout, CausalConv3d 3]
// (keys residual.{0,2,3,6}), shortcut = CausalConv3d 1x1x1 when in != out.
class ResidualBlockImpl : public torch::nn::Module {
public:
    ResidualBlockImpl(int64_t in_dim, int64_t out_dim);
    torch::Tensor forward(const torch::Tensor& x, FeatCache* cache);  // [B, Cin, T, H, W] -> [B, Cout, T, H, W]

private:
    RMSNorm norm1_{nullptr}, norm2_{nullptr};
    CausalConv3d conv1_{nullptr}, conv2_{nullptr}, shortcut_{nullptr};
};
TORCH_MODULE(ResidualBlock);

// Single-head self-attention over the h*w tokens of each frame (time folded into batch).
class AttentionBlockImpl : public torch::nn::Module {
public:
    explicit AttentionBlockImpl(int64_t dim);
    torch::Tensor forward(const torch::Tensor& x);  // [B, C, T, H, W] -> same

private:
    RMSNorm norm_{nullptr};
    torch::nn::Conv2d to_qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(AttentionBlock);

enum class ResampleMode { Upsample2d, Upsample3d, Downsample2d, Downsample3d };

// Resample: per-frame spatial x2 up (nearest-exact + Conv2d C->C/2) or down (ZeroPad2d(0,1,0,1) + Conv2d
// stride 2), and for the 3d modes a temporal time_conv with the official first-chunk rules.
class ResampleImpl : public torch::nn::Module {
public:
    ResampleImpl(int64_t dim, ResampleMode mode);
    torch::Tensor forward(torch::Tensor x, FeatCache* cache);  // [B, C, T, H, W] -> [B, C', T', H', W']
    ResampleMode mode() const { return mode_; }

private:
    ResampleMode mode_;
    torch::nn::Conv2d conv_{nullptr};
    CausalConv3d time_conv_{nullptr};
};
TORCH_MODULE(Resample);

}  // namespace surgeon::vae
