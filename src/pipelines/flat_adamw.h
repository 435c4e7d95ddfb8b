// AdamW over one flat buffer: every parameter becomes a view into one contiguous fp32 tensor, and its gradient
// a view into a second one, so the optimiser step, gradient clipping and the EMA are a handful of kernels over
// ~10M floats instead of several kernels per parameter tensor (the per-parameter loop of torch::optim::AdamW
// was ~30 ms of a 200 ms teacher step on the H200: docs/BENCHMARKS.md). Same math as torch::optim::AdamW
// (decoupled weight decay, bias-corrected moments); torch::optim::AdamW stays the slow twin
// (train.optimizer = "torch"), and tests compare the two.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace surgeon {

struct FlatAdamWOptions {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

class FlatAdamW {
public:
    // `decay` parameters get weight decay, `no_decay` do not. All must be floating point, on one device, of
    // one dtype, and leaves. Their storage moves into the flat buffer (values kept); their .grad() become views.
    FlatAdamW(const std::vector<torch::Tensor>& decay, const std::vector<torch::Tensor>& no_decay,
              FlatAdamWOptions options);
    // Parameters in flat order (decay first): index i here is index i of exp_avg_of / the checkpoint format.
    const std::vector<torch::Tensor>& params() const { return params_; }
    void zero_grad() { grad_.zero_(); }
    // Scales all gradients so their global L2 norm is at most max_norm (as clip_grad_norm_); returns the norm
    // before clipping (a 0-dim tensor: reading it synchronises).
    torch::Tensor clip_grad_norm(double max_norm);
    void step(double lr);
    int64_t steps() const { return step_; }
    void set_steps(int64_t s) { step_ = s; }
    // Per-parameter views of the moments (for checkpoints).
    torch::Tensor exp_avg_of(size_t i) const { return view(exp_avg_, i); }
    torch::Tensor exp_avg_sq_of(size_t i) const { return view(exp_avg_sq_, i); }
    // The whole buffers (EMA of the parameters is kept by the caller on flat_data()).
    const torch::Tensor& flat_data() const { return data_; }
    // A view of `flat` (same length as the buffers) shaped like parameter i.
    torch::Tensor view(const torch::Tensor& flat, size_t i) const;

private:
    FlatAdamWOptions o_;
    std::vector<torch::Tensor> params_;
    std::vector<int64_t> offsets_;
    int64_t n_decay_ = 0;  // elements [0, n_decay_) get weight decay
    torch::Tensor data_, grad_, exp_avg_, exp_avg_sq_;
    int64_t step_ = 0;
};

}  // namespace surgeon
