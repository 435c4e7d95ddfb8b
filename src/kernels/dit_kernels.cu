// Fused DiT-block elementwise kernels (see dit_kernels.h for the exact formulas). One thread block per row
// (grid-stride over rows); the row is staged in shared memory as float32 and every thread only ever touches its
// own elements (same index set in every pass), so the only cross-thread traffic is the block reduction.
// Memory-bound: one read of the inputs and one write of the outputs per row.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/dit_kernels.h"

namespace surgeon::kernels {
namespace {

constexpr int kThreads = 256;  // a multiple of 32 (block_sum assumes whole warps)

// Sum of v over the block, returned to every thread (all threads add the warp partials in the same order, so
// the result is bit-identical across threads). `red` holds kThreads / 32 floats.
__device__ float block_sum(float v, float* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();  // the previous call's readers are done with `red`
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = 0.0f;
    for (int i = 0; i < kThreads / 32; ++i) t += red[i];
    return t;
}

__global__ void __launch_bounds__(kThreads) norm_modulate_kernel(NormModulateParams p) {
    extern __shared__ float row_buf[];  // [dim]
    __shared__ float red[kThreads / 32];
    const int64_t C = p.dim;
    const __nv_bfloat16* y = static_cast<const __nv_bfloat16*>(p.y);
    __nv_bfloat16* h = static_cast<__nv_bfloat16*>(p.h);
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const int64_t b = r / p.tokens;
        const float* xr = p.x + r * C;
        float sum = 0.0f;
        for (int64_t c = threadIdx.x; c < C; c += kThreads) {
            float s = xr[c];
            if (y != nullptr) {
                const float yv = __bfloat162float(y[r * C + c]);
                s = p.gate != nullptr ? s + p.gate[b * C + c] * yv : s + yv;
            }
            if (p.x_out != nullptr) p.x_out[r * C + c] = s;
            row_buf[c] = s;
            sum += s;
        }
        const float mean = block_sum(sum, red) / static_cast<float>(C);
        float sq = 0.0f;
        for (int64_t c = threadIdx.x; c < C; c += kThreads) {
            const float d = row_buf[c] - mean;
            sq += d * d;
        }
        const float rstd = 1.0f / sqrtf(block_sum(sq, red) / static_cast<float>(C) + p.eps);
        for (int64_t c = threadIdx.x; c < C; c += kThreads) {
            float n = (row_buf[c] - mean) * rstd;
            if (p.ln_w != nullptr) n = n * p.ln_w[c];
            if (p.ln_b != nullptr) n = n + p.ln_b[c];
            if (p.round_norm) n = __bfloat162float(__float2bfloat16_rn(n));
            if (p.scale != nullptr) n = n * (1.0f + p.scale[b * C + c]);
            if (p.shift != nullptr) n = n + p.shift[b * C + c];
            h[r * C + c] = __float2bfloat16_rn(n);
        }
    }
}

__global__ void __launch_bounds__(kThreads) rms_norm_rope_kernel(RmsNormRopeParams p) {
    extern __shared__ float row_buf[];  // [C]
    __shared__ float red[kThreads / 32];
    const int64_t D = p.head_dim, P = D / 2, C = p.heads * D, pairs = C / 2;
    const __nv_bfloat162* x = static_cast<const __nv_bfloat162*>(p.x);  // x_row_stride is even (checked)
    __nv_bfloat162* out = static_cast<__nv_bfloat162*>(p.out);
    for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
        const int64_t b = r / p.tokens, l = r % p.tokens;
        const __nv_bfloat162* xr = x + r * (p.x_row_stride / 2);
        float sq = 0.0f;
        for (int64_t i = threadIdx.x; i < pairs; i += kThreads) {
            const float2 v = __bfloat1622float2(xr[i]);
            row_buf[2 * i] = v.x;
            row_buf[2 * i + 1] = v.y;
            sq += v.x * v.x + v.y * v.y;
        }
        const float rstd = 1.0f / sqrtf(block_sum(sq, red) / static_cast<float>(C) + p.eps);
        for (int64_t i = threadIdx.x; i < pairs; i += kThreads) {
            // WanRMSNorm: normalise in fp32, round to the input's dtype (bf16), then scale by the fp32 weight.
            const float n0 = __bfloat162float(__float2bfloat16_rn(row_buf[2 * i] * rstd)) * p.weight[2 * i];
            const float n1 = __bfloat162float(__float2bfloat16_rn(row_buf[2 * i + 1] * rstd)) * p.weight[2 * i + 1];
            const int64_t head = (2 * i) / D, j = i - head * P;  // pair j of this head
            float o0 = n0, o1 = n1;
            if (p.cos != nullptr) {
                const float c = p.cos[l * P + j], s = p.sin[l * P + j];
                o0 = n0 * c - n1 * s;
                o1 = n0 * s + n1 * c;
            }
            const int64_t dst = p.head_major ? ((b * p.heads + head) * p.tokens + l) * P + j : r * pairs + i;
            out[dst] = __floats2bfloat162_rn(o0, o1);
        }
    }
}

unsigned grid_for(int64_t rows) {
    const int64_t cap = int64_t{1} << 20;  // grid-stride beyond this
    return static_cast<unsigned>(rows < cap ? rows : cap);
}

const char* launch_error() {
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace

const char* norm_modulate_cuda(const NormModulateParams& p, void* stream) {
    if (p.x == nullptr || p.h == nullptr) return "norm_modulate: x and h are required";
    if (p.dim < 1 || p.dim > kDitMaxDim) return "norm_modulate: dim out of range";
    if (p.rows < 0 || p.tokens < 1 || p.rows % p.tokens != 0) return "norm_modulate: rows must be batch * tokens";
    if (p.gate != nullptr && p.y == nullptr) return "norm_modulate: a gate needs y";
    if (p.rows == 0) return nullptr;
    const size_t smem = static_cast<size_t>(p.dim) * sizeof(float);
    norm_modulate_kernel<<<grid_for(p.rows), kThreads, smem, static_cast<cudaStream_t>(stream)>>>(p);
    return launch_error();
}

const char* rms_norm_rope_cuda(const RmsNormRopeParams& p, void* stream) {
    if (p.x == nullptr || p.out == nullptr || p.weight == nullptr) return "rms_norm_rope: x, weight and out are required";
    if (p.head_dim < 2 || p.head_dim % 2 != 0 || p.heads < 1) return "rms_norm_rope: head_dim must be even and >= 2";
    const int64_t C = p.heads * p.head_dim;
    if (C > kDitMaxDim) return "rms_norm_rope: heads * head_dim out of range";
    if (p.x_row_stride < C || p.x_row_stride % 2 != 0) return "rms_norm_rope: x_row_stride must be even and >= C";
    if ((p.cos == nullptr) != (p.sin == nullptr)) return "rms_norm_rope: cos and sin go together";
    if (p.rows < 0 || p.tokens < 1 || p.rows % p.tokens != 0) return "rms_norm_rope: rows must be batch * tokens";
    if (p.rows == 0) return nullptr;
    const size_t smem = static_cast<size_t>(C) * sizeof(float);
    rms_norm_rope_kernel<<<grid_for(p.rows), kThreads, smem, static_cast<cudaStream_t>(stream)>>>(p);
    return launch_error();
}

}  // namespace surgeon::kernels
