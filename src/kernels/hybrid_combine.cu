// Joint-normalised combine of the hybrid attention fast path: one pass reading o (SDPA output, any batched-chunk
// layout), log a, num/den (float32 apply output) and writing y in [B, N, H, D] rows. Memory-bound: VEC elements per
// thread (16-byte loads of bf16 o when VEC = 8), consecutive threads on consecutive elements of a row.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/attention_kernels.h"

namespace surgeon::kernels {
namespace {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half(x); }

__device__ __forceinline__ int64_t row_offset(const RowIndex& r, int64_t b, int64_t h, int64_t n) {
    return b * r.sb + (n / r.chunk) * r.sc + h * r.sh + (n % r.chunk) * r.st;
}

template <typename TO, typename TY, int VEC>
__global__ void combine_kernel(CombineParams p) {
    const int64_t groups = p.dim / VEC;
    const int64_t total = p.batch * p.nq * p.heads * groups;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t g = i % groups;
        const int64_t row = i / groups;  // (b, n, h), h fastest: y rows in memory order
        const int64_t h = row % p.heads;
        const int64_t n = (row / p.heads) % p.nq;
        const int64_t b = row / (p.heads * p.nq);
        const float* nd = p.nd + b * p.nd_sb + h * p.nd_sh + (p.n0 + n) * p.nd_sn;
        const float den = nd[p.den_col];
        float num[VEC];
#pragma unroll
        for (int e = 0; e < VEC; ++e) num[e] = nd[g * VEC + e];
        float out[VEC];
        if (p.o == nullptr) {
            const float inv = 1.0f / fmaxf(den, 1e-30f);
#pragma unroll
            for (int e = 0; e < VEC; ++e) out[e] = num[e] * inv;
        } else {
            const float a = p.log_a ? __expf(p.log_a[row_offset(p.la_idx, b, h, n)]) : 1.0f;
            const TO* o = static_cast<const TO*>(p.o) + row_offset(p.o_idx, b, h, n) + g * VEC;
            TO ov[VEC];
            if constexpr (VEC * sizeof(TO) == 16) {
                *reinterpret_cast<uint4*>(ov) = *reinterpret_cast<const uint4*>(o);
            } else {
#pragma unroll
                for (int e = 0; e < VEC; ++e) ov[e] = o[e];
            }
            const float inv = 1.0f / (a + den);
#pragma unroll
            for (int e = 0; e < VEC; ++e) out[e] = (a * to_f(ov[e]) + num[e]) * inv;
        }
        TY* y = static_cast<TY*>(p.y) + b * p.y_sb + (p.n0 + n) * p.y_sn + h * p.y_sh + g * VEC;
        TY yv[VEC];
#pragma unroll
        for (int e = 0; e < VEC; ++e) yv[e] = from_f<TY>(out[e]);
        if constexpr (VEC * sizeof(TY) == 16) {
            *reinterpret_cast<uint4*>(y) = *reinterpret_cast<const uint4*>(yv);
        } else {
#pragma unroll
            for (int e = 0; e < VEC; ++e) y[e] = yv[e];
        }
    }
}

template <typename TO, typename TY>
const char* launch(const CombineParams& p, cudaStream_t stream) {
    // 16-byte vectors only when every row start is 16-byte aligned for both o and y.
    auto aligned = [](const void* ptr, int64_t elem_stride_bytes) {
        return reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && elem_stride_bytes % 16 == 0;
    };
    bool vec8 = p.dim % 8 == 0 && aligned(p.y, p.y_sb * sizeof(TY)) && aligned(p.y, p.y_sn * sizeof(TY)) &&
                aligned(p.y, p.y_sh * sizeof(TY));
    if (p.o) {
        const int64_t es = sizeof(TO);
        vec8 = vec8 && aligned(p.o, p.o_idx.sb * es) && aligned(p.o, p.o_idx.sc * es) && aligned(p.o, p.o_idx.sh * es) &&
               aligned(p.o, p.o_idx.st * es);
    }
    const int vec = vec8 ? 8 : 1;
    const int64_t total = p.batch * p.nq * p.heads * (p.dim / vec);
    if (total == 0) return nullptr;
    const int threads = 256;
    int64_t blocks = (total + threads - 1) / threads;
    if (blocks > 65535LL * 32) blocks = 65535LL * 32;
    if (vec8)
        combine_kernel<TO, TY, 8><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(p);
    else
        combine_kernel<TO, TY, 1><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(p);
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

template <typename TO>
const char* dispatch_y(const CombineParams& p, cudaStream_t s) {
    switch (p.y_dtype) {
        case DType::F32: return launch<TO, float>(p, s);
        case DType::BF16: return launch<TO, __nv_bfloat16>(p, s);
        case DType::F16: return launch<TO, __half>(p, s);
    }
    return "hybrid combine: unsupported output dtype";
}

}  // namespace

const char* hybrid_combine_cuda(const CombineParams& p, void* stream) {
    auto s = static_cast<cudaStream_t>(stream);
    switch (p.o ? p.o_dtype : p.y_dtype) {
        case DType::F32: return dispatch_y<float>(p, s);
        case DType::BF16: return dispatch_y<__nv_bfloat16>(p, s);
        case DType::F16: return dispatch_y<__half>(p, s);
    }
    return "hybrid combine: unsupported input dtype";
}

}  // namespace surgeon::kernels
