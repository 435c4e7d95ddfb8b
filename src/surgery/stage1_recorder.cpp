// Stage 1's recording: the attention recorder's tap and the value L1.
#include "surgery/stage1_recorder.h"

#include <algorithm>

#include "core/error.h"

namespace surgeon {

AttentionRecorder::AttentionRecorder(TokenGrid grid, std::vector<int64_t> blocks, torch::ScalarType dtype,
                                     torch::Device device)
    : grid_(grid), blocks_(std::move(blocks)), dtype_(dtype), device_(device) {
    tap_ = [this](const std::string& name, const torch::Tensor& t) {
        // "blocks.N.self_attn.q|k|v|attn" only (not "blocks.N.self_attn", the module output).
        static const std::string prefix = "blocks.";
        if (name.compare(0, prefix.size(), prefix) != 0) return;
        const auto dot = name.find('.', prefix.size());
        if (dot == std::string::npos) return;
        const std::string rest = name.substr(dot + 1);
        if (rest != "self_attn.q" && rest != "self_attn.k" && rest != "self_attn.v" && rest != "self_attn.attn") return;
        const int64_t b = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
        if (!blocks_.empty() && std::find(blocks_.begin(), blocks_.end(), b) == blocks_.end()) return;
        auto c = t.detach().to(device_, dtype_, /*non_blocking=*/false, /*copy=*/true);
        auto& p = pending_[b];
        if (rest == "self_attn.q") p.q = c;
        if (rest == "self_attn.k") p.k = c;
        if (rest == "self_attn.v") p.v = c;
        if (rest == "self_attn.attn") {
            SURGEON_CHECK(p.q.defined() && p.k.defined() && p.v.defined(),
                          "attention recorder: block {} returned an output before its q, k, v were seen", b);
            p.y = c;
            p.grid = grid_;
            SURGEON_CHECK(p.q.size(1) == grid_.tokens(), "attention recorder: block {} has {} tokens, the grid {}", b,
                          p.q.size(1), grid_.tokens());
            samples_[b].push_back(p);
            pending_.erase(b);
        }
    };
}

double value_l1(AttentionCoreImpl& core, const std::vector<AttentionSample>& samples) {
    SURGEON_CHECK(!samples.empty(), "value L1: no samples");
    torch::NoGradGuard ng;
    double sum = 0, count = 0;
    for (const auto& s : samples) {
        auto y_hat = core.forward(s.q, s.k, s.v, s.grid).to(torch::kFloat64);
        sum += (y_hat - s.y.to(torch::kFloat64)).abs().sum().item<double>();
        count += static_cast<double>(s.y.numel());
    }
    return sum / count;
}

}  // namespace surgeon
