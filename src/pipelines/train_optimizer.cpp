// The two TrainOptimizer implementations (see train_optimizer.h).
#include "pipelines/train_optimizer.h"

#include <map>

#include "core/error.h"
#include "model/model_io.h"
#include "pipelines/flat_adamw.h"

namespace surgeon {

namespace {

std::string moment_key(size_t i) { return "opt." + std::to_string(i) + "."; }

class FlatTrainOptimizer : public TrainOptimizer {
public:
    FlatTrainOptimizer(const TrainConfig& c, TrainParams& p) : grad_clip_(c.grad_clip), flat_index_(p.all.size()) {
        torch::NoGradGuard ng;
        opt_ = std::make_unique<FlatAdamW>(p.decay, p.no_decay, FlatAdamWOptions{c.beta1, c.beta2, 1e-8, c.weight_decay});
        std::map<const void*, size_t> pos;  // parameter -> its index in opt_->params()
        for (size_t i = 0; i < opt_->params().size(); ++i) pos[opt_->params()[i].unsafeGetTensorImpl()] = i;
        for (size_t i = 0; i < p.all.size(); ++i) flat_index_[i] = pos.at(p.all[i].unsafeGetTensorImpl());
        ema_ = opt_->flat_data().clone();
        for (auto& [n, t] : p.dit) ema_dit_[n] = opt_->view(ema_, pos.at(t.unsafeGetTensorImpl()));
        for (auto& [n, t] : p.text_encoder) ema_te_[n] = opt_->view(ema_, pos.at(t.unsafeGetTensorImpl()));
    }
    torch::Tensor step(const torch::Tensor& objective, double lr) override {
        opt_->zero_grad();
        objective.backward();
        auto gn = opt_->clip_grad_norm(grad_clip_);
        opt_->step(lr);
        return gn;
    }
    void update_ema(double d) override {
        torch::NoGradGuard ng;
        ema_.mul_(d).add_(opt_->flat_data(), 1 - d);
    }
    void save_moments(TensorMap& st) const override {
        if (opt_->steps() == 0) return;
        for (size_t i = 0; i < flat_index_.size(); ++i) {
            st[moment_key(i) + "exp_avg"] = opt_->exp_avg_of(flat_index_[i]).to(torch::kCPU).contiguous();
            st[moment_key(i) + "exp_avg_sq"] = opt_->exp_avg_sq_of(flat_index_[i]).to(torch::kCPU).contiguous();
            st[moment_key(i) + "step"] = torch::tensor({opt_->steps()}, torch::kInt64);
        }
    }
    void load_moments(const TensorMap& st) override {
        torch::NoGradGuard ng;
        for (size_t i = 0; i < flat_index_.size(); ++i) {
            const std::string k = moment_key(i);
            if (!st.count(k + "exp_avg")) continue;
            opt_->exp_avg_of(flat_index_[i]).copy_(st.at(k + "exp_avg"));
            opt_->exp_avg_sq_of(flat_index_[i]).copy_(st.at(k + "exp_avg_sq"));
            opt_->set_steps(st.at(k + "step").item<int64_t>());
        }
    }

private:
    double grad_clip_;
    std::unique_ptr<FlatAdamW> opt_;
    std::vector<size_t> flat_index_;  // index in TrainParams::all -> index in opt_->params()
    torch::Tensor ema_;               // the EMA as one flat buffer; ema_dit_ / ema_te_ are views into it
};

class TorchTrainOptimizer : public TrainOptimizer {
public:
    TorchTrainOptimizer(const TrainConfig& c, TrainParams& p, torch::Device dev) : p_(p), grad_clip_(c.grad_clip), dev_(dev) {
        std::vector<torch::optim::OptimizerParamGroup> groups;
        const auto options = [&](double wd) {
            return std::make_unique<torch::optim::AdamWOptions>(
                torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).weight_decay(wd));
        };
        groups.emplace_back(p.decay, options(c.weight_decay));
        groups.emplace_back(p.no_decay, options(0.0));
        opt_ = std::make_unique<torch::optim::AdamW>(std::move(groups));
        torch::NoGradGuard ng;
        for (auto& [n, t] : p.dit) ema_dit_[n] = t.detach().clone();
        for (auto& [n, t] : p.text_encoder) ema_te_[n] = t.detach().clone();
    }
    torch::Tensor step(const torch::Tensor& objective, double lr) override {
        for (auto& g : opt_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
        opt_->zero_grad();
        objective.backward();
        auto gn = torch::tensor(torch::nn::utils::clip_grad_norm_(p_.all, grad_clip_), torch::kFloat64);
        opt_->step();
        return gn;
    }
    void update_ema(double d) override {
        torch::NoGradGuard ng;
        for (auto& [n, t] : p_.dit) ema_dit_[n].mul_(d).add_(t.detach(), 1 - d);
        for (auto& [n, t] : p_.text_encoder) ema_te_[n].mul_(d).add_(t.detach(), 1 - d);
    }
    void save_moments(TensorMap& st) const override {
        for (size_t i = 0; i < p_.all.size(); ++i) {
            auto it = opt_->state().find(p_.all[i].unsafeGetTensorImpl());
            if (it == opt_->state().end()) continue;
            auto& ps = static_cast<torch::optim::AdamWParamState&>(*it->second);
            st[moment_key(i) + "exp_avg"] = ps.exp_avg().detach().to(torch::kCPU).contiguous();
            st[moment_key(i) + "exp_avg_sq"] = ps.exp_avg_sq().detach().to(torch::kCPU).contiguous();
            st[moment_key(i) + "step"] = torch::tensor({ps.step()}, torch::kInt64);
        }
    }
    void load_moments(const TensorMap& st) override {
        for (size_t i = 0; i < p_.all.size(); ++i) {
            const std::string k = moment_key(i);
            if (!st.count(k + "exp_avg")) continue;
            auto ps = std::make_unique<torch::optim::AdamWParamState>();
            ps->step(st.at(k + "step").item<int64_t>());
            ps->exp_avg(st.at(k + "exp_avg").to(dev_).clone());
            ps->exp_avg_sq(st.at(k + "exp_avg_sq").to(dev_).clone());
            opt_->state()[p_.all[i].unsafeGetTensorImpl()] = std::move(ps);
        }
    }

private:
    TrainParams& p_;
    double grad_clip_;
    torch::Device dev_;
    std::unique_ptr<torch::optim::AdamW> opt_;
};

}  // namespace

TrainParams train_params(SynthModel& m) {
    TrainParams p;
    p.dit = state_dict(*m.dit);
    for (const auto& t : m.text_encoder->named_parameters()) p.text_encoder[t.key()] = t.value();
    SURGEON_CHECK(m.text_encoder->named_buffers().is_empty() && m.dit->named_buffers().is_empty(),
                  "train: modules with buffers are not supported by the trainer");
    for (auto* sd : {&p.dit, &p.text_encoder})
        for (auto& [n, t] : *sd) {
            (t.dim() >= 2 ? p.decay : p.no_decay).push_back(t);
            p.all.push_back(t);
        }
    return p;
}

std::unique_ptr<TrainOptimizer> make_train_optimizer(const TrainConfig& c, TrainParams& p, torch::Device device) {
    if (c.optimizer == "flat") return std::make_unique<FlatTrainOptimizer>(c, p);
    SURGEON_CHECK(c.optimizer == "torch", "train: unknown optimizer '{}'", c.optimizer);
    return std::make_unique<TorchTrainOptimizer>(c, p, device);
}

}  // namespace surgeon
