// Fused elementwise kernels of the DiT block's bf16 inference path (Wan's recipe: fp32 residual stream, norms
// and modulation; bf16 GEMM inputs). Plain params structs, no torch headers. Torch glue and the slow twins:
// ops/dit_ops.h. Tests: tests/model/test_dit_fused.cpp (twins, CPU), tests/gpu/test_dit_kernels.cpp (kernels).
#pragma once
#include <cstdint>

namespace surgeon::kernels {

// The most channels a row may have (the row is staged in shared memory as float32: 32 KiB, under the 48 KiB a
// block gets without opting in; Wan2.1-14B has 5120).
constexpr int64_t kDitMaxDim = 8192;

// One row r (sample b = r / tokens) of C = dim channels:
//   s = x + gate[b] * y      (gate null: s = x + y; y null: s = x)            fp32
//   n = (s - mean(s)) / sqrt(var(s) + eps)   (biased variance, as LayerNorm)  fp32
//   n = n * ln_w + ln_b      (each when non-null)
//   n = bf16(n)              (round_norm: WanLayerNorm's type_as when the LayerNorm input is a bf16 x, y null)
//   h = n * (1 + scale[b]) + shift[b]   (when scale / shift are non-null)     -> bf16
// x_out (when non-null) receives s. All arrays contiguous row-major; gate/scale/shift are [batch, C].
struct NormModulateParams {
    const float* x = nullptr;     // [rows, C]
    const void* y = nullptr;      // bf16 [rows, C] or null
    const float* gate = nullptr;  // [batch, C] or null
    float* x_out = nullptr;       // [rows, C] or null (must not alias x)
    const float* ln_w = nullptr;  // [C] or null
    const float* ln_b = nullptr;  // [C] or null
    const float* scale = nullptr; // [batch, C] or null
    const float* shift = nullptr; // [batch, C] or null
    void* h = nullptr;            // bf16 [rows, C]
    int64_t rows = 0, tokens = 0, dim = 0;
    float eps = 1e-6f;
    bool round_norm = false;
};

// Wan's q/k RMSNorm over all C = heads * head_dim channels of a row, then the 3-D RoPE rotation of each head's
// interleaved pairs (when cos/sin are non-null), bf16 out:
//   n = bf16(x * 1/sqrt(mean(x^2) + eps)) * weight       (fp32 statistics; bf16 rounding as WanRMSNorm's type_as)
//   (o0, o1) = (n0 c - n1 s, n0 s + n1 c),  c, s = cos/sin[l, j] of token l = r % tokens, pair j within the head
// x rows are x_row_stride elements apart (a column slice of a wider GEMM output is fine). out is [B, L, H, D]
// contiguous, or [B, H, L, D] contiguous when head_major (the layout cuDNN attention reads without a copy).
struct RmsNormRopeParams {
    const void* x = nullptr;         // bf16 [rows, >= C], row stride x_row_stride
    const float* weight = nullptr;   // [C]
    const float* cos = nullptr;      // [tokens, head_dim / 2] or null (no rotation)
    const float* sin = nullptr;      // same
    void* out = nullptr;             // bf16
    int64_t rows = 0, tokens = 0, heads = 0, head_dim = 0, x_row_stride = 0;
    bool head_major = false;
    float eps = 1e-6f;
};

// Launch on `stream` (a cudaStream_t); return an error string or nullptr. The checks the kernels rely on
// (dim <= kDitMaxDim, even head_dim, non-null required pointers) are repeated here and reported as errors.
const char* norm_modulate_cuda(const NormModulateParams& p, void* stream);
const char* rms_norm_rope_cuda(const RmsNormRopeParams& p, void* stream);

}  // namespace surgeon::kernels
