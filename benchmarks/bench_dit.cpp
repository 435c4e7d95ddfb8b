// DiT forward benchmark at real Wan2.1 shapes with random weights: median CUDA-event time of full forwards after
// warm-up, the self-attention cores timed alone (attention vs non-attention split), peak CUDA memory, for each
// setting of the fused block path in the same run (default "none all": before / after). Markdown rows, and
// --json FILE rows with commit, GPU and parameters.
// Usage: bench_dit [--preset wan2.1-t2v-1.3b] [--size 480p 720p] [--frames 81] [--dtype bf16] [--iters 5]
//                  [--fused none all] [--plan FILE] [--json FILE] [--profile]
// --plan: an attention plan JSON (e.g. `surgeon plan uniform ... --out P.json` for 30 blocks); no weights needed
// (the feature maps are drawn from --seed). --fused: settings of SURGEON_DIT_FUSED (all | none | norm,qk,gelu).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>

#include "attention/attention_plan.h"
#include "model/wan_model.h"
#include "ops/dit_ops.h"
#include "surgery/attention_swap.h"

#ifdef SURGEON_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

using namespace surgeon;

namespace {

#ifndef SURGEON_GIT_COMMIT
#define SURGEON_GIT_COMMIT "unknown"
#endif
std::string commit() {
    const char* e = std::getenv("SURGEON_GIT_COMMIT");
    return e && *e ? e : SURGEON_GIT_COMMIT;
}
std::string gpu_name(const torch::Device& dev) {
#ifdef SURGEON_HAVE_CUDA
    if (dev.is_cuda()) return at::cuda::getCurrentDeviceProperties()->name;
#endif
    return dev.str();
}

// Median and minimum of `iters` timed calls after `warmup` untimed ones (CUDA events on CUDA).
std::pair<double, double> time_ms(const std::function<void()>& fn, int64_t warmup, int64_t iters, const torch::Device& dev) {
    for (int64_t i = 0; i < warmup; ++i) fn();
    if (dev.is_cuda()) torch::cuda::synchronize();
    std::vector<double> ms;
    for (int64_t i = 0; i < iters; ++i) {
#ifdef SURGEON_HAVE_CUDA
        if (dev.is_cuda()) {
            at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
            start.record();
            fn();
            stop.record();
            stop.synchronize();
            ms.push_back(start.elapsed_time(stop));
            continue;
        }
#endif
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return {ms[ms.size() / 2], ms.front()};
}

void reset_peak(const torch::Device& dev) {
#ifdef SURGEON_HAVE_CUDA
    if (dev.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(dev.index() < 0 ? 0 : dev.index());
#endif
}
double peak_gib(const torch::Device& dev) {
#ifdef SURGEON_HAVE_CUDA
    if (dev.is_cuda()) {
        auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.index() < 0 ? 0 : dev.index());
        return st.allocated_bytes[0].peak / double(1ull << 30);
    }
#endif
    return 0;
}

// Sum over blocks of each self-attention core's time alone on random q/k/v of the forward's shapes (cores with
// the same description are timed once). The rest of the forward is "non-attention".
double attention_ms(WanModel& model, const TokenGrid& grid, const torch::ScalarType dt, int64_t iters,
                    const torch::Device& dev) {
    const auto& cfg = model->config();
    const int64_t L = grid.tokens(), H = cfg.num_heads, D = cfg.head_dim();
    auto o = torch::TensorOptions().device(dev).dtype(dt);
    // The layouts the forward hands over: softmax gets head-major q/k views (the fused path), others contiguous.
    auto q = torch::randn({1, L, H, D}, o), k = torch::randn({1, L, H, D}, o), v = torch::randn({1, L, H, D}, o);
    auto qh = q.transpose(1, 2).contiguous().transpose(1, 2), kh = k.transpose(1, 2).contiguous().transpose(1, 2);
    std::map<std::string, double> by_kind;
    double total = 0;
    for (int64_t i = 0; i < cfg.num_layers; ++i) {
        auto core = model->block(i)->self_attn->core();
        const std::string kind = core->describe();
        const bool softmax = kind == "softmax";
        if (!by_kind.count(kind))
            by_kind[kind] = time_ms([&] { core->forward(softmax ? qh : q, softmax ? kh : k, v, grid); }, 2,
                                    std::max<int64_t>(iters, 3), dev).first;
        total += by_kind[kind];
    }
    return total;
}

void print_profile(WanModel& model, const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& ctx,
                   const std::string& label) {
    // Time from one observation point to the next, summed over blocks by section name (synchronising at each:
    // slower, for shares only).
    std::map<std::string, double> section_ms;
    auto t_last = std::chrono::steady_clock::now();
    ActivationTap tap = [&](const std::string& name, const torch::Tensor&) {
        torch::cuda::synchronize();
        auto now = std::chrono::steady_clock::now();
        std::string key = name;  // "blocks.N.self_attn.q" -> "self_attn.q"; "blocks.N" -> block end
        if (name.rfind("blocks.", 0) == 0) {
            const auto dot = name.find('.', 7);
            key = dot == std::string::npos ? "block end (ffn residual)" : name.substr(dot + 1);
        }
        section_ms[key] += std::chrono::duration<double, std::milli>(now - t_last).count();
        t_last = now;
    };
    torch::cuda::synchronize();
    t_last = std::chrono::steady_clock::now();
    model->forward(x, t, ctx, &tap);
    torch::cuda::synchronize();
    section_ms["head + unpatchify"] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_last).count();
    std::printf("profile %s (time up to each observation point, summed over blocks):\n", label.c_str());
    for (const auto& [k, v] : section_ms) std::printf("  %-22s %8.1f ms\n", k.c_str(), v);
}

struct Options {
    std::string preset = "wan2.1-t2v-1.3b", dtype = "bf16", device = "cuda", impl = "fast", plan, json;
    std::vector<std::string> sizes{"480p", "720p"}, fused{"none", "all"};
    int64_t frames = 81, warmup = 2, iters = 5, text_tokens = 512;
    uint64_t seed = 0;
    bool profile = false, split = true;
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Wan2.1 DiT forward benchmark (random weights)"};
    Options op;
    app.add_option("--preset", op.preset)->capture_default_str();
    app.add_option("--size", op.sizes, "480p and/or 720p")->capture_default_str();
    app.add_option("--frames", op.frames, "video frames (81: 21 latent frames)")->capture_default_str();
    app.add_option("--dtype", op.dtype)->capture_default_str();
    app.add_option("--device", op.device)->capture_default_str();
    app.add_option("--attention-impl", op.impl)->capture_default_str();
    app.add_option("--warmup", op.warmup)->capture_default_str();
    app.add_option("--iters", op.iters)->check(CLI::Range(int64_t{1}, int64_t{1000}))->capture_default_str();
    app.add_option("--fused", op.fused, "fused block settings to time in this run (all | none | norm,qk,gelu)")->capture_default_str();
    app.add_option("--plan", op.plan, "attention plan JSON applied to the random model (no weights needed)");
    app.add_option("--seed", op.seed, "seed of the plan's feature maps")->capture_default_str();
    app.add_option("--json", op.json, "also write one JSON row per size and fused setting");
    app.add_flag("--split,!--no-split", op.split, "time the attention cores alone (default on)");
    app.add_flag("--profile", op.profile, "also time the sections between observation points (synchronising at each)");
    CLI11_PARSE(app, argc, argv);
    try {
        for (const auto& f : op.fused) ops::parse_dit_fusion(f);  // refuse a bad setting before any work
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    if (op.device.rfind("cuda", 0) == 0 && !torch::cuda::is_available()) {
        std::printf("CUDA is not available on this machine: nothing to benchmark.\n");
        return 0;
    }
    torch::NoGradGuard ng;
    torch::manual_seed(0);
    const torch::Device dev(op.device);
    auto cfg = wan_preset(op.preset);
    auto t0 = std::chrono::steady_clock::now();
    WanModel model(cfg);
    model->to(dev);
    model->set_precision(parse_precision(op.dtype));
    model->set_attention_impl(parse_attention_impl(op.impl));
    model->eval();
    std::string plan_name = "teacher";
    if (!op.plan.empty()) {
        apply_plan(model, AttentionPlan::load(op.plan), op.seed);
        plan_name = op.plan;
    }
    std::printf("model %s (%s) built and moved in %.1f s; %s, commit %s\n", op.preset.c_str(), plan_name.c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), gpu_name(dev).c_str(),
                commit().c_str());
    const auto compute = parse_precision(op.dtype) == Precision::Float32 ? torch::kFloat32 : torch::kBFloat16;
    std::vector<std::string> md, json;
    for (const auto& size : op.sizes) {
        const int64_t H = size == "720p" ? 90 : 60, W = size == "720p" ? 160 : 104, T = (op.frames - 1) / 4 + 1;
        auto x = torch::randn({1, cfg.in_dim, T, H, W}, torch::TensorOptions().device(dev));
        auto t = torch::tensor({999.0}, torch::TensorOptions().device(dev));
        auto ctx = torch::randn({1, op.text_tokens, cfg.text_dim}, torch::TensorOptions().device(dev));
        const TokenGrid grid = model->grid_for(x);
        model->set_finite_checks(false);  // no host sync inside the timed forward
        const double attn = op.split ? attention_ms(model, grid, compute, op.iters, dev) : 0.0;
        double first = 0;
        for (const auto& fused : op.fused) {
            ops::set_dit_fusion(ops::parse_dit_fusion(fused));
            reset_peak(dev);
            auto [med, mn] = time_ms([&] { model->forward(x, t, ctx); }, op.warmup, op.iters, dev);
            const double peak = peak_gib(dev);
            if (first == 0) first = med;
            char row[2048];
            std::snprintf(row, sizeof row, "| %s | %s | %lld | %s | %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.3f |",
                          op.preset.c_str(), size.c_str(), (long long)grid.tokens(), plan_name.c_str(), fused.c_str(), med,
                          mn, attn, med - attn, peak, first / med);
            md.push_back(row);
            std::printf("%s\n", row);
            std::fflush(stdout);
            std::snprintf(row, sizeof row,
                          "{\"bench\": \"dit\", \"commit\": \"%s\", \"gpu\": \"%s\", \"preset\": \"%s\", \"size\": \"%s\", "
                          "\"latent\": [16, %lld, %lld, %lld], \"tokens\": %lld, \"dtype\": \"%s\", \"plan\": \"%s\", "
                          "\"fused\": \"%s\", \"median_ms\": %.3f, \"min_ms\": %.3f, \"attention_ms\": %.3f, "
                          "\"non_attention_ms\": %.3f, \"peak_gib\": %.3f, \"iters\": %lld, \"warmup\": %lld}",
                          commit().c_str(), gpu_name(dev).c_str(), op.preset.c_str(), size.c_str(), (long long)T,
                          (long long)H, (long long)W, (long long)grid.tokens(), op.dtype.c_str(), plan_name.c_str(),
                          fused.c_str(), med, mn, attn, med - attn, peak, (long long)op.iters, (long long)op.warmup);
            json.push_back(row);
            if (op.profile && dev.is_cuda()) print_profile(model, x, t, ctx, size + ", fused " + fused);
        }
    }
    std::printf("\n| preset | size | tokens | plan | fused | median ms | min ms | attention ms | non-attention ms | "
                "peak GiB | speed-up vs first |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& r : md) std::printf("%s\n", r.c_str());
    if (!op.json.empty()) {
        FILE* fp = std::fopen(op.json.c_str(), "w");
        if (!fp) {
            std::fprintf(stderr, "error: cannot write %s\n", op.json.c_str());
            return 1;
        }
        std::fprintf(fp, "[\n");
        for (size_t i = 0; i < json.size(); ++i) std::fprintf(fp, "  %s%s\n", json[i].c_str(), i + 1 < json.size() ? "," : "");
        std::fprintf(fp, "]\n");
        std::fclose(fp);
    }
    return 0;
}
