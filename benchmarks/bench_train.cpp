// Training-step benchmark for the bundled teacher's config: where the time of one `surgeon train` step goes.
// Times (median over --iters, CUDA-synchronised at each boundary): batch making on the CPU, host->device copy,
// text encoder + DiT forward, backward, gradient clipping, AdamW step, EMA update; then the whole step
// unsynchronised. With --profile, a Kineto trace of a few steps aggregated by CUDA kernel name (top 25).
// Usage: bench_train [--config configs/synth-teacher-curriculum.json --stage 1] [--batch 32] [--iters 10] [--profile]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <torch/csrc/autograd/profiler_kineto.h>

#include "core/fs.h"
#ifdef SURGEON_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#include "pipelines/flat_adamw.h"
#include "pipelines/trainer.h"

using namespace surgeon;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
    CLI::App app{"surgeon train step benchmark"};
    std::string config = "configs/synth-teacher-curriculum.json", stage = "1", impl = "fast", dtype, optimizer = "flat";
    int64_t batch = 0, iters = 10, warmup = 3;
    bool profile = false;
    app.add_option("--config", config)->capture_default_str();
    app.add_option("--stage", stage, "the curriculum's stage (empty for a plain config)")->capture_default_str();
    app.add_option("--batch", batch, "override the config's batch");
    app.add_option("--dtype", dtype, "override the config's compute dtype (bf16, bf16-lean, fp32)");
    app.add_option("--attention-impl", impl)->capture_default_str();
    app.add_option("--optimizer", optimizer, "flat (FlatAdamW, as train) or torch (torch::optim::AdamW)")
        ->capture_default_str()
        ->check(CLI::IsMember({"flat", "torch"}));
    app.add_option("--iters", iters)->capture_default_str();
    app.add_option("--warmup", warmup)->capture_default_str();
    app.add_flag("--profile", profile, "aggregate a Kineto trace of 3 steps by kernel");
    CLI11_PARSE(app, argc, argv);
    try {
        auto c = load_train_config(config, stage);
        if (batch > 0) c.batch = batch;
        if (!dtype.empty()) c.dtype = dtype;
        if (c.device.rfind("cuda", 0) == 0 && !torch::cuda::is_available()) {
            std::printf("CUDA is not available on this machine: nothing to benchmark.\n");
            return 0;
        }
        const torch::Device dev(c.device);
        auto sync = [&] { if (dev.is_cuda()) torch::cuda::synchronize(); };
        SynthModel m = init_synth_model(c);
        m.to(dev);
        m.dit->set_precision(dev.is_cuda() ? parse_precision(c.dtype) : Precision::Float32, false);
        m.dit->set_attention_impl(parse_attention_impl(impl));
        m.dit->train();
        m.dit->set_finite_checks(false);  // as train does
        m.text_encoder->train();
        std::vector<torch::Tensor> params, decay, no_decay;
        for (auto& p : m.dit->parameters()) params.push_back(p);
        for (auto& p : m.text_encoder->parameters()) params.push_back(p);
        for (auto& p : params) (p.dim() >= 2 ? decay : no_decay).push_back(p);
        const bool flat = optimizer == "flat";
        std::unique_ptr<torch::optim::AdamW> opt;
        std::unique_ptr<FlatAdamW> fopt;
        std::vector<torch::Tensor> ema;
        torch::Tensor ema_flat;
        if (flat) {
            fopt = std::make_unique<FlatAdamW>(decay, no_decay, FlatAdamWOptions{c.beta1, c.beta2, 1e-8, c.weight_decay});
            ema_flat = fopt->flat_data().clone();
        } else {
            opt = std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}));
            for (auto& p : params) ema.push_back(p.detach().clone());
        }
        int64_t n_params = 0;
        for (auto& p : params) n_params += p.numel();
        std::printf("config %s: batch %lld, %lld tokens/sample, %.2fM parameters, %s, attention %s, optimizer %s\n", config.c_str(),
                    static_cast<long long>(c.batch),
                    static_cast<long long>(token_grid(c.model, c.world.frames, c.world.height, c.world.width).tokens()),
                    n_params / 1e6, c.dtype.c_str(), impl.c_str(), optimizer.c_str());

        std::map<std::string, std::vector<double>> t;
        auto batch0 = make_train_batch(c, 0);
        const auto pos = m.condition(c.batch);  // made once, as train does
        auto step = [&](const TrainBatch& b, bool timed) {
            auto mark = Clock::now();
            auto lap = [&](const char* name) {
                if (!timed) return;
                sync();
                auto now = Clock::now();
                t[name].push_back(std::chrono::duration<double, std::milli>(now - mark).count());
                mark = now;
            };
            auto x0 = b.videos.to(dev), eps = b.eps.to(dev);
            auto sigma = b.sigma.to(dev).view({-1, 1, 1, 1, 1});
            auto ids = m.tokenizer.encode_batch(b.prompts, c.text_encoder.text_len).to(dev);
            lap("1 host->device");
            auto xs = (1 - sigma) * x0 + sigma * eps;
            auto ctx = m.text_encoder->forward(ids);
            auto v = m.velocity(xs, sigma.view({-1}) * 1000.0, ctx, pos);
            auto loss = torch::mse_loss(v, eps - x0);
            lap("2 forward");
            if (flat)
                fopt->zero_grad();
            else
                opt->zero_grad();
            loss.backward();
            lap("3 backward");
            if (flat)
                (void)fopt->clip_grad_norm(c.grad_clip);
            else
                torch::nn::utils::clip_grad_norm_(params, c.grad_clip);
            lap("4 clip");
            if (flat)
                fopt->step(c.lr);
            else
                opt->step();
            lap("5 adamw");
            {
                torch::NoGradGuard ng;
                if (flat)
                    ema_flat.mul_(0.999).add_(fopt->flat_data(), 0.001);
                else
                    for (size_t i = 0; i < params.size(); ++i) ema[i].mul_(0.999).add_(params[i].detach(), 0.001);
            }
            lap("6 ema");
            (void)loss.item<double>();
        };
        for (int64_t i = 0; i < warmup; ++i) step(batch0, false);
        for (int64_t i = 0; i < iters; ++i) {
            auto s = Clock::now();
            auto b = make_train_batch(c, i + 1);
            t["0 make batch (CPU, prefetched in train)"].push_back(
                std::chrono::duration<double, std::milli>(Clock::now() - s).count());
            step(b, true);
        }
        for (int64_t i = 0; i < iters; ++i) {
            sync();
            auto s = Clock::now();
            step(batch0, false);
            sync();
            t["7 whole step, unsynchronised"].push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
        }
        auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v[v.size() / 2];
        };
        for (auto& [name, v] : t) std::printf("  %-42s %9.2f ms\n", name.c_str(), median(v));
        std::printf("  => %.2f steps/s (compute only), %.0f samples/s\n", 1000.0 / median(t["7 whole step, unsynchronised"]),
                    c.batch * 1000.0 / median(t["7 whole step, unsynchronised"]));
#ifdef SURGEON_HAVE_CUDA
        if (dev.is_cuda()) {
            auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.index() < 0 ? 0 : dev.index());
            std::printf("  peak CUDA memory %.2f GiB\n", st.allocated_bytes[0].peak / double(1ull << 30));
        }
#endif
        if (profile) {
            namespace prof = torch::autograd::profiler;
            prof::ProfilerConfig pc(torch::profiler::impl::ProfilerState::KINETO, false, false, false);
            std::set<torch::profiler::impl::ActivityType> acts{torch::profiler::impl::ActivityType::CPU,
                                                                torch::profiler::impl::ActivityType::CUDA};
            prof::prepareProfiler(pc, acts);
            prof::enableProfiler(pc, acts);
            for (int i = 0; i < 3; ++i) step(batch0, false);
            sync();
            auto res = prof::disableProfiler();
            std::map<std::string, std::pair<double, int64_t>> kern;
            double total = 0;
            for (const auto& e : res->events()) {
                if (e.deviceType() != c10::DeviceType::CUDA) continue;
                auto& k = kern[e.name().substr(0, 90)];
                k.first += e.durationNs() / 1e6 / 3.0;
                k.second += 1;
                total += e.durationNs() / 1e6 / 3.0;
            }
            std::vector<std::pair<double, std::string>> order;
            for (auto& [n, v] : kern) order.push_back({v.first, n});
            std::sort(order.rbegin(), order.rend());
            std::printf("CUDA kernels per step (Kineto, mean of 3 steps): %.2f ms busy\n", total);
            for (size_t i = 0; i < std::min<size_t>(25, order.size()); ++i)
                std::printf("  %8.2f ms %5.1f%% x%-5lld %s\n", order[i].first, 100 * order[i].first / total,
                            static_cast<long long>(kern[order[i].second].second / 3), order[i].second.c_str());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
