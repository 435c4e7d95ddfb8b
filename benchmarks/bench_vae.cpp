// bench_vae: decodes a latent of the real Wan2.1 VAE shape (default 16x21x60x104 -> 3x81x480x832) with the
// published VAE config and random weights, as the official chunked decode runs it, and prints the time and
// the peak CUDA memory. Usage: bench_vae [--device cuda] [--frames 21] [--height 60] [--width 104] [--repeat 1]
//   [--vae DIR] (real weights instead of random ones). fp32, as the official WanVAE runs.
#include <c10/cuda/CUDACachingAllocator.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "vae/vae_io.h"
#include "vae/wan_vae.h"

namespace {

double gib(int64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

void sync(const torch::Device& d) {
    if (d.is_cuda()) torch::cuda::synchronize(d.index() < 0 ? -1 : d.index());
}

}  // namespace

int main(int argc, char** argv) {
    std::string device_str = "cpu", vae_dir;
    int64_t frames = 21, height = 60, width = 104, repeat = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--device") device_str = next();
        else if (a == "--frames") frames = std::stoll(next());
        else if (a == "--height") height = std::stoll(next());
        else if (a == "--width") width = std::stoll(next());
        else if (a == "--repeat") repeat = std::stoll(next());
        else if (a == "--vae") vae_dir = next();
        else {
            std::fprintf(stderr, "error: unknown argument '%s' (see the header of bench_vae.cpp)\n", a.c_str());
            return 2;
        }
    }
    try {
        const torch::Device device(device_str);
        if (device.is_cuda() && !torch::cuda::is_available()) {
            std::fprintf(stderr, "error: %s requested but no CUDA GPU is available\n", device_str.c_str());
            return 1;
        }
        torch::manual_seed(0);
        surgeon::vae::WanVAE model{nullptr};
        if (vae_dir.empty()) {
            model = surgeon::vae::WanVAE(surgeon::vae::WanVAEConfig{});
            model->eval();
            model->to(device);
        } else {
            model = surgeon::vae::load_vae(vae_dir, device).model;
        }
        auto z = torch::randn({1, model->config().z_dim, frames, height, width}, torch::TensorOptions().device(device));
        const int cuda_index = device.is_cuda() ? (device.has_index() ? device.index() : 0) : -1;
        std::printf("bench_vae: decode [1,%lld,%lld,%lld,%lld] -> [1,3,%lld,%lld,%lld] on %s, fp32, %s weights\n",
                    (long long)model->config().z_dim, (long long)frames, (long long)height, (long long)width,
                    (long long)(1 + 4 * (frames - 1)), (long long)(8 * height), (long long)(8 * width),
                    device_str.c_str(), vae_dir.empty() ? "random" : "loaded");
        for (int64_t r = 0; r < repeat; ++r) {
            if (cuda_index >= 0) {
                c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(cuda_index));
            }
            sync(device);
            const auto t0 = std::chrono::steady_clock::now();
            auto video = model->decode(z).clamp(-1, 1);  // [1, 3, 81, 480, 832]
            sync(device);
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            double peak = 0.0;
            if (cuda_index >= 0) {
                const auto stats =
                    c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(cuda_index));
                peak = gib(stats.allocated_bytes[0].peak);  // StatType::AGGREGATE
            }
            std::printf("run %lld: %.3f s, %.2f s per latent frame, peak CUDA memory %.2f GiB, output mean %.4f\n",
                        (long long)r, secs, secs / static_cast<double>(frames), peak,
                        video.mean().item<double>());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
