// Fidelity of a student's video to the teacher's for the same prompt and noise: PSNR and SSIM, both on the
// [0, 1] pixel scale of videos [3, T, H, W] given in [-1, 1].
#pragma once
#include <torch/torch.h>

namespace surgeon::world {

// PSNR over the whole clip: 10 log10(1 / MSE), MSE over all frames, channels and pixels (= the frame-averaged
// MSE); +inf when the videos are identical.
double psnr(const torch::Tensor& a, const torch::Tensor& b);
// SSIM (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, valid region only,
// per frame and channel, averaged over channels and frames (so: the frame average). Frames must be >= 11x11.
double ssim(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace surgeon::world
