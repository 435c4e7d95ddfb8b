// The self-attention slot of a Wan block. A core consumes per-head q, k, v *after* the q/k RMSNorm and
// the 3-D RoPE (Wan's flat token order j = f*(H'*W') + h*W' + w) and returns the attention output.
// The teacher's core is softmax; the surgery plugs hybrid/linear/chunked cores in here (method.md §1).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "core/types.h"

namespace surgeon {

class AttentionCoreImpl : public torch::nn::Module {
public:
    // q, k, v: [B, L, H, D]; returns [B, L, H, D] (dtype of v for softmax; float32 for reference paths).
    virtual torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const TokenGrid& grid) = 0;
    virtual std::string describe() const = 0;
    void set_impl(AttentionImpl impl) { impl_ = impl; }
    AttentionImpl impl() const { return impl_; }

protected:
    AttentionImpl impl_ = AttentionImpl::Fast;
};
using AttentionCore = std::shared_ptr<AttentionCoreImpl>;

}  // namespace surgeon
