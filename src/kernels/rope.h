// Fused 3-D RoPE rotation kernel (Wan's interleaved pairs). Plain params struct, no torch headers.
// Test: ctest -R ops_rope (compares with the float64 reference in ops/rope.cpp on CUDA machines).
#pragma once
#include <cstdint>

namespace surgeon::kernels {

struct RopeParams {
    const float* x = nullptr;    // [B, L, H, 2*P] contiguous
    float* out = nullptr;        // same shape
    const float* cos = nullptr;  // [L, P]
    const float* sin = nullptr;  // [L, P]
    int64_t batch = 0, tokens = 0, heads = 0, pairs = 0;
};

// True when this build carries the CUDA kernels.
bool cuda_kernels_compiled();
// Launches on `stream` (a cudaStream_t); returns an error string or nullptr.
const char* rope_apply_cuda(const RopeParams& p, void* stream);

}  // namespace surgeon::kernels
