// Stage 1's training: one block-option distillation, every (block, option) at once, and loading trained phi.
#include "surgery/stage1_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "model/model_io.h"
#include "surgery/attention_swap.h"
#include "surgery/block_errors.h"

namespace surgeon {

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

DistillLoss parse_distill_loss(const std::string& s) {
    if (s == "value") return DistillLoss::Value;
    if (s == "score") return DistillLoss::Score;
    fail("unknown distillation loss '{}' (expected value|score)", s);
}

std::string to_string(DistillLoss l) { return l == DistillLoss::Value ? "value" : "score"; }

StageOneTrainer::StageOneTrainer(std::vector<int64_t> blocks, std::vector<PlanEntry> options, int64_t num_heads,
                                 int64_t head_dim, const StageOneOptions& o, torch::Device device)
    : blocks_(std::move(blocks)), options_(std::move(options)), o_(o) {
    SURGEON_CHECK(!blocks_.empty() && !options_.empty(), "stage 1: need at least one block and one option");
    SURGEON_CHECK(std::isfinite(o.lr) && o.lr > 0, "stage 1: lr must be > 0, got {}", o.lr);
    SURGEON_CHECK(o.queries >= 0, "stage 1: queries must be >= 0, got {}", o.queries);
    SURGEON_CHECK(std::isfinite(o.scale_lr_mult) && o.scale_lr_mult > 0, "stage 1: scale lr multiplier must be > 0");
    std::vector<torch::Tensor> phi, scales;
    for (int64_t b : blocks_) {
        std::vector<HybridAttention> row;
        for (const auto& e : options_) {
            SURGEON_CHECK(e.kind != AttentionKind::Softmax, "stage 1: the softmax option has nothing to distil");
            HybridAttention c(e.normalized(head_dim), num_heads, head_dim, block_seed(o.seed, b));
            c->to(device);
            c->set_impl(AttentionImpl::Fast);
            for (auto& p : c->phi_q->parameters()) phi.push_back(p);
            for (auto& p : c->phi_k->parameters()) phi.push_back(p);
            if (c->linear_log_scale.defined()) scales.push_back(c->linear_log_scale);
            row.push_back(c);
        }
        cores_.push_back(row);
    }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    if (!phi.empty())
        groups.emplace_back(phi, std::make_unique<torch::optim::AdamWOptions>(
                                     torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay)));
    if (!scales.empty())
        groups.emplace_back(scales, std::make_unique<torch::optim::AdamWOptions>(
                                        torch::optim::AdamWOptions(o.lr * o.scale_lr_mult).weight_decay(0)));
    if (!groups.empty()) opt_ = std::make_unique<torch::optim::AdamW>(groups);
}

void StageOneTrainer::calibrate(const std::map<int64_t, AttentionSample>& sample) {
    for (size_t bi = 0; bi < blocks_.size(); ++bi) {
        const auto& s = sample.at(blocks_[bi]);
        for (auto& c : cores_[bi]) c->calibrate_linear_scale(s.q, s.k);
    }
}

namespace {
torch::Tensor score_loss(HybridAttentionImpl& core, const PlanEntry& e, const torch::Tensor& q_sub,
                         const torch::Tensor& k) {
    const auto f32 = torch::kFloat32;
    const int64_t N = k.size(1);
    auto [pq, pk] = core.features(q_sub, k);                                                    // [B, n|N, H, D']
    auto sc = torch::einsum("bnhd,bmhd->bhnm", {q_sub.to(f32), k.to(f32)}) / std::sqrt(double(k.size(3)));  // [B,H,n,N]
    auto kern = torch::einsum("bnhf,bmhf->bhnm", {pq.to(f32), pk.to(f32)});                      // [B, H, n, N]
    torch::Tensor target, pred;
    if (e.kind == AttentionKind::Linear) {
        target = torch::softmax(sc, -1);
        pred = kern / kern.sum(-1, true).clamp_min(1e-30);
    } else {
        auto idx = torch::arange(N, torch::TensorOptions().dtype(torch::kLong).device(k.device()));
        auto in_S = idx.remainder(e.rate) == 0;
        auto S = sc.index({"...", in_S}), L = sc.index({"...", ~in_S});                        // [B, H, n, |T_S|], [.., |T_L|]
        auto c = e.stabilizer == Stabilizer::Max ? std::get<0>(S.max(-1, true)) : S.logsumexp(-1, true);
        target = torch::exp(L - c);
        const int64_t nL = L.size(-1);
        pred = kern.index({"...", ~in_S}) * (torch::exp(core.linear_log_scale) / double(std::max<int64_t>(1, nL)))
                                                 .view({1, -1, 1, 1});
    }
    return torch::log1p((target - pred).pow(2).sum(-1)).mean();
}
}  // namespace

torch::Tensor StageOneTrainer::loss(HybridAttentionImpl& core, const AttentionSample& s, at::Generator& gen) const {
    const auto& e = core.entry();
    const bool subset_ok = e.kind == AttentionKind::Hybrid || e.kind == AttentionKind::Linear;
    const int64_t N = s.q.size(1);
    torch::Tensor idx;
    if (subset_ok && ((o_.queries > 0 && o_.queries < N) || o_.loss == DistillLoss::Score)) {
        const int64_t n = o_.queries > 0 ? std::min(o_.queries, N) : std::min<int64_t>(N, 1024);
        idx = torch::randperm(N, gen).narrow(0, 0, n).to(s.q.device());
    }
    if (o_.loss == DistillLoss::Score && subset_ok) return score_loss(core, e, s.q.index_select(1, idx), s.k);
    if (idx.defined()) {
        auto y_hat = core.forward_query_subset(s.q.index_select(1, idx), s.k, s.v, s.grid);
        return (y_hat.to(torch::kFloat32) - s.y.index_select(1, idx).to(torch::kFloat32)).abs().mean();
    }
    return (core.forward(s.q, s.k, s.v, s.grid).to(torch::kFloat32) - s.y.to(torch::kFloat32)).abs().mean();
}

torch::Tensor StageOneTrainer::update(const std::map<int64_t, AttentionSample>& sample, at::Generator& gen) {
    std::vector<torch::Tensor> losses;
    for (size_t bi = 0; bi < blocks_.size(); ++bi) {
        AttentionSample s = sample.at(blocks_[bi]);
        if (o_.rows > 0 && o_.rows < s.q.size(0)) {
            auto r = torch::randperm(s.q.size(0), gen).narrow(0, 0, o_.rows).to(s.q.device());
            s = {s.q.index_select(0, r), s.k.index_select(0, r), s.v.index_select(0, r), s.y.index_select(0, r), s.grid};
        }
        for (auto& c : cores_[bi]) losses.push_back(loss(*c, s, gen));
    }
    auto all = torch::stack(losses);  // [blocks * options]
    if (opt_) {
        opt_->zero_grad();
        all.sum().backward();
        opt_->step();
    }
    return all.detach().view({static_cast<int64_t>(blocks_.size()), static_cast<int64_t>(options_.size())});
}

std::vector<std::vector<double>> StageOneTrainer::heldout_l1(
    const std::map<int64_t, std::vector<AttentionSample>>& samples, int64_t queries) {
    std::vector<std::vector<double>> out;
    torch::NoGradGuard ng;
    for (size_t bi = 0; bi < blocks_.size(); ++bi) {
        const auto& list = samples.at(blocks_[bi]);
        std::vector<double> row;
        for (auto& c : cores_[bi]) {
            const auto kind = c->entry().kind;
            if (queries <= 0 || (kind != AttentionKind::Hybrid && kind != AttentionKind::Linear)) {
                row.push_back(value_l1(*c, list));
                continue;
            }
            double sum = 0, count = 0;
            for (size_t i = 0; i < list.size(); ++i) {
                const auto& s = list[i];
                const int64_t N = s.q.size(1), n = std::min(queries, N);
                auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + i);  // fixed per sample: every option alike
                auto idx = torch::randperm(N, gen).narrow(0, 0, n).to(s.q.device());
                auto y_hat = c->forward_query_subset(s.q.index_select(1, idx), s.k, s.v, s.grid);
                sum += (y_hat.to(torch::kFloat64) - s.y.index_select(1, idx).to(torch::kFloat64)).abs().sum().item<double>();
                count += static_cast<double>(y_hat.numel());
            }
            row.push_back(sum / count);
        }
        out.push_back(row);
    }
    return out;
}

void StageOneTrainer::save(const std::string& dir) const {
    TensorMap t;
    for (size_t bi = 0; bi < blocks_.size(); ++bi)
        for (size_t o = 0; o < options_.size(); ++o)
            for (const auto& [n, v] : state_dict(*cores_[bi][o]))
                t[fmt::format("{}/{}/{}", o, blocks_[bi], n)] = v.detach().to(torch::kCPU, torch::kFloat32);
    save_safetensors(dir + "/cores.safetensors", t);
    if (opt_) torch::save(*opt_, dir + "/optimizer.pt");
}

void StageOneTrainer::load(const std::string& dir) {
    auto t = load_safetensors(dir + "/cores.safetensors");
    for (size_t bi = 0; bi < blocks_.size(); ++bi) {
        for (size_t o = 0; o < options_.size(); ++o) {
            const std::string prefix = fmt::format("{}/{}/", o, blocks_[bi]);
            TensorMap mine;
            for (auto it = t.lower_bound(prefix); it != t.end() && it->first.rfind(prefix, 0) == 0; ++it)
                mine[it->first.substr(prefix.size())] = it->second;
            load_state_dict_strict(*cores_[bi][o], mine, {}, dir + "/cores.safetensors [" + prefix + "]");
        }
    }
    if (opt_) torch::load(*opt_, dir + "/optimizer.pt");
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
