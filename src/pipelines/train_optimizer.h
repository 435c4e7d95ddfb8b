// The optimiser of `surgeon train` behind one interface: AdamW with decoupled weight decay on matrices only,
// gradient clipping and the EMA of the weights. Two implementations with the same math: FlatAdamW (fast:
// parameters, gradients, moments and the EMA in flat buffers) and torch::optim::AdamW (its slow twin;
// train.optimizer = "torch"). Both store their moments per parameter index of TrainParams::all, so a checkpoint
// of one resumes with the other.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "pipelines/synth_model.h"
#include "pipelines/train_config.h"

namespace surgeon {

// The trained tensors of a synth model: the parameters themselves (not detached copies: those never receive
// gradients), by name, and in the fixed order `all` (DiT then text encoder, by name) that indexes the checkpoint.
struct TrainParams {
    TensorMap dit, text_encoder;
    std::vector<torch::Tensor> decay, no_decay, all;  // weight decay on tensors of rank >= 2 only
};
TrainParams train_params(SynthModel& m);

class TrainOptimizer {
public:
    virtual ~TrainOptimizer() = default;
    // zero_grad, backward of `objective`, clip to config.grad_clip, one AdamW step at `lr`; returns the gradient
    // norm before clipping (a 0-dim tensor on the device: reading it synchronises).
    virtual torch::Tensor step(const torch::Tensor& objective, double lr) = 0;
    // ema = decay * ema + (1 - decay) * weights.
    virtual void update_ema(double decay) = 0;
    // AdamW moments as "opt.<i>.exp_avg", "opt.<i>.exp_avg_sq", "opt.<i>.step" (i: index in TrainParams::all; none
    // before the first step), and back.
    virtual void save_moments(TensorMap& state) const = 0;
    virtual void load_moments(const TensorMap& state) = 0;
    // The EMA of the weights, by name like TrainParams::dit / text_encoder.
    TensorMap& ema_dit() { return ema_dit_; }
    TensorMap& ema_text_encoder() { return ema_te_; }
    const TensorMap& ema_dit() const { return ema_dit_; }
    const TensorMap& ema_text_encoder() const { return ema_te_; }

protected:
    TensorMap ema_dit_, ema_te_;
};

// The optimiser config.optimizer names ("flat" or "torch") over `params` (FlatAdamW moves their storage into its
// flat buffer; values kept).
std::unique_ptr<TrainOptimizer> make_train_optimizer(const TrainConfig& config, TrainParams& params, torch::Device device);

}  // namespace surgeon
