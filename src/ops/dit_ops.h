// Fused ops of the DiT block's bf16 inference path (WanModel, Wan's autocast recipe: fp32 residual stream, norms
// and modulation; bf16 GEMMs). Each op has a slow twin (`Reference`): the torch composite the model ran before,
// value for value. `Fast` takes the CUDA kernel (kernels/dit_kernels.h) or cuBLASLt's GELU epilogue where they
// apply and falls back to the twin elsewhere. Inference only (no autograd).
// Run-time switch: SURGEON_DIT_FUSED=all|none|<list of norm,qk,gelu> (default none until verified on a GPU), or set_dit_fusion().
// Tests: tests/model/test_dit_fused.cpp (twins on the CPU), tests/gpu/test_dit_kernels.cpp (kernels vs twins).
#pragma once
#include <torch/torch.h>

#include <string>

#include "core/types.h"

namespace surgeon::ops {

// Which parts of the fused block path run fast. `norm`: residual + LayerNorm + modulation in one kernel;
// `qk`: q/k RMSNorm + RoPE in one kernel (q, k written head-major for cuDNN); `gelu`: the FFN's GELU(tanh) in
// the first GEMM's epilogue. `cpu` (tests only): take the fused block path on CPU tensors too (through the twins).
struct DitFusion {
    bool norm = true, qk = true, gelu = true;
    bool cpu = false;
    bool any() const { return norm || qk || gelu; }
};
// "all" | "none" | comma-separated subset of "norm,qk,gelu" (e.g. "norm,gelu"); throws on anything else.
DitFusion parse_dit_fusion(const std::string& s);
std::string to_string(const DitFusion& f);
// The process-wide setting: SURGEON_DIT_FUSED from the environment on first use (default "none" until verified on a GPU).
DitFusion dit_fusion();
void set_dit_fusion(const DitFusion& f);

// True when the CUDA kernels can run on tensors of this device (CUDA device and kernels compiled).
bool dit_kernels_available(const torch::Device& device);

struct NormModulateOut {
    torch::Tensor x;  // float32 [B, L, C]: the updated residual stream (x itself when y is undefined)
    torch::Tensor h;  // bfloat16 [B, L, C]: the normalised, modulated GEMM input
};
// x [B, L, C] (any float dtype; used as float32), y [B, L, C] bf16 or undefined, gate [B, C] float32 or undefined
// (x + y when undefined), ln_w / ln_b [C] or undefined, scale / shift [B, C] float32 or undefined:
//   x' = x + gate * y;  h = bf16((LayerNorm(x') * ln_w + ln_b) * (1 + scale) + shift)
NormModulateOut norm_modulate(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& gate,
                              const torch::Tensor& ln_w, const torch::Tensor& ln_b, const torch::Tensor& scale,
                              const torch::Tensor& shift, double eps, AttentionImpl impl);

// x [B, L, C] bf16 (last dim contiguous; rows may be strided), weight [C], cos/sin [L, D/2] (RoPE tables) or
// undefined -> bf16 [B, L, H, D]: Wan's RMSNorm over C (fp32 statistics, bf16 rounding, fp32 weight) then RoPE
// in fp32. head_major: the result is a [B, L, H, D] view of a contiguous [B, H, L, D] tensor.
torch::Tensor rms_norm_rope(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& cos,
                            const torch::Tensor& sin, int64_t heads, double eps, bool head_major, AttentionImpl impl);

// GELU(tanh)(x W^T + b), x [..., K], w [N, K], b [N], all of one dtype. Fast on CUDA: at::_addmm_activation
// (cuBLASLt's GELU_BIAS epilogue, tanh approximation: one rounding of the activated value); Reference (and the
// CPU, where _addmm_activation applies the erf GELU): linear, then GELU(tanh).
torch::Tensor linear_gelu_tanh(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                               AttentionImpl impl);

}  // namespace surgeon::ops
