// Loss terms of the trainer (see train_losses.h).
#include "pipelines/train_losses.h"

#include <algorithm>

#include "core/error.h"

namespace surgeon {

FlowMatchingTerm flow_matching_term(SynthModel& m, const TrainConfig& c, const TrainBatch& b, const torch::Tensor& pos,
                                    torch::Device dev) {
    FlowMatchingTerm f;
    f.x0 = b.videos.to(dev, /*non_blocking=*/true);  // [B, 3, T, H, W]
    f.eps = b.eps.to(dev, /*non_blocking=*/true);    // [B, 3, T, H, W]
    f.sigma = b.sigma.to(dev).view({-1, 1, 1, 1, 1});
    f.xs = (1 - f.sigma) * f.x0 + f.sigma * f.eps;
    auto ids = m.tokenizer.encode_batch(b.prompts, c.text_encoder.text_len).to(dev);
    f.ctx = m.text_encoder->forward(ids);
    f.v = m.velocity(f.xs, f.sigma.view({-1}) * 1000.0, f.ctx, pos);
    f.loss = torch::mse_loss(f.v, f.eps - f.x0);
    return f;
}

SwapContrastTerm swap_contrast_term(SynthModel& m, const TrainConfig& c, const TrainBatch& b, const FlowMatchingTerm& f,
                                    const torch::Tensor& pos, torch::Device dev) {
    // The same noisy clips with the swapped prompt (reverse direction, mirrored gradient or the objects'
    // colours/shapes exchanged) must do worse than with the true prompt.
    SwapContrastTerm t;
    auto idx = torch::tensor(b.swapped_index, torch::kLong).to(dev);
    auto ids_s = m.tokenizer.encode_batch(b.swapped_prompts, c.text_encoder.text_len).to(dev);
    auto ctx_s = m.text_encoder->forward(ids_s);
    auto pos_s = pos.defined() ? pos.index_select(0, idx) : pos;
    auto target = (f.eps - f.x0).index_select(0, idx);
    if (b.swap_sigma.defined()) {
        // Its own noise level: the true and the swapped prompt on the same re-noised clips, one forward.
        const int64_t n = idx.size(0);
        auto sc = b.swap_sigma.to(dev).view({-1, 1, 1, 1, 1});
        auto xc = (1 - sc) * f.x0.index_select(0, idx) + sc * f.eps.index_select(0, idx);
        auto vv = m.velocity(torch::cat({xc, xc}), torch::cat({sc, sc}).view({-1}) * 1000.0,
                             torch::cat({f.ctx.index_select(0, idx), ctx_s}),
                             pos_s.defined() ? torch::cat({pos_s, pos_s}) : pos_s);
        t.l_true = (vv.narrow(0, 0, n) - target).pow(2).mean({1, 2, 3, 4});
        t.l_swap = (vv.narrow(0, n, n) - target).pow(2).mean({1, 2, 3, 4});
    } else {
        auto v_s = m.velocity(f.xs.index_select(0, idx), f.sigma.view({-1}).index_select(0, idx) * 1000.0, ctx_s, pos_s);
        t.l_true = (f.v.index_select(0, idx) - target).pow(2).mean({1, 2, 3, 4});
        t.l_swap = (v_s - target).pow(2).mean({1, 2, 3, 4});
    }
    t.hinge = torch::relu((1 + c.swap_margin) * t.l_true - t.l_swap).mean();
    return t;
}

void SwapGapLog::add(const std::vector<std::string>& sample_kinds, const SwapContrastTerm& term, torch::Device dev) {
    torch::NoGradGuard ng;
    std::vector<int64_t> kind(sample_kinds.size());
    for (size_t k = 0; k < kind.size(); ++k) {
        kind[k] = std::find(kinds_.begin(), kinds_.end(), sample_kinds[k]) - kinds_.begin();
        ++n_[kind[k]];
    }
    auto rel = ((term.l_swap - term.l_true) / term.l_true.clamp_min(1e-12)).to(torch::kFloat64);
    auto sums = torch::zeros({static_cast<int64_t>(kinds_.size())}, rel.options())
                    .index_add_(0, torch::tensor(kind, torch::kLong).to(dev), rel);
    sums_ = sums_.defined() ? sums_ + sums : sums;
}

void SwapGapLog::close_window() {
    if (!sums_.defined()) return;
    auto sums = sums_.cpu();
    text_ = " swap gap";
    for (size_t k = 0; k < kinds_.size(); ++k)
        if (n_[k] > 0) text_ += fmt::format(" {} {:+.1f}%", kinds_[k], 100.0 * sums[k].item<double>() / n_[k]);
    sums_ = torch::Tensor();
    std::fill(n_.begin(), n_.end(), 0);
}

}  // namespace surgeon
