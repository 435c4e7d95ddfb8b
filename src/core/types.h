// Small vocabulary types shared by every layer: the token grid and the fast/reference switch.
#pragma once
#include <cstdint>
#include <string>

#include "core/names.h"

namespace surgeon {

// Patch grid of one sample: F' x H' x W' tokens in Wan's flat order j = f*(H'*W') + h*W' + w.
struct TokenGrid {
    int64_t frames = 1, height = 1, width = 1;
    int64_t tokens() const { return frames * height * width; }
    int64_t tokens_per_frame() const { return height * width; }
};
// The most tokens one sample may have (2^24: 16x a 720p Wan2.1 video's 75,600; keeps every count in int64).
constexpr int64_t kMaxTokens = int64_t{1} << 24;
// Refuses a grid with a side < 1 or more than kMaxTokens tokens (product checked without overflow).
void check_token_grid(const TokenGrid& g, const std::string& what);

// Every fast path has a slow twin selectable at run time.
enum class AttentionImpl {
    Reference,  // literal equations, explicit scores in query tiles (bounded memory), fp32/fp64 math
    Fast,       // SDPA / cuDNN / FlashAttention / GEMM states / fused CUDA kernels
};
inline constexpr EnumName<AttentionImpl> kAttentionImplNames[] = {{AttentionImpl::Fast, "fast"},
                                                                 {AttentionImpl::Reference, "reference"}};
AttentionImpl parse_attention_impl(const std::string& s);
std::string to_string(AttentionImpl impl);

}  // namespace surgeon
