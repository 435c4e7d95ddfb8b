// Stage 2 priced by measured latency (`surgeon plan knapsack --cost latency`): every option of a block-error table
// is timed once at the target token grid on the chosen device (attention/attention_latency.h), and the table's costs
// become those times, the same in every block (the blocks of one model have the same shape). The knapsack then keeps
// the student within budget x the teacher's measured attention time instead of its FLOPs.
#pragma once
#include <vector>

#include "attention/attention_latency.h"
#include "core/names.h"
#include "model/wan_config.h"
#include "surgery/block_errors.h"

namespace surgeon {

// What stage 2 prices an option by: attention FLOPs (the cost model) or measured latency.
enum class StageTwoCost { Flops, Latency };
inline constexpr EnumName<StageTwoCost> kStageTwoCostNames[] = {{StageTwoCost::Flops, "flops"},
                                                               {StageTwoCost::Latency, "latency"}};

// Median milliseconds per option (the table's order), then table.costs[b][o] = that time for every block.
std::vector<double> price_by_latency(BlockErrorTable& table, const WanConfig& cfg, const TokenGrid& grid,
                                     const LatencyOptions& options);

}  // namespace surgeon
