// DiT forward benchmark at real Wan2.1 shapes with random weights: median time of full forwards and peak
// CUDA memory. Usage: bench_dit --preset wan2.1-t2v-1.3b --size 480p|720p --frames 81 --dtype bf16 --iters 5
// Prints one table row per size; see docs/BENCHMARKS.md for recorded numbers.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>

#include "model/wan_model.h"

#ifdef SURGEON_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

using namespace surgeon;

int main(int argc, char** argv) {
    CLI::App app{"Wan2.1 DiT forward benchmark (random weights)"};
    std::string preset = "wan2.1-t2v-1.3b", dtype = "bf16", device = "cuda", impl = "fast";
    std::vector<std::string> sizes{"480p", "720p"};
    int64_t frames = 81, warmup = 2, iters = 5, text_tokens = 512;
    bool profile = false;
    app.add_option("--preset", preset)->capture_default_str();
    app.add_option("--size", sizes, "480p and/or 720p")->capture_default_str();
    app.add_option("--frames", frames)->capture_default_str();
    app.add_option("--dtype", dtype)->capture_default_str();
    app.add_option("--device", device)->capture_default_str();
    app.add_option("--attention-impl", impl)->capture_default_str();
    app.add_option("--warmup", warmup)->capture_default_str();
    app.add_option("--iters", iters)->capture_default_str();
    app.add_flag("--profile", profile,
                 "also time the sections between observation points (synchronising at each: slower, for shares only)");
    CLI11_PARSE(app, argc, argv);
    if (device.rfind("cuda", 0) == 0 && !torch::cuda::is_available()) {
        std::printf("CUDA is not available on this machine: nothing to benchmark.\n");
        return 0;
    }
    torch::NoGradGuard ng;
    torch::manual_seed(0);
    const torch::Device dev(device);
    auto cfg = wan_preset(preset);
    auto t0 = std::chrono::steady_clock::now();
    WanModel model(cfg);
    model->to(dev);
    model->set_precision(parse_precision(dtype));
    model->set_attention_impl(parse_attention_impl(impl));
    model->eval();
    std::printf("model %s built and moved in %.1f s\n", preset.c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (dev.is_cuda()) {
        // Attention layout check at 480p: SDPA on [B,H,L,D] views of [B,L,H,D] vs on contiguous copies.
        const int64_t L = 32760;
        auto o = torch::TensorOptions().device(dev).dtype(torch::kBFloat16);
        auto q = torch::randn({1, L, 12, 128}, o), k = torch::randn({1, L, 12, 128}, o), v = torch::randn({1, L, 12, 128}, o);
        auto time = [&](const std::function<void()>& fn) {
            for (int i = 0; i < 3; ++i) fn();
            std::vector<double> ts;
            for (int i = 0; i < 10; ++i) {
                torch::cuda::synchronize();
                auto s = std::chrono::steady_clock::now();
                fn();
                torch::cuda::synchronize();
                ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
            }
            std::sort(ts.begin(), ts.end());
            return ts[ts.size() / 2];
        };
        const double views = time([&] {
            at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2));
        });
        const double contig = time([&] {
            at::scaled_dot_product_attention(q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(),
                                             v.transpose(1, 2).contiguous());
        });
        std::printf("attention 480p (1x12x32760x128 bf16): SDPA on views %.2f ms, on contiguous copies %.2f ms\n", views, contig);
    }
    std::printf("| preset | size | latent | tokens | dtype | median ms | min ms | peak GiB |\n|---|---|---|---|---|---|---|---|\n");
    for (const auto& size : sizes) {
        const int64_t H = size == "720p" ? 90 : 60, W = size == "720p" ? 160 : 104, T = (frames - 1) / 4 + 1;
        auto x = torch::randn({1, cfg.in_dim, T, H, W}, torch::TensorOptions().device(dev));
        auto t = torch::tensor({999.0}, torch::TensorOptions().device(dev));
        auto ctx = torch::randn({1, text_tokens, cfg.text_dim}, torch::TensorOptions().device(dev));
#ifdef SURGEON_HAVE_CUDA
        if (dev.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(dev.index() < 0 ? 0 : dev.index());
#endif
        std::vector<double> ms;
        for (int64_t i = 0; i < warmup + iters; ++i) {
            if (dev.is_cuda()) torch::cuda::synchronize();
            auto s = std::chrono::steady_clock::now();
            auto v = model->forward(x, t, ctx);
            if (dev.is_cuda()) torch::cuda::synchronize();
            const double e = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count();
            if (i >= warmup) ms.push_back(e);
        }
        std::sort(ms.begin(), ms.end());
        if (profile && dev.is_cuda()) {
            // Time from one observation point to the next, summed over blocks by section name
            // ("self_attn.q" = input LN + modulation + q projection + norm + RoPE, "self_attn.attn" = the core, ...).
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
            std::printf("profile %s (time up to each observation point, summed over blocks):\n", size.c_str());
            for (const auto& [k, v] : section_ms) std::printf("  %-22s %8.1f ms\n", k.c_str(), v);
        }
        double peak = 0;
#ifdef SURGEON_HAVE_CUDA
        if (dev.is_cuda()) {
            auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.index() < 0 ? 0 : dev.index());
            peak = st.allocated_bytes[0].peak / double(1ull << 30);
        }
#endif
        std::printf("| %s | %s | 16x%lldx%lldx%lld | %lld | %s | %.1f | %.1f | %.2f |\n", preset.c_str(), size.c_str(),
                    (long long)T, (long long)H, (long long)W, (long long)(T * H / 2 * W / 2), dtype.c_str(),
                    ms[ms.size() / 2], ms.front(), peak);
        std::fflush(stdout);
    }
    return 0;
}
