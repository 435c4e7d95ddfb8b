// Torch glue of the hybrid attention fast path's kernels (kernels/attention_kernels.h), each with a torch
// fallback used on the CPU, for dtypes/shapes the kernel does not take, and when the kernels are not compiled.
// Inference only (no autograd). Tests: tests/attention/test_hybrid_inference.cpp (CPU), tests/gpu/test_hybrid_cuda.cpp.
#pragma once
#include <torch/torch.h>

namespace surgeon::ops {

// Joint-normalised combine into rows [n0, n0 + nq) of y [B, N, H, D] (any dtype, last dim contiguous):
//   y = (a*o + num) / (a + den),  a = exp(log_a) (1 if log_a undefined),  num = nd[..., :D], den = nd[..., D]
// and for o undefined (the linear kind) y = num / max(den, 1e-30).
// o [B*nc, H, chunk, D] (SDPA over nc equal query chunks batched after the batch axis; nc = 1: [B, H, nq, D]),
// log_a [B*nc, H, chunk] float32, nd [B, H, N, >= D+1] float32 (rows indexed by absolute query position).
void hybrid_combine_into(const torch::Tensor& o, const torch::Tensor& log_a, int64_t nc, const torch::Tensor& nd,
                         torch::Tensor& y, int64_t n0, int64_t nq);

// log a = lse - max of s = scale * q k^T per query row, q [B, H, Lq, D], k [B, H, Lk, D] -> float32 [B, H, Lq], from one
// pass (so log a >= 0 exactly). CUDA bf16 with D in {64, 128}: the row_stats kernel (tensor cores); otherwise (or
// with SURGEON_ROW_STATS=torch in the environment) float32 torch matmuls in query tiles.
torch::Tensor row_log_mass(const torch::Tensor& q, const torch::Tensor& k, double scale, int64_t tile = 1024);

// True when row_log_mass takes the CUDA kernel for these inputs.
bool row_stats_kernel_applies(const torch::Tensor& q, const torch::Tensor& k);

}  // namespace surgeon::ops
