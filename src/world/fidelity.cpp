// PSNR and SSIM between two videos on the CPU (PSNR in float64; SSIM's local statistics in float32, far below
// SSIM's useful resolution), so results do not depend on the device.
#include "world/fidelity.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace surgeon::world {
namespace {

std::pair<torch::Tensor, torch::Tensor> to_unit(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
    SURGEON_CHECK(a.dim() == 4 && a.size(0) == 3, "{}: expected videos [3, T, H, W], got {}", what,
                  c10::str(a.sizes()));
    SURGEON_CHECK(a.sizes() == b.sizes(), "{}: videos differ in shape: {} vs {}", what, c10::str(a.sizes()),
                  c10::str(b.sizes()));
    auto f = [](const torch::Tensor& v) { return ((v.detach().to(torch::kCPU, torch::kFloat64) + 1) * 0.5).clamp(0, 1); };
    return {f(a), f(b)};
}

}  // namespace

double psnr(const torch::Tensor& a, const torch::Tensor& b) {
    auto [x, y] = to_unit(a, b, "psnr");
    const double mse = (x - y).pow(2).mean().item<double>();
    if (mse == 0.0) return std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(1.0 / mse);
}

double ssim(const torch::Tensor& a, const torch::Tensor& b) {
    auto [x, y] = to_unit(a, b, "ssim");
    const int64_t T = x.size(1), H = x.size(2), W = x.size(3);
    constexpr int64_t kWin = 11;
    SURGEON_CHECK(H >= kWin && W >= kWin, "ssim: frames must be at least 11x11, got {}x{}", H, W);
    auto g = torch::arange(kWin, torch::kFloat64) - (kWin - 1) / 2.0;  // [11]
    g = torch::exp(-g.pow(2) / (2 * 1.5 * 1.5));
    g = g / g.sum();
    // The Gaussian window is separable: a column pass then a row pass (22 instead of 121 taps), in float32.
    const auto gc = g.to(torch::kFloat32).view({1, 1, kWin, 1}), gr = g.to(torch::kFloat32).view({1, 1, 1, kWin});
    auto xi = x.to(torch::kFloat32).reshape({3 * T, 1, H, W}), yi = y.to(torch::kFloat32).reshape({3 * T, 1, H, W});
    auto blur = [&](const torch::Tensor& v) { return torch::conv2d(torch::conv2d(v, gc), gr); };  // [3T, 1, H-10, W-10]
    auto mx = blur(xi), my = blur(yi);
    auto sxx = blur(xi * xi) - mx * mx, syy = blur(yi * yi) - my * my, sxy = blur(xi * yi) - mx * my;
    constexpr double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;
    auto map = ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2));
    return map.to(torch::kFloat64).mean().item<double>();
}

}  // namespace surgeon::world
