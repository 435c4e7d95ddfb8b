// The surgery's cost at scale, with random weights: time and peak memory of
//  * recording one sampler step (teacher forward of the CFG pair, the stage-1 tap keeping q/k/v/out of every
//    block) and its cache size (bytes per sampler step, per trajectory);
//  * one stage-1 update of every block x every candidate option (StageOneTrainer::update on that recording,
//    with the distill runner's query subsets);
//  * one stage-3 fine-tuning step (flow matching, batch 1, the compute precision of --dtype over fp32 master
//    weights, FlatAdamW) with trainable all and attention, on a student running a plan (default: the paper's
//    15 x R2);
// then a GPU-hour projection of the paper's recipe (method.md §5: stage 1 on teacher trajectories, stage 3 a few
// hundred to 1,000 steps) against its "< 400 GPU-hours". A step that does not fit is reported as out of memory;
// then stage 1 is timed one block at a time (blocks are independent) and stage 3's per-block memory and time are
// measured on 1- and 2-block models, projecting the whole model with per-block gradient checkpointing.
// Usage: bench_surgery_steps [--size tiny|1.3b] [--device cuda] [--iters 3] [--queries 0] [--rows 0]
//        [--trajectories 64] [--sample-steps 50] [--round 8] [--updates 40] [--s3-steps 1000] [--s3-batch 8]
#include <ATen/CPUGeneratorImpl.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#ifdef SURGEON_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#include "model/wan_config.h"
#include "model/wan_model.h"
#include "pipelines/flat_adamw.h"
#include "surgery/attention_swap.h"
#include "surgery/stage1_trainer.h"

using namespace surgeon;

namespace {

struct Size {
    WanConfig cfg;
    int64_t frames, height, width;  // video pixels; latents are 4x8x8 smaller
};

Size size_of(const std::string& name) {
    Size s;
    if (name == "1.3b") {
        s.cfg = wan_preset("wan2.1-t2v-1.3b");
        s.frames = 81, s.height = 480, s.width = 832;
        return s;
    }
    s.cfg.dim = 64, s.cfg.ffn_dim = 128, s.cfg.num_heads = 2, s.cfg.num_layers = 2, s.cfg.text_dim = 32;
    s.cfg.text_len = 16, s.cfg.freq_dim = 32;
    s.frames = 5, s.height = 64, s.width = 64;
    return s;
}

void sync(const torch::Device& dev) {
    if (dev.is_cuda()) torch::cuda::synchronize();
}
void reset_peak(const torch::Device& dev) {
#ifdef SURGEON_HAVE_CUDA
    if (dev.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(dev.index() < 0 ? 0 : dev.index());
#endif
    (void)dev;
}
double peak_gib(const torch::Device& dev) {
#ifdef SURGEON_HAVE_CUDA
    if (dev.is_cuda()) {
        auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.index() < 0 ? 0 : dev.index());
        return st.allocated_bytes[0].peak / double(1ull << 30);
    }
#endif
    (void)dev;
    return 0;
}
void free_cache(const torch::Device& dev) {
#ifdef SURGEON_HAVE_CUDA
    if (dev.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
    (void)dev;
}

struct Timing {
    double seconds = 0, peak_gib = 0;
    bool oom = false;
    std::string projected;  // non-empty: `seconds` projected from smaller runs (how)
};

// Median seconds of `iters` runs after one warm-up, and the peak memory over them; out of memory is a result.
Timing time_it(const std::function<void()>& fn, int64_t iters, const torch::Device& dev) {
    Timing t;
    try {
        reset_peak(dev);
        fn();
        sync(dev);
        std::vector<double> s;
        for (int64_t i = 0; i < iters; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            fn();
            sync(dev);
            s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(s.begin(), s.end());
        t.seconds = s[s.size() / 2];
        t.peak_gib = peak_gib(dev);
    } catch (const c10::OutOfMemoryError&) {
        t.oom = true;
        t.peak_gib = peak_gib(dev);
    }
    free_cache(dev);
    return t;
}

std::string show(const Timing& t) {
    if (t.oom) return fmt::format("out of memory (peak {:.1f} GiB before failing)", t.peak_gib);
    if (!t.projected.empty()) return fmt::format("{:.3f} s projected ({})", t.seconds, t.projected);
    return fmt::format("{:.3f} s, peak {:.2f} GiB", t.seconds, t.peak_gib);
}

std::string bytes_str(double b) {
    return b >= double(1ull << 30) ? fmt::format("{:.2f} GiB", b / double(1ull << 30))
                                   : fmt::format("{:.2f} MiB", b / double(1ull << 20));
}

struct Inputs {
    torch::Tensor x, t, ctx;  // latents [B, 16, F', h, w], timesteps [B], context [B, Lt, text_dim]
};
Inputs inputs(const Size& s, int64_t batch, const torch::Device& dev) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
    Inputs in;
    in.x = at::randn({batch, s.cfg.in_dim, (s.frames - 1) / 4 + 1, s.height / 8, s.width / 8}, gen).to(dev);
    in.t = torch::full({batch}, 500.0).to(dev);
    in.ctx = (at::randn({batch, std::min<int64_t>(s.cfg.text_len, 64), s.cfg.text_dim}, gen) * 0.1).to(dev);
    return in;
}

std::vector<PlanEntry> candidate_options() {
    std::vector<PlanEntry> o;
    for (int64_t r : {2, 4, 8}) {
        PlanEntry e;
        e.kind = AttentionKind::Hybrid;
        e.rate = r;
        o.push_back(e);
    }
    PlanEntry lin;
    lin.kind = AttentionKind::Linear;
    o.push_back(lin);
    return o;
}

// One stage-3 step on `model` (already under the plan, fp32 master weights on the device): flow matching at
// sigma 0.5, backward, clipping, AdamW over the trainable set.
Timing finetune_step(WanModel& model, const Size& s, const std::string& trainable, Precision precision,
                     int64_t iters, const torch::Device& dev) {
    model->set_precision(precision, /*cast_weights=*/false);
    model->set_finite_checks(false);
    model->train();
    const AttentionPlan plan = plan_of(model);
    std::vector<torch::Tensor> decay, no_decay;
    for (const auto& p : model->named_parameters()) {
        bool take = trainable == "all";
        for (size_t b = 0; b < plan.blocks.size() && !take; ++b)
            take = plan.blocks[b].kind != AttentionKind::Softmax && p.key().rfind(fmt::format("blocks.{}.self_attn.", b), 0) == 0;
        p.value().set_requires_grad(take);
        if (take) (p.value().dim() >= 2 ? decay : no_decay).push_back(p.value());
    }
    std::unique_ptr<FlatAdamW> opt;
    {
        torch::NoGradGuard ng;
        opt = std::make_unique<FlatAdamW>(decay, no_decay, FlatAdamWOptions{0.9, 0.999, 1e-8, 0.0});
    }
    const Inputs in = inputs(s, 1, dev);
    auto eps = torch::randn_like(in.x);
    const auto t = time_it([&] {
        auto xs = 0.5 * in.x + 0.5 * eps;
        auto v = model->forward(xs, in.t, in.ctx);
        auto loss = torch::mse_loss(v, eps - in.x);
        opt->zero_grad();
        loss.backward();
        opt->clip_grad_norm(1.0);
        opt->step(1e-5);
    }, iters, dev);
    return t;
}

WanModel student_model(const WanConfig& cfg, int64_t converted, const torch::Device& dev) {
    WanModel m(cfg);
    PlanEntry e;
    e.kind = AttentionKind::Hybrid;
    e.rate = 2;
    std::vector<int64_t> blocks;
    const int64_t n = std::max<int64_t>(1, std::min(converted, cfg.num_layers));
    for (int64_t b = 0; b < n; ++b) blocks.push_back(b * cfg.num_layers / n);  // spread over the depth
    apply_plan(m, uniform_plan(cfg.num_layers, cfg.head_dim(), e, blocks), 3);
    m->to(dev);
    return m;
}


struct Recorded {
    Timing time;
    double bytes = 0;                           // one sampler step's recording (every block's q, k, v, y)
    std::map<int64_t, AttentionSample> sample;  // per block, as the distill runner trains on it
};

// 1. One sampler step recorded: the CFG pair in one forward, as sample_video runs it, with the stage-1 tap.
Recorded record_step(const Size& s, Precision precision, int64_t iters, const torch::Device& dev) {
    torch::NoGradGuard ng;
    Recorded r;
    const TokenGrid grid = token_grid_for_video(s.cfg, s.frames, s.height, s.width);
    WanModel teacher(s.cfg);
    teacher->to(dev);
    teacher->set_precision(precision);
    teacher->eval();
    const Inputs in = inputs(s, 2, dev);
    r.time = time_it([&] {
        r.sample.clear();
        AttentionRecorder rec(grid, {}, torch::kBFloat16, dev);
        teacher->forward(in.x, in.t, in.ctx, &rec.tap());
        r.bytes = 0;
        for (const auto& [b, v] : rec.samples()) {
            const auto& a = v.front();
            r.bytes += a.q.nbytes() + a.k.nbytes() + a.v.nbytes() + a.y.nbytes();
            // The runner trains in bf16 on CUDA and in fp32 on the CPU.
            r.sample[b] = dev.is_cuda() ? a
                                        : AttentionSample{a.q.to(torch::kFloat32), a.k.to(torch::kFloat32),
                                                          a.v.to(torch::kFloat32), a.y.to(torch::kFloat32), a.grid};
        }
    }, std::max<int64_t>(1, iters), dev);
    return r;
}

// One update of the given blocks x every option (out of memory is a result).
Timing stage1_trial(const Size& s, std::vector<int64_t> blocks, const std::map<int64_t, AttentionSample>& sample,
                    const StageOneOptions& o, int64_t iters, const torch::Device& dev) {
    Timing t;
    try {
        StageOneTrainer trainer(std::move(blocks), candidate_options(), s.cfg.num_heads, s.cfg.head_dim(), o, dev);
        trainer.calibrate(sample);
        auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
        t = time_it([&] { trainer.update(sample, gen); }, iters, dev);
    } catch (const c10::OutOfMemoryError&) {
        t.oom = true;
    }
    free_cache(dev);
    return t;
}

// 2. One stage-1 update of every block x option on that recording; when that does not fit, block 0 alone times
// the blocks (they are independent: an update of all is the sum of per-block updates).
Timing stage1_update(const Size& s, const std::map<int64_t, AttentionSample>& sample, int64_t queries, int64_t rows,
                     int64_t iters, const torch::Device& dev) {
    std::vector<int64_t> blocks;
    for (int64_t b = 0; b < s.cfg.num_layers; ++b) blocks.push_back(b);
    StageOneOptions o;
    o.queries = queries;
    o.rows = rows;
    o.lr = 2e-3;
    Timing t = stage1_trial(s, blocks, sample, o, iters, dev);
    if (!t.oom) return t;
    std::printf("stage-1 update of all blocks at once: %s\n", show(t).c_str());
    Timing one = stage1_trial(s, {0}, {{0, sample.at(0)}}, o, iters, dev);
    std::printf("stage-1 update of block 0 alone: %s\n", show(one).c_str());
    if (one.oom) return t;
    one.seconds *= static_cast<double>(s.cfg.num_layers);
    one.projected = fmt::format("{} blocks updated one at a time, peak {:.2f} GiB", s.cfg.num_layers, one.peak_gib);
    return one;
}

// 3. Stage-3 steps (trainable all and attention); when `all` does not fit, the checkpointing projection.
std::map<std::string, Timing> stage3_steps(const Size& s, int64_t converted, Precision precision, int64_t iters,
                                           const torch::Device& dev) {
    const auto& cfg = s.cfg;
    std::map<std::string, Timing> s3;
    for (const std::string trainable : {"all", "attention"}) {
        WanModel m = student_model(cfg, converted, dev);
        s3[trainable] = finetune_step(m, s, trainable, precision, iters, dev);
        std::printf("stage-3 step (flow matching, batch 1, %lld blocks at R2), trainable %s: %s\n",
                    (long long)std::min(converted, cfg.num_layers), trainable.c_str(), show(s3[trainable]).c_str());
    }
    if (!s3["all"].oom) return s3;
    // Per-block memory from 1- and 2-block models (weights, gradients, moments and activations of one block).
    std::vector<Timing> few;
    for (int64_t layers : {1, 2}) {
        WanConfig c1 = cfg;
        c1.num_layers = layers;
        WanModel m = student_model(c1, 1, dev);
        few.push_back(finetune_step(m, s, "all", precision, 1, dev));
    }
    if (few[0].oom || few[1].oom) return s3;
    const double per_block = few[1].peak_gib - few[0].peak_gib, base = few[0].peak_gib - per_block;
    const double tokens = double(token_grid_for_video(cfg, s.frames, s.height, s.width).tokens());
    const double params_gib = double(cfg.num_parameters()) * 16 / double(1ull << 30);  // fp32 w, grad, m, v
    const double stream_gib = 4.0 * tokens * cfg.dim / double(1ull << 30);            // one fp32 block input
    std::printf("stage 3 without checkpointing: %.2f GiB per block -> %.1f GiB for %lld blocks; with per-block "
                "gradient checkpointing about %.1f GiB (weights+gradients+moments %.1f GiB, %lld block inputs of "
                "%.2f GiB, one block's activations)\n",
                per_block, base + per_block * cfg.num_layers, (long long)cfg.num_layers,
                params_gib + stream_gib * cfg.num_layers + per_block, params_gib, (long long)cfg.num_layers, stream_gib);
    // Step time with checkpointing: the 1-block step plus (L - 1) block increments, x 4/3 for the recomputed forward.
    Timing& all = s3["all"];
    all.seconds = (few[0].seconds + (cfg.num_layers - 1) * (few[1].seconds - few[0].seconds)) * 4.0 / 3.0;
    all.oom = false;
    all.projected = "1- and 2-block steps, x 4/3 for per-block gradient checkpointing (not built)";
    std::printf("stage-3 step, trainable all: %s\n", show(all).c_str());
    return s3;
}

struct Recipe {
    int64_t trajectories, sample_steps, round, updates, s3_steps, s3_batch;
};

// 4. GPU-hours of the paper's recipe from the measured steps.
void projection(const Recipe& r, const Recorded& rec, const Timing& s1, const Timing& s3) {
    const double rounds = std::ceil(double(r.trajectories) / double(r.round));
    const double s1_record_h = r.trajectories * r.sample_steps * rec.time.seconds / 3600;
    const double s1_train_h = rounds * r.updates * s1.seconds / 3600;
    const double s3_h = r.s3_steps * r.s3_batch * s3.seconds / 3600;
    std::printf("\nGPU-hour projection (one device of this kind):\n");
    std::printf("  stage 1: %lld trajectories x %lld steps recorded: %.2f h; %.0f rounds x %lld updates: %.2f h%s\n",
                (long long)r.trajectories, (long long)r.sample_steps, s1_record_h, rounds, (long long)r.updates,
                s1_train_h,
                s1.oom ? " (the update did not fit: not counted)" : s1.projected.empty() ? "" : " (projected)");
    std::printf("  stage 3: %lld steps x %lld clips (batch-1 steps), trainable all: %.2f h%s\n", (long long)r.s3_steps,
                (long long)r.s3_batch, s3_h,
                s3.oom ? " (the step did not fit: not counted)" : s3.projected.empty() ? "" : " (projected)");
    std::printf("  total: %.2f GPU-hours (paper: < 400 GPU-hours for the whole surgery)\n",
                s1_record_h + s1_train_h + s3_h);
    std::printf("  stage-1 recording cache: %s per trajectory (%lld steps), %s per round of %lld trajectories\n",
                bytes_str(rec.bytes * r.sample_steps).c_str(), (long long)r.sample_steps,
                bytes_str(rec.bytes * r.sample_steps * r.round).c_str(), (long long)r.round);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"surgeon surgery steps at scale"};
    std::string size_name = "1.3b", device = "cuda", dtype = "bf16";
    int64_t iters = 3, queries = 0, rows = 0, converted = 15;
    Recipe recipe{64, 50, 8, 40, 1000, 8};
    app.add_option("--size", size_name, "tiny (CPU test) or 1.3b (Wan2.1-1.3B at 81x480x832)")
        ->check(CLI::IsMember({"tiny", "1.3b"}))->capture_default_str();
    app.add_option("--device", device)->capture_default_str();
    app.add_option("--dtype", dtype, "compute precision on CUDA: bf16 | fp32 (CPU: fp32)")
        ->check(CLI::IsMember({"bf16", "fp32"}))->capture_default_str();
    app.add_option("--iters", iters)->capture_default_str();
    app.add_option("--queries", queries, "stage-1 queries per update (0: all, the full preset)")->capture_default_str();
    app.add_option("--rows", rows, "stage-1 CFG rows per update (0: both, the full preset)")->capture_default_str();
    app.add_option("--converted", converted, "stage 3: blocks at R=2 in the student (paper: 15)")->capture_default_str();
    app.add_option("--trajectories", recipe.trajectories, "projection: stage-1 trajectories (the full preset's prompts)")
        ->capture_default_str();
    app.add_option("--sample-steps", recipe.sample_steps, "projection: sampler steps per trajectory")
        ->capture_default_str();
    app.add_option("--round", recipe.round, "projection: trajectories per stage-1 round")->capture_default_str();
    app.add_option("--updates", recipe.updates, "projection: stage-1 updates per round")->capture_default_str();
    app.add_option("--s3-steps", recipe.s3_steps, "projection: stage-3 steps (paper: a few hundred to 1,000)")
        ->capture_default_str();
    app.add_option("--s3-batch", recipe.s3_batch, "projection: stage-3 clips per step")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    try {
        const torch::Device dev(device);
        if (dev.is_cuda() && !torch::cuda::is_available()) {
            std::printf("CUDA is not available on this machine: nothing to benchmark.\n");
            return 0;
        }
        const Size s = size_of(size_name);
        const auto& cfg = s.cfg;
        const Precision precision = dev.is_cuda() && dtype == "bf16" ? Precision::BFloat16 : Precision::Float32;
        const TokenGrid grid = token_grid_for_video(cfg, s.frames, s.height, s.width);
        std::printf("model: %lld blocks, dim %lld, %lld heads x %lld, ffn %lld; video %lldx%lldx%lld -> %lldx%lldx%lld "
                    "= %lld tokens; device %s, %s (peak memory: CUDA only)\n",
                    (long long)cfg.num_layers, (long long)cfg.dim, (long long)cfg.num_heads, (long long)cfg.head_dim(),
                    (long long)cfg.ffn_dim, (long long)s.frames, (long long)s.height, (long long)s.width,
                    (long long)grid.frames, (long long)grid.height, (long long)grid.width, (long long)grid.tokens(),
                    dev.str().c_str(), precision == Precision::BFloat16 ? "bf16" : "fp32");
        Recorded rec = record_step(s, precision, iters, dev);
        std::printf("record one sampler step (teacher forward, 2 CFG rows, tap): %s; cache %s per step\n",
                    show(rec.time).c_str(), bytes_str(rec.bytes).c_str());
        const Timing s1 = stage1_update(s, rec.sample, queries, rows, iters, dev);
        rec.sample.clear();
        free_cache(dev);
        std::printf("stage-1 update, %lld blocks x %zu options (R2, R4, R8, linear), queries %s, rows %s: %s\n",
                    (long long)cfg.num_layers, candidate_options().size(),
                    queries > 0 ? std::to_string(queries).c_str() : "all", rows > 0 ? std::to_string(rows).c_str() : "all",
                    show(s1).c_str());
        const auto s3 = stage3_steps(s, converted, precision, iters, dev);
        projection(recipe, rec, s1, s3.at("all"));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
