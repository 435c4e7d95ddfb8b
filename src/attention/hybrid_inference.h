// Inference fast path of the hybrid / linear / chunked cores (no autograd): bf16 tensor-core GEMMs for the linear
// states and their application (float32 accumulation and output), linear keys masked rather than subtracted,
// the softmax branch as few SDPA calls as possible (uniform rate: the strided keys gathered once; chunked: every
// chunk of one shape in ONE batched SDPA over [B*n_chunks, H, chunk, D] with windows gathered by one unfold), the
// max stabiliser's log a from the row-stats kernel, and one fused combine pass writing [B, N, H, D] in v's dtype.
// hybrid_attention(..., Fast) takes it on CUDA when no gradient is needed; on the CPU it runs the same steps with
// float32 GEMMs and torch fallbacks of the kernels (tests/attention/test_hybrid_inference.cpp).
#pragma once
#include <torch/torch.h>

#include "attention/attention_plan.h"
#include "core/types.h"

namespace surgeon::detail {

// q, phi_q [B, n, H, *] (n = N, or any n queries for the hybrid and linear kinds), k, v, phi_k [B, N, H, *];
// kind hybrid, linear or chunked. Returns [B, n, H, D] in v's dtype. log_scale [H] optional (as hybrid_attention).
torch::Tensor hybrid_inference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& phi_q, const torch::Tensor& phi_k, const PlanEntry& entry,
                               const TokenGrid& grid, const torch::Tensor& log_scale);

// True when hybrid_attention's Fast path should take hybrid_inference: CUDA bf16/fp16 inputs and no gradient needed
// (grad mode off, or no input requires grad). The autograd path stays the float32 composite.
bool inference_path_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                            const torch::Tensor& phi_q, const torch::Tensor& phi_k, const torch::Tensor& log_scale);

// Building blocks shared with the recurrent form (chunk_recurrence.cpp):
// a @ b -> float32 ([B, M, K] x [B, K, N]); bf16/half tensor-core GEMM with float32 output on CUDA.
torch::Tensor gemm_f32(const torch::Tensor& a, const torch::Tensor& b);
// v [B, N, H, D] -> [B, H, N, D+8] in v's dtype: v in columns 0..D-1, 1 in column D, zeros after (16-byte rows),
// so phi_k^T v_aug gives S and z in one GEMM and phi_q S_aug gives num and den.
torch::Tensor augment_values(const torch::Tensor& v);
// Softmax-branch operands [B, L, H, D] -> [B, H, L, D] for SDPA: contiguous copies (cuDNN's preferred layout), or
// transposed views when SURGEON_SDPA_VIEWS=1 (to measure whether the backend takes them without copies).
torch::Tensor sdpa_operand(const torch::Tensor& x);

}  // namespace surgeon::detail
