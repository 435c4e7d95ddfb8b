// WanModel: the Wan2.1 text-to-video DiT (wan/modules/model.py), module and parameter names mirror the
// official code (`blocks.N.self_attn.q`, `ffn.0`, `modulation`, ...). Self-attention runs through a
// pluggable AttentionCore; every intermediate can be observed through an ActivationTap.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "attention/attention_core.h"
#include "core/names.h"
#include "model/wan_config.h"
#include "ops/rope.h"

namespace surgeon {

// Observer called with a name and the tensor: "patch_embedding" [B,C,F',H',W'], "time_embedding" [B,C],
// "time_projection" [B,6C], "text_embedding" [B,Lt,C], and per block "blocks.N.input" [B,L,C],
// "blocks.N.self_attn.q|k|v" [B,L,H,D] (after norm + RoPE, as the core sees them),
// "blocks.N.self_attn.attn" [B,L,H,D] (core output), "blocks.N.self_attn" / ".cross_attn" / ".ffn"
// [B,L,C] (module outputs before gate/residual), "blocks.N" [B,L,C] (block output), "head" [B,L,P*C_out].
using ActivationTap = std::function<void(const std::string& name, const torch::Tensor& t)>;

// Numerics as the official code runs them (wan-reference.md §1.11): Float32 everywhere, or BFloat16
// GEMMs/attention with fp32 residual stream, norms, modulation, time embedding and head.
// BFloat16Lean (not Wan's recipe; for training speed): the residual stream, modulation, gates and norm
// outputs are bf16 too (norm statistics still accumulate in fp32 inside the fused kernels); the time
// embedding and the head stay fp32. About half the memory traffic of the elementwise work, which dominates
// the step of small models (docs/BENCHMARKS.md, bench_train).
enum class Precision { Float32, BFloat16, BFloat16Lean };
inline constexpr EnumName<Precision> kPrecisionNames[] = {
    {Precision::Float32, "fp32"}, {Precision::BFloat16, "bf16"}, {Precision::BFloat16Lean, "bf16-lean"}};
Precision parse_precision(const std::string& s);
std::string to_string(Precision p);

struct ForwardContext {
    torch::ScalarType compute = torch::kFloat32;  // dtype of Linear/conv/attention inputs
    torch::ScalarType stream = torch::kFloat32;   // residual stream, modulation, norm outputs
    AttentionImpl impl = AttentionImpl::Fast;
    const ActivationTap* tap = nullptr;
    void observe(const std::string& name, const torch::Tensor& t) const {
        if (tap && *tap) (*tap)(name, t);
    }
};

class WanRMSNormImpl : public torch::nn::Module {
public:
    WanRMSNormImpl(int64_t dim, double eps);
    // x * rsqrt(mean(x^2) + eps) in fp32, cast back, * weight (fp32 result, as the official code). With
    // `lean`, the weight is cast to x's dtype so the result stays in x's dtype.
    torch::Tensor forward(const torch::Tensor& x, bool lean = false);
    torch::Tensor weight;

private:
    double eps_;
};
TORCH_MODULE(WanRMSNorm);

class WanSelfAttentionImpl : public torch::nn::Module {
public:
    WanSelfAttentionImpl(int64_t dim, int64_t num_heads, double eps);
    // x [B, L, C] -> [B, L, C]
    torch::Tensor forward(const torch::Tensor& x, const TokenGrid& grid, const RopeTables& rope,
                          const ForwardContext& ctx, const std::string& name);
    void set_core(AttentionCore core);
    const AttentionCore& core() const { return core_; }
    torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
    WanRMSNorm norm_q{nullptr}, norm_k{nullptr};
    int64_t num_heads;

private:
    AttentionCore core_;
};
TORCH_MODULE(WanSelfAttention);

class WanCrossAttentionImpl : public torch::nn::Module {
public:
    WanCrossAttentionImpl(int64_t dim, int64_t num_heads, double eps);
    // x [B, L, C], context [B, Lt, C] -> [B, L, C]
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context, const ForwardContext& ctx);
    torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
    WanRMSNorm norm_q{nullptr}, norm_k{nullptr};
    int64_t num_heads;
};
TORCH_MODULE(WanCrossAttention);

class WanAttentionBlockImpl : public torch::nn::Module {
public:
    explicit WanAttentionBlockImpl(const WanConfig& cfg);
    // x [B, L, C] (fp32 residual stream), e0 [B, 6, C], context [B, Lt, C]
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& e0, const torch::Tensor& context,
                          const TokenGrid& grid, const RopeTables& rope, const ForwardContext& ctx, int64_t layer);
    torch::Tensor modulation;  // [1, 6, C]
    WanSelfAttention self_attn{nullptr};
    torch::nn::LayerNorm norm3{nullptr};  // affine, cross-attention input
    WanCrossAttention cross_attn{nullptr};
    torch::nn::Sequential ffn{nullptr};   // 0: Linear(C, F), 1: GELU(tanh), 2: Linear(F, C)
    double eps;
};
TORCH_MODULE(WanAttentionBlock);

class WanHeadImpl : public torch::nn::Module {
public:
    explicit WanHeadImpl(const WanConfig& cfg);
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& e);  // [B,L,C], e [B,C] -> [B,L,P*out]
    torch::Tensor modulation;  // [1, 2, C]
    torch::nn::Linear head{nullptr};
    double eps;
};
TORCH_MODULE(WanHead);

class WanModelImpl : public torch::nn::Module {
public:
    explicit WanModelImpl(const WanConfig& cfg);

    // x [B, in_dim, F, H, W] latents, t [B] timesteps (any numeric dtype; sinusoid in float64),
    // context [B, Lt <= text_len, text_dim] (zero-padded to text_len as Wan does) -> [B, out_dim, F, H, W] fp32.
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context,
                          const ActivationTap* tap = nullptr);

    const WanConfig& config() const { return cfg_; }
    Precision precision() const { return precision_; }
    // BFloat16 also stores the block/embedding GEMM weights in bf16 (identical to autocast's per-op cast) unless
    // `cast_weights` is false (training: fp32 master weights, cast per op, gradients flow to the fp32 copy).
    void set_precision(Precision p, bool cast_weights = true);
    void set_attention_impl(AttentionImpl impl);
    AttentionImpl attention_impl() const { return impl_; }
    torch::Device device() const;
    // Checks the input tensors' shapes and finiteness (one-line errors naming the tensor). The finiteness check
    // reads the tensors back (a host sync); set_finite_checks(false) skips it in loops that own their inputs
    // (training: the trainer checks the loss instead). Shape checks always run.
    void check_inputs(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context) const;
    void set_finite_checks(bool on) { finite_checks_ = on; }
    TokenGrid grid_for(const torch::Tensor& x) const;

    torch::nn::Conv3d patch_embedding{nullptr};
    torch::nn::Sequential text_embedding{nullptr}, time_embedding{nullptr}, time_projection{nullptr};
    torch::nn::ModuleList blocks{nullptr};
    WanHead head{nullptr};
    WanAttentionBlock block(int64_t i) const { return blocks->ptr<WanAttentionBlockImpl>(i); }

private:
    WanConfig cfg_;
    Precision precision_ = Precision::Float32;
    AttentionImpl impl_ = AttentionImpl::Fast;
    bool finite_checks_ = true;
};
TORCH_MODULE(WanModel);

// Sinusoidal timestep embedding of the official code: float64, [cos | sin], exponent divided by dim/2.
torch::Tensor sinusoidal_embedding_1d(int64_t dim, const torch::Tensor& t);

}  // namespace surgeon
