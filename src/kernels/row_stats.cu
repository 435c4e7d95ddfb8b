// Row statistics of the max stabiliser (method.md §2): per query row, log a = log sum_j exp(s_j - max_j s_j) of
// s = scale * q.k over the softmax keys, in ONE pass over the keys (online max / rescaled sum, as FlashAttention
// does), so log a >= 0 exactly (the max term contributes exp2(0) = 1).
// Tiles: a block of 4 warps owns 128 query rows (each warp 2 m16 tiles, Q fragments in registers for the whole
// pass); key tiles of 64 rows staged in shared memory (rows padded by 16 bytes: conflict-free 32-bit fragment
// loads); S = Q K^T by mma.sync m16n8k16 bf16 -> f32 (HMMA). First version: no cp.async pipelining, no wgmma.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention_kernels.h"

namespace surgeon::kernels {
namespace {

constexpr int kWarps = 4, kRowsPerWarp = 32, kKeyTile = 64;

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <int D>
__global__ void __launch_bounds__(kWarps * 32) row_stats_kernel(RowStatsParams p) {
    constexpr int KB = D / 16;       // k-blocks of 16 along the head dim
    constexpr int LD = D + 8;        // padded shared row (bf16 elements)
    __shared__ __align__(16) __nv_bfloat16 ks[kKeyTile * LD];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
    const int64_t bh = int64_t(blockIdx.z) * p.heads + blockIdx.y;
    const auto* q = static_cast<const __nv_bfloat16*>(p.q) + bh * p.lq * D;
    const auto* k = static_cast<const __nv_bfloat16*>(p.k) + bh * p.lk * D;
    const int64_t row_base = int64_t(blockIdx.x) * (kWarps * kRowsPerWarp) + warp * kRowsPerWarp;

    // A fragments (m16n8k16, row-major A): reg0 (g, 2t..2t+1), reg1 (g+8, 2t..), reg2 (g, 2t+8..), reg3 (g+8, 2t+8..).
    uint32_t a[2][KB][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
        const int64_t r0 = row_base + mt * 16 + g, r1 = r0 + 8;
#pragma unroll
        for (int kb = 0; kb < KB; ++kb) {
            const int c = kb * 16 + tig * 2;
            a[mt][kb][0] = r0 < p.lq ? *reinterpret_cast<const uint32_t*>(q + r0 * D + c) : 0u;
            a[mt][kb][1] = r1 < p.lq ? *reinterpret_cast<const uint32_t*>(q + r1 * D + c) : 0u;
            a[mt][kb][2] = r0 < p.lq ? *reinterpret_cast<const uint32_t*>(q + r0 * D + c + 8) : 0u;
            a[mt][kb][3] = r1 < p.lq ? *reinterpret_cast<const uint32_t*>(q + r1 * D + c + 8) : 0u;
        }
    }
    const float sl2 = p.scale * 1.4426950408889634f;  // scores in log2 units
    float m[2][2], l[2][2];                             // [m-tile][row g / g+8]: running max and partial sum
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) m[mt][r] = -INFINITY, l[mt][r] = 0.f;

    for (int64_t k0 = 0; k0 < p.lk; k0 += kKeyTile) {
        __syncthreads();  // previous tile fully read
        constexpr int kChunks = kKeyTile * D / 8;  // 16-byte pieces of the key tile
        for (int c = threadIdx.x; c < kChunks; c += kWarps * 32) {
            const int row = c / (D / 8), col = (c % (D / 8)) * 8;
            uint4 val = make_uint4(0u, 0u, 0u, 0u);
            if (k0 + row < p.lk) val = *reinterpret_cast<const uint4*>(k + (k0 + row) * D + col);
            *reinterpret_cast<uint4*>(ks + row * LD + col) = val;
        }
        __syncthreads();
        float s[2][kKeyTile / 8][4];
#pragma unroll
        for (int nb = 0; nb < kKeyTile / 8; ++nb) {
#pragma unroll
            for (int mt = 0; mt < 2; ++mt)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[mt][nb][e] = 0.f;
            // B fragment (col-major B = K^T): reg0 (k = 2t..2t+1, n = g), reg1 (k = 2t+8.., n = g).
            const __nv_bfloat16* kr = ks + (nb * 8 + g) * LD + tig * 2;
#pragma unroll
            for (int kb = 0; kb < KB; ++kb) {
                const uint32_t b0 = *reinterpret_cast<const uint32_t*>(kr + kb * 16);
                const uint32_t b1 = *reinterpret_cast<const uint32_t*>(kr + kb * 16 + 8);
                mma_bf16(s[0][nb], a[0][kb], b0, b1);
                mma_bf16(s[1][nb], a[1][kb], b0, b1);
            }
        }
        // C fragment: (g, 2t..2t+1) in e = 0, 1 and (g+8, 2t..2t+1) in e = 2, 3; key = k0 + nb*8 + 2t + (e & 1).
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float mx = -INFINITY;
#pragma unroll
                for (int nb = 0; nb < kKeyTile / 8; ++nb)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int64_t key = k0 + nb * 8 + tig * 2 + e;
                        float t = s[mt][nb][2 * r + e] * sl2;
                        if (key >= p.lk) t = -INFINITY;
                        s[mt][nb][2 * r + e] = t;
                        mx = fmaxf(mx, t);
                    }
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));  // the row's tile max, same in its 4 lanes
                const float m_new = fmaxf(m[mt][r], mx);            // finite: key k0 < lk is in every tile
                float sum = 0.f;
#pragma unroll
                for (int nb = 0; nb < kKeyTile / 8; ++nb)
#pragma unroll
                    for (int e = 0; e < 2; ++e) sum += exp2f(s[mt][nb][2 * r + e] - m_new);
                l[mt][r] = l[mt][r] * exp2f(m[mt][r] - m_new) + sum;
                m[mt][r] = m_new;
            }
        }
    }
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float sum = l[mt][r];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const int64_t row = row_base + mt * 16 + g + 8 * r;
            if (tig == 0 && row < p.lq) p.log_a[bh * p.lq + row] = log2f(sum) * 0.6931471805599453f;
        }
}

}  // namespace

bool row_stats_supported(int64_t dim) { return dim == 64 || dim == 128; }

const char* row_stats_cuda(const RowStatsParams& p, void* stream) {
    if (!row_stats_supported(p.dim)) return "row stats kernel: head dim must be 64 or 128";
    if (p.lq == 0 || p.batch == 0 || p.heads == 0) return nullptr;
    if (p.lk == 0) return "row stats kernel: no keys";
    if (p.heads > 65535 || p.batch > 65535) return "row stats kernel: too many heads or batches for the grid";
    const dim3 grid(static_cast<unsigned>((p.lq + kWarps * kRowsPerWarp - 1) / (kWarps * kRowsPerWarp)),
                    static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
    auto s = static_cast<cudaStream_t>(stream);
    if (p.dim == 128)
        row_stats_kernel<128><<<grid, kWarps * 32, 0, s>>>(p);
    else
        row_stats_kernel<64><<<grid, kWarps * 32, 0, s>>>(p);
    const cudaError_t err = cudaGetLastError();
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace surgeon::kernels
