// Stage 1 building blocks: the attention recorder, the value L1, and one block-option distillation.
#include "surgery/distill.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "model/model_io.h"
#include "surgery/attention_swap.h"
#include "surgery/rate_selection.h"

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

DistillResult distill_block(const PlanEntry& entry, const std::vector<AttentionSample>& train,
                            const std::vector<AttentionSample>& heldout, const DistillOptions& options) {
    SURGEON_CHECK(entry.kind != AttentionKind::Softmax, "distill: the softmax option has nothing to distil");
    SURGEON_CHECK(!train.empty() && !heldout.empty(), "distill: need training and held-out samples (got {} and {})",
                  train.size(), heldout.size());
    SURGEON_CHECK(options.steps >= 0, "distill: steps must be >= 0, got {}", options.steps);
    const int64_t H = train[0].q.size(2), D = train[0].q.size(3);
    for (const auto* set : {&train, &heldout})
        for (const auto& s : *set)
            SURGEON_CHECK(s.q.dim() == 4 && s.q.size(2) == H && s.q.size(3) == D && s.y.sizes() == s.q.sizes(),
                          "distill: samples must share [B, N, {}, {}] q and y, got q {} and y {}", H, D,
                          c10::str(s.q.sizes()), c10::str(s.y.sizes()));
    DistillResult r;
    r.core = HybridAttention(entry.normalized(D), H, D, options.seed);
    r.core->to(train[0].q.device());
    r.core->set_impl(AttentionImpl::Fast);
    r.heldout_l1_init = value_l1(*r.core, heldout);
    auto params = r.core->parameters();
    if (!params.empty() && options.steps > 0) {
        torch::optim::AdamW opt(params, torch::optim::AdamWOptions(options.lr).weight_decay(options.weight_decay));
        std::vector<torch::Tensor> losses;  // read back once at the end: no host sync per step on the GPU
        for (int64_t step = 0; step < options.steps; ++step) {
            const auto& s = train[static_cast<size_t>(step) % train.size()];
            opt.zero_grad();
            auto loss = (r.core->forward(s.q, s.k, s.v, s.grid) - s.y).abs().mean();
            loss.backward();
            opt.step();
            losses.push_back(loss.detach());
        }
        const auto all = torch::stack(losses).to(torch::kCPU, torch::kFloat64);
        r.train_l1.assign(all.data_ptr<double>(), all.data_ptr<double>() + all.numel());
    }
    r.heldout_l1 = value_l1(*r.core, heldout);
    return r;
}

void load_distilled_phi(WanModel& model, const std::string& distill_dir) {
    const std::string table_path = distill_dir + "/block_errors.json";
    SURGEON_CHECK(file_exists(table_path), "{}: no block_errors.json (not a finished `surgeon distill` run)", distill_dir);
    const auto table = BlockErrorTable::load(table_path);
    const auto& cfg = model->config();
    const auto plan = plan_of(model);
    for (int64_t b = 0; b < cfg.num_layers; ++b) {
        const auto& e = plan.blocks[b];
        if (e.kind == AttentionKind::Softmax) continue;
        int64_t match = -1;
        for (size_t o = 0; o < table.options.size() && match < 0; ++o)
            if (table.options[o].normalized(cfg.head_dim()) == e.normalized(cfg.head_dim())) match = static_cast<int64_t>(o);
        SURGEON_CHECK(match >= 0, "block {} runs {}, which is not an option of {}", b, e.describe(), table_path);
        auto core = model->block(b)->self_attn->core();
        if (core->parameters().empty()) continue;  // elu1 / relu: nothing was trained
        const std::string path = fmt::format("{}/phi/{}/block{}.safetensors", distill_dir, table.names[match], b);
        SURGEON_CHECK(file_exists(path), "block {}: {} is missing (the distillation run did not train it)", b, path);
        auto tensors = load_safetensors(path);
        for (auto& [n, t] : tensors) t = t.to(torch::kFloat32);
        load_state_dict_strict(*core, tensors, {}, path);
    }
}

}  // namespace surgeon
