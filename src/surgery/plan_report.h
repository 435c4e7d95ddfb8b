// Human-readable cost report of an attention plan (method.md §6), printed by `surgeon inspect MODEL --plan`.
#pragma once
#include <string>

#include "attention/attention_plan.h"
#include "model/wan_config.h"

namespace surgeon {

// A table: per block the kind and its attention FLOPs (softmax, linear state + apply, feature maps, total,
// % of the teacher's block), then the model total and the plan's attention FLOPs as a fraction of the
// teacher's. Batch 1, one forward, on `grid` (e.g. token_grid_for_video(cfg, 81, 480, 832)).
std::string describe_plan_costs(const AttentionPlan& plan, const WanConfig& cfg, const TokenGrid& grid);

// "1.23 TFLOP" style formatting.
std::string format_flops(double flops);

}  // namespace surgeon
