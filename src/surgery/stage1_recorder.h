// Stage 1's recording (method.md §5.1): what the teacher's self-attention cores see and return. An
// AttentionRecorder's tap, passed to the DiT's forward (or the sampler: SampleOptions::tap), keeps q, k, v after
// norm + RoPE and the core's output y for every block and forward; value_l1 is the held-out error stage 2 reads.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "attention/attention_core.h"
#include "model/wan_model.h"

namespace surgeon {

// One call of a block's self-attention core: inputs after norm + RoPE, and the teacher's output.
struct AttentionSample {
    torch::Tensor q, k, v, y;  // [B, N, H, D]
    TokenGrid grid;
};

// Collects AttentionSamples of the chosen blocks (all when empty) from every forward that runs with tap():
// `model->forward(x, t, context, &recorder.tap())`. Tensors are detached copies in `dtype` on `device`.
class AttentionRecorder {
public:
    AttentionRecorder(TokenGrid grid, std::vector<int64_t> blocks = {}, torch::ScalarType dtype = torch::kFloat32,
                      torch::Device device = torch::kCPU);
    const ActivationTap& tap() const { return tap_; }
    // Per block, the samples in the order the forwards ran.
    const std::map<int64_t, std::vector<AttentionSample>>& samples() const { return samples_; }

private:
    TokenGrid grid_;
    std::vector<int64_t> blocks_;
    torch::ScalarType dtype_;
    torch::Device device_;
    std::map<int64_t, std::vector<AttentionSample>> samples_;
    std::map<int64_t, AttentionSample> pending_;
    ActivationTap tap_;
};

// Mean |y - core(q, k, v)| over the samples' elements (method.md's value loss, as a held-out error).
double value_l1(AttentionCoreImpl& core, const std::vector<AttentionSample>& samples);

}  // namespace surgeon
