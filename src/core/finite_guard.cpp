#include "core/finite_guard.h"

#include "core/error.h"

namespace surgeon {

void check_state_finite(const std::vector<torch::Tensor>& tensors, const std::string& command, int64_t step,
                        const std::string& what) {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> flags;
    for (const auto& t : tensors)
        if (t.defined() && t.is_floating_point() && t.numel() > 0) flags.push_back(torch::isfinite(t).all());
    if (flags.empty()) return;
    const bool ok = torch::stack(flags).all().item<bool>();  // one sync for the whole state
    SURGEON_CHECK(ok,
                  "{}: training diverged at step {}: NaN or Inf in {} (the last checkpoint is kept; lower the "
                  "learning rate, then --resume)",
                  command, step, what);
}

void check_state_finite(const TensorMap& tensors, const std::string& command, int64_t step) {
    std::vector<torch::Tensor> all;
    for (const auto& [name, t] : tensors) all.push_back(t);
    try {
        check_state_finite(all, command, step);
    } catch (const Error&) {
        torch::NoGradGuard ng;
        for (const auto& [name, t] : tensors)
            if (t.defined() && t.is_floating_point() && !torch::isfinite(t).all().item<bool>())
                check_state_finite(std::vector<torch::Tensor>{t}, command, step, "'" + name + "'");
        throw;
    }
}

}  // namespace surgeon
