// Attention FLOPs per block and per model (method.md §6), for plans and the knapsack of stage 2.
// softmax 4*H*D*sum_i |T_S(i)|; linear state 2*H*D'*D*|T_L|; apply 2*H*N*D'*(D+1);
// feature maps 2*H*N*(D*h + h*P*D) for each of q and k (hedgehog 2*H*N*D*D each); teacher 4*H*D*N^2;
// stabiliser max: one more score pass 2*H*D*sum_i |T_S(i)| (the row max and log-sum-exp, float32).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attention/attention_plan.h"
#include "core/types.h"

namespace surgeon {

struct AttentionFlops {
    // stabilizer: the max stabiliser's extra score pass over the softmax keys, 2*H*D*sum_i |T_S(i)| (q k^T only).
    double softmax = 0, linear_state = 0, linear_apply = 0, feature_maps = 0, stabilizer = 0;
    double total() const { return softmax + linear_state + linear_apply + feature_maps + stabilizer; }
};

// sum_i |T_S(i)| and |T_L| (keys that enter some linear state) of one entry on a grid.
int64_t softmax_pairs(const PlanEntry& e, const TokenGrid& grid);
int64_t linear_keys(const PlanEntry& e, const TokenGrid& grid);

// FLOPs of one block's self-attention core (batch 1) with H heads of dim D.
AttentionFlops block_attention_flops(const PlanEntry& e, int64_t num_heads, int64_t head_dim, const TokenGrid& grid);
double teacher_attention_flops(int64_t num_heads, int64_t head_dim, const TokenGrid& grid);  // 4*H*D*N^2

struct PlanFlops {
    std::vector<AttentionFlops> blocks;
    double total = 0;          // sum over blocks
    double teacher_total = 0;  // every block softmax
    double fraction() const { return teacher_total > 0 ? total / teacher_total : 0; }
};
PlanFlops plan_attention_flops(const AttentionPlan& plan, int64_t num_heads, int64_t head_dim, const TokenGrid& grid);

}  // namespace surgeon
