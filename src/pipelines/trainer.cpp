// Flow-matching training of a synthetic-world teacher (see trainer.h). The parts: train_config (the config),
// train_batch (data, prefetched on a thread), train_init (initial / warm-start weights), train_losses (flow
// matching, swap contrast), train_optimizer (FlatAdamW or torch AdamW + EMA), train_state (checkpoints, export).
#include "pipelines/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>

#include "core/error.h"
#include "core/run_lock.h"
#include "core/progress.h"
#include "pipelines/train_init.h"
#include "pipelines/train_losses.h"
#include "pipelines/train_optimizer.h"
#include "pipelines/train_state.h"

namespace surgeon {

namespace {

// Linear warm-up, then cosine decay to lr * min_lr_ratio at config.steps.
double lr_at(const TrainConfig& c, int64_t step) {
    if (step < c.warmup) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup + 1);
    const double p = c.steps > c.warmup ? static_cast<double>(step - c.warmup) / static_cast<double>(c.steps - c.warmup) : 1.0;
    return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * std::min(1.0, p))));
}

// EMA decay with warm-up: without it the initial weights keep a share ema^steps of the average (0.999^1500 = 22%),
// which under-scales the velocity of short runs.
double ema_decay_at(const TrainConfig& c, int64_t step) { return std::min(c.ema, (1.0 + step) / (10.0 + step)); }

// Loss and gradient norm summed on the device over a log window and read once per window: no per-step host sync,
// so the CPU can queue the next step's kernels while the GPU finishes this one.
struct LossWindow {
    torch::Tensor loss, grad_norm;
    int64_t n = 0;
    void add(const torch::Tensor& l, const torch::Tensor& gn) {
        torch::NoGradGuard ng;
        auto ld = l.detach().to(torch::kFloat64), gd = gn.detach().to(ld.device(), torch::kFloat64);
        loss = n == 0 ? ld : loss + ld;
        grad_norm = n == 0 ? gd : grad_norm + gd;
        ++n;
    }
    // Throws one line naming the steps when the loss or the gradient norm of the open window is not finite.
    void check_finite(int64_t step) const {
        if (n == 0) return;
        const double l = loss.item<double>(), g = grad_norm.item<double>();
        SURGEON_CHECK(std::isfinite(l), "train: loss became {} in steps {}..{} (lower the learning rate?)", l / n,
                      step + 2 - n, step + 1);
        SURGEON_CHECK(std::isfinite(g), "train: gradient norm became {} in steps {}..{} (lower the learning rate?)",
                      g / n, step + 2 - n, step + 1);
    }
    // The window's means as a history row; checks they are finite.
    std::array<double, 5> close(int64_t step, double lr, double elapsed) {
        check_finite(step);
        const double l = loss.item<double>() / n, g = grad_norm.item<double>() / n;
        n = 0;
        return {static_cast<double>(step + 1), l, lr, g, elapsed};
    }
};

}  // namespace

TrainResult train_synth_model(const TrainConfig& c, const std::string& out_dir, bool resume, bool progress,
                              int64_t stop_after, double time_limit_s) {
    std::filesystem::create_directories(out_dir);
    const RunLock lock(out_dir, "train");  // one writer per run folder
    torch::Device dev(c.device);
    SURGEON_CHECK(!dev.is_cuda() || torch::cuda::is_available(), "train: device '{}' requested but no CUDA GPU", c.device);
    check_world_seeds(c);  // again: --steps may have changed the range since from_json
    write_train_record(c, out_dir, resume);

    SynthModel m = initial_train_model(c);
    m.to(dev);
    // CUDA: the configured compute precision over fp32 master weights; CPU: always fp32.
    m.dit->set_precision(dev.is_cuda() ? parse_precision(c.dtype) : Precision::Float32, /*cast_weights=*/false);
    m.dit->train();
    m.dit->set_finite_checks(false);  // no host sync per step; a diverging run is caught by the loss check
    m.text_encoder->train();
    TrainParams params = train_params(m);
    auto opt = make_train_optimizer(c, params, dev);

    TrainHistory hist;
    double elapsed_before = 0;
    const int64_t start = resume ? load_train_checkpoint(out_dir, params, *opt, hist, elapsed_before) : 0;

    Progress bar("train", c.steps, progress, start);
    const auto t0 = std::chrono::steady_clock::now();
    const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    const auto elapsed = [&] { return elapsed_before + seconds(); };
    const torch::Tensor pos = m.condition(c.batch);  // position planes [B, 3, T, H, W] on dev, or undefined
    std::future<TrainBatch> next;
    if (start < c.steps) next = std::async(std::launch::async, make_train_batch, std::cref(c), start);
    LossWindow window;
    SwapGapLog gaps(c.swap_kinds);
    TrainResult res;
    for (int64_t step = start; step < c.steps; ++step) {
        TrainBatch b = next.get();
        if (step + 1 < c.steps) next = std::async(std::launch::async, make_train_batch, std::cref(c), step + 1);
        const double lr = lr_at(c, step);
        const FlowMatchingTerm fm = flow_matching_term(m, c, b, pos, dev);
        auto objective = fm.loss;
        if (c.swap_contrast > 0 && !b.swapped_index.empty()) {
            const SwapContrastTerm sc = swap_contrast_term(m, c, b, fm, pos, dev);
            objective = fm.loss + c.swap_contrast * sc.hinge;
            gaps.add(b.swapped_kinds, sc, dev);
        }
        const torch::Tensor gn = opt->step(objective, lr);
        opt->update_ema(ema_decay_at(c, step));
        window.add(fm.loss, gn);
        if ((step + 1) % c.log_every == 0 || step + 1 == c.steps) {
            hist.push_back(window.close(step, lr, elapsed()));
            res.final_loss = hist.back()[1];
            gaps.close_window();
        }
        bar.update(step + 1, hist.empty() ? std::string("loss -") : fmt::format("loss {:.4f}{}", hist.back()[1], gaps.text()));
        const bool timed_out = time_limit_s > 0 && seconds() >= time_limit_s;
        const bool stop = ((stop_after > 0 && step + 1 >= stop_after) || timed_out) && step + 1 < c.steps;
        if ((step + 1) % c.checkpoint_every == 0 || step + 1 == c.steps || stop) {
            window.check_finite(step);  // a diverged state never replaces the last good checkpoint
            save_train_checkpoint(out_dir, step + 1, elapsed(), params, *opt, hist);
            if (step + 1 < c.steps) export_train_model(out_dir, c, m.settings, *opt);  // usable while the run goes on
        }
        if (stop) {
            if (next.valid()) next.wait();
            bar.finish(fmt::format("stopped at step {}", step + 1));
            res.steps_done = step + 1;
            res.seconds = elapsed();
            return res;
        }
    }
    if (!hist.empty()) res.final_loss = hist.back()[1];
    export_train_model(out_dir, c, m.settings, *opt);
    res.steps_done = c.steps;
    res.seconds = elapsed();
    bar.finish(fmt::format("final loss {:.4f}", res.final_loss));
    return res;
}

}  // namespace surgeon
