// Measured cost of an attention option (stage 2's `--cost latency`, method.md §5.2): the median forward time of the
// option's core on random q, k, v at a token grid, on the device the student will run on. The knapsack then prices
// every option by what it takes on that hardware instead of by its FLOPs.
#pragma once
#include <torch/torch.h>

#include "attention/attention_plan.h"
#include "core/types.h"

namespace surgeon {

struct LatencyOptions {
    torch::Device device = torch::kCPU;
    int64_t warmup = 1, iters = 3;  // median of `iters` timed forwards after `warmup` untimed ones
    uint64_t seed = 0;              // q, k, v and the feature maps' weights
};

// Median forward milliseconds of `entry`'s core (softmax: the teacher's core) with num_heads x head_dim on `grid`,
// batch 1, without gradients: bf16 inputs on CUDA (Wan's inference precision), float32 on the CPU. The entry is
// validated first (one-line error naming it).
double attention_latency_ms(const PlanEntry& entry, int64_t num_heads, int64_t head_dim, const TokenGrid& grid,
                            const LatencyOptions& options = {});

}  // namespace surgeon
