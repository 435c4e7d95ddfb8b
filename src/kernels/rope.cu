// Fused RoPE: out[b,l,h,2p:2p+2] = rotate(x[b,l,h,2p:2p+2], angle[l,p]). One thread per pair; memory-bound.
#include <cuda_runtime.h>

#include "kernels/rope.h"

namespace surgeon::kernels {

__global__ void rope_kernel(RopeParams p) {
    const int64_t n = p.batch * p.tokens * p.heads * p.pairs;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t pair = i % p.pairs;
        const int64_t l = (i / (p.pairs * p.heads)) % p.tokens;
        const float2 v = reinterpret_cast<const float2*>(p.x)[i];
        const float c = p.cos[l * p.pairs + pair], s = p.sin[l * p.pairs + pair];
        reinterpret_cast<float2*>(p.out)[i] = make_float2(v.x * c - v.y * s, v.x * s + v.y * c);
    }
}

bool cuda_kernels_compiled() { return true; }

const char* rope_apply_cuda(const RopeParams& p, void* stream) {
    const int64_t n = p.batch * p.tokens * p.heads * p.pairs;
    if (n == 0) return nullptr;
    const int threads = 256;
    const int64_t blocks = (n + threads - 1) / threads;
    rope_kernel<<<static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16), threads, 0,
                  static_cast<cudaStream_t>(stream)>>>(p);
    cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace surgeon::kernels
