// Softmax attention: the teacher's self-attention core and the plain function shared with cross-attention.
#pragma once
#include "attention/attention_core.h"

namespace surgeon {

// Full softmax attention, scale 1/sqrt(D). q [B, Lq, H, D], k/v [B, Lk, H, D] -> [B, Lq, H, D].
// Fast: at::scaled_dot_product_attention (cuDNN/Flash on CUDA), output in the inputs' dtype.
// Reference: explicit fp32 scores in query tiles of `tile` rows, output float32.
torch::Tensor softmax_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                AttentionImpl impl, int64_t tile = 1024);

class SoftmaxAttentionImpl : public AttentionCoreImpl {
public:
    torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const TokenGrid& grid) override;
    std::string describe() const override { return "softmax"; }
};

}  // namespace surgeon
