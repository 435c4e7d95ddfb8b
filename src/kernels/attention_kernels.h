// Kernels of the hybrid attention fast path (inference): the joint-normalised combine and the row statistics of
// the max stabiliser. Plain params structs, no torch headers; glue and CPU fallbacks in src/ops/hybrid_ops.cpp.
#pragma once
#include <cstdint>

namespace surgeon::kernels {

enum class DType : int { F32 = 0, BF16 = 1, F16 = 2 };

// Row offset (in elements) of (b, h, n) for a tensor whose query axis may be split into chunks that were batched
// (SDPA over [B*nc, H, chunk, D]): offset = b*sb + (n / chunk)*sc + h*sh + (n % chunk)*st, n relative to the
// first query of the range. A plain [B, H, N, D] tensor has chunk >= N and sc = 0.
struct RowIndex {
    int64_t sb = 0, sc = 0, sh = 0, st = 0, chunk = 1;
};

// y[b, n0+n, h, :] = (a*o + num) / (a + den) with a = exp(log_a) (1 when log_a is null), num = nd[b,h,n0+n,0:D],
// den = nd[b,h,n0+n,den_col]; without o (linear kind): num / max(den, 1e-30). Float32 math.
struct CombineParams {
    const void* o = nullptr;  // softmax output (o_dtype), last dim contiguous; null for the linear kind
    DType o_dtype = DType::BF16;
    RowIndex o_idx;
    const float* log_a = nullptr;  // [.., rows] float32 (element index, no D axis); null: a = 1 (lse)
    RowIndex la_idx;
    const float* nd = nullptr;  // float32 [B, H, N, *]: num in columns 0..D-1, den in column den_col
    int64_t nd_sb = 0, nd_sh = 0, nd_sn = 0, den_col = 0;
    void* y = nullptr;  // [B, N, H, D]-strided rows (y_dtype), last dim contiguous
    DType y_dtype = DType::BF16;
    int64_t y_sb = 0, y_sn = 0, y_sh = 0;
    int64_t batch = 0, heads = 0, n0 = 0, nq = 0, dim = 0;
};
const char* hybrid_combine_cuda(const CombineParams& p, void* stream);

// Per query row of q [B', H, Lq, D] against keys k [B', H, Lk, D] (both bf16, contiguous): with
// s_j = scale * q.k_j, log_a = log sum_j exp(s_j - max_j s_j) (= lse - max >= 0), float32 [B', H, Lq].
// One pass over the keys; bf16 tensor cores (mma.sync m16n8k16) with float32 accumulation. D in {64, 128}.
struct RowStatsParams {
    const void* q = nullptr;
    const void* k = nullptr;
    float* log_a = nullptr;
    int64_t batch = 0, heads = 0, lq = 0, lk = 0, dim = 0;
    float scale = 1.0f;
};
bool row_stats_supported(int64_t dim);
const char* row_stats_cuda(const RowStatsParams& p, void* stream);

}  // namespace surgeon::kernels
