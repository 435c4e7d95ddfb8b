#include "pipelines/flat_adamw.h"

#include <cmath>

#include "core/error.h"

namespace surgeon {

FlatAdamW::FlatAdamW(const std::vector<torch::Tensor>& decay, const std::vector<torch::Tensor>& no_decay,
                     FlatAdamWOptions options)
    : o_(options) {
    params_ = decay;
    params_.insert(params_.end(), no_decay.begin(), no_decay.end());
    SURGEON_CHECK(!params_.empty(), "FlatAdamW: no parameters");
    const auto opts = params_[0].options();
    int64_t n = 0;
    for (size_t i = 0; i < params_.size(); ++i) {
        const auto& p = params_[i];
        SURGEON_CHECK(p.is_floating_point() && p.scalar_type() == opts.dtype().toScalarType() && p.device() == opts.device(),
                      "FlatAdamW: parameter {} has dtype/device {}/{}, expected {}/{}", i, c10::toString(p.scalar_type()),
                      p.device().str(), c10::toString(opts.dtype().toScalarType()), opts.device().str());
        offsets_.push_back(n);
        n += p.numel();
        if (i + 1 == decay.size()) n_decay_ = n;
    }
    offsets_.push_back(n);
    torch::NoGradGuard ng;
    data_ = torch::empty({n}, opts);
    grad_ = torch::zeros({n}, opts);
    exp_avg_ = torch::zeros({n}, opts);
    exp_avg_sq_ = torch::zeros({n}, opts);
    for (size_t i = 0; i < params_.size(); ++i) {
        auto& p = params_[i];
        auto v = view(data_, i);
        v.copy_(p.detach());
        p.set_data(v);  // the module's parameter now aliases the flat buffer
        p.mutable_grad() = view(grad_, i);
    }
}

torch::Tensor FlatAdamW::view(const torch::Tensor& flat, size_t i) const {
    SURGEON_ASSERT(i < params_.size() && flat.numel() == offsets_.back());
    return flat.narrow(0, offsets_[i], offsets_[i + 1] - offsets_[i]).view(params_[i].sizes());
}

torch::Tensor FlatAdamW::clip_grad_norm(double max_norm) {
    torch::NoGradGuard ng;
    auto norm = grad_.norm();
    // As torch::nn::utils::clip_grad_norm_: coefficient max_norm / (norm + 1e-6), clamped to 1, no host sync.
    grad_.mul_(torch::clamp_max(max_norm / (norm + 1e-6), 1.0));
    return norm;
}

void FlatAdamW::step(double lr) {
    torch::NoGradGuard ng;
    ++step_;
    // Same order of operations as torch::optim::AdamW::step.
    if (o_.weight_decay != 0 && n_decay_ > 0) data_.narrow(0, 0, n_decay_).mul_(1 - lr * o_.weight_decay);
    const double bc1 = 1 - std::pow(o_.beta1, static_cast<double>(step_));
    const double bc2 = 1 - std::pow(o_.beta2, static_cast<double>(step_));
    exp_avg_.mul_(o_.beta1).add_(grad_, 1 - o_.beta1);
    exp_avg_sq_.mul_(o_.beta2).addcmul_(grad_, grad_, 1 - o_.beta2);
    auto denom = (exp_avg_sq_.sqrt() / std::sqrt(bc2)).add_(o_.eps);
    data_.addcdiv_(exp_avg_, denom, -lr / bc1);
}

}  // namespace surgeon
