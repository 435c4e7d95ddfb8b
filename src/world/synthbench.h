// SynthBench: scores a generated video [3, T, H, W] against the world spec it was prompted with. Metrics in
// [0, 1] (how each is measured: synthbench.cpp and shared/docs/synthetic-world.md); the score is their mean.
// Position-free: the prompt does not fix where objects are, so neither does the score.
// Fidelity between two videos (PSNR, SSIM) is in fidelity.h.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "world/world.h"

namespace surgeon::world {

struct BenchScores {
    double background = 0, count = 0, colour = 0, shape = 0, motion = 0, consistency = 0;
    double score = 0;        // mean of the six
    nlohmann::json details;  // what was detected per object (for reports and debugging)
};

// video [3, T, H, W] in [-1, 1]; spec: attributes are used, positions are not. T >= 3, H, W >= 16.
BenchScores synthbench(const torch::Tensor& video, const WorldSpec& spec);
// Mean of each metric over samples (details dropped).
BenchScores mean_scores(const std::vector<BenchScores>& scores);
// {"score": s, "metrics": {"background": ..., ...}} (+ "details" when with_details).
nlohmann::json to_json(const BenchScores& s, bool with_details = false);
std::vector<std::string> metric_names();  // background, count, colour, shape, motion, consistency

}  // namespace surgeon::world
