// 3-D RoPE for Wan (wan-reference.md §1.6): tables and the rotation, with a float64 reference and a
// fused CUDA fast path (kernels/rope.cu).
#pragma once
#include <torch/torch.h>

#include "core/types.h"

namespace surgeon {

// Angles for every token of the grid, [F'*H'*W', D/2], float64: the first D/2 - 2*(D/2/3) pairs rotate with
// the frame index, then D/2/3 with the row, then D/2/3 with the column; angle = pos * 10000^(-2j/D_axis).
torch::Tensor rope_angles(int64_t head_dim, const TokenGrid& grid);

struct RopeTables {
    torch::Tensor cos, sin;  // [L, D/2], float64 (reference) or float32 (fast)
};
RopeTables rope_tables(int64_t head_dim, const TokenGrid& grid, torch::ScalarType dtype, torch::Device device);

// x [B, L, H, D] -> float32 [B, L, H, D]. Reference computes in float64 exactly as the official code;
// Fast uses the CUDA kernel on CUDA tensors (float32 math) and the reference elsewhere.
torch::Tensor rope_apply(const torch::Tensor& x, const RopeTables& tables, AttentionImpl impl);

}  // namespace surgeon
