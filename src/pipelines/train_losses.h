// The loss terms of `surgeon train`: flow matching (the velocity eps - x0 at x_sigma = (1 - sigma) x0 + sigma eps)
// and the swap contrast (TrainConfig::swap_contrast: the same noisy clips under a swapped prompt must be predicted
// worse than under the true one), with the per-kind gap the train log shows.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "pipelines/synth_model.h"
#include "pipelines/train_batch.h"
#include "pipelines/train_config.h"

namespace surgeon {

// One batch's flow-matching forward on the device: its inputs, the text context, the predicted velocity and the
// MSE loss against eps - x0.
struct FlowMatchingTerm {
    torch::Tensor x0, eps, sigma, xs, ctx, v, loss;  // [B,3,T,H,W] x4, sigma [B,1,1,1,1], ctx [B,Lt,C], v, loss []
};
// `pos`: the position planes of the batch (SynthModel::condition) or undefined.
FlowMatchingTerm flow_matching_term(SynthModel& m, const TrainConfig& c, const TrainBatch& b, const torch::Tensor& pos,
                                    torch::Device dev);

// The contrast over the batch's swapped samples: per-sample flow-matching losses with the true and the swapped
// prompt (at the main sigma, or at b.swap_sigma when swap_sigma_min > 0) and the hinge
// mean(relu((1 + swap_margin) * l_true - l_swap)).
struct SwapContrastTerm {
    torch::Tensor l_true, l_swap, hinge;  // [n], [n], []
};
SwapContrastTerm swap_contrast_term(SynthModel& m, const TrainConfig& c, const TrainBatch& b, const FlowMatchingTerm& fm,
                                    const torch::Tensor& pos, torch::Device dev);

// Mean relative gap (l_swap - l_true) / l_true per swap kind over a log window, accumulated on the device and read
// once per window (" swap gap direction +3.1% ...").
class SwapGapLog {
public:
    explicit SwapGapLog(std::vector<std::string> kinds) : kinds_(std::move(kinds)), n_(kinds_.size()) {}
    void add(const std::vector<std::string>& sample_kinds, const SwapContrastTerm& term, torch::Device dev);
    // The window's text (empty when nothing was added since the last call, then the previous text stays).
    void close_window();
    const std::string& text() const { return text_; }

private:
    std::vector<std::string> kinds_;
    std::vector<int64_t> n_;  // samples per kind in the window
    torch::Tensor sums_;      // [kinds] sums of the relative gap, on the device
    std::string text_;
};

}  // namespace surgeon
