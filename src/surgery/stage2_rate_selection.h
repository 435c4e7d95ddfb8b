// Stage 2 of the surgery (method.md §5.2): per-block option selection under a compute budget. Reads the table of
// held-out errors e[block][option] that stage 1 (block-wise distillation) records (block_errors.h), prices every
// option with the attention cost model (method.md §6) or with the table's own costs (e.g. measured latency), solves
// the multiple-choice knapsack (stage2_knapsack.h) and returns the attention plan.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "attention/attention_plan.h"
#include "core/names.h"
#include "model/wan_config.h"
#include "surgery/block_errors.h"
#include "surgery/stage2_knapsack.h"

namespace surgeon {

enum class KnapsackSolver { Dp, Brute };
inline constexpr EnumName<KnapsackSolver> kKnapsackSolverNames[] = {{KnapsackSolver::Dp, "dp"},
                                                                   {KnapsackSolver::Brute, "brute"}};
KnapsackSolver parse_knapsack_solver(const std::string& s);  // "dp" | "brute"

struct RateSelection {
    AttentionPlan plan;
    KnapsackSolution solution;
    std::vector<std::vector<double>> costs;  // [block][option] as priced
    double teacher_cost = 0;                 // every block softmax, same unit
    double budget = 0;                       // budget_fraction * teacher_cost
    bool flops = true;                       // costs are attention FLOPs (else the table's own)
    // The best "uniform" plan within the same budget, for comparison (method.md §5.2: the paper compares with
    // uniform configurations): one non-softmax option on k >= 1 blocks (those whose error rises least over
    // softmax), the rest softmax; the least error over every option and k that fit. Empty when the table has no
    // softmax option or none fits.
    std::optional<KnapsackSolution> uniform;
    std::string uniform_option;
};

// Checks the table against the model (block count, each option a valid entry for its head dim and `grid`),
// prices the options, and selects under budget_fraction x the teacher's cost (0 < fraction; > 1 allowed).
// With the table's own costs the teacher's cost is that of its softmax option, which must then exist.
RateSelection select_rates(const BlockErrorTable& table, const WanConfig& cfg, const TokenGrid& grid,
                           double budget_fraction, KnapsackSolver solver = KnapsackSolver::Dp, int64_t units = 100000);

// A per-block table of the selection (option, error, cost, % of a teacher block), its totals, and the uniform
// comparison.
std::string describe_selection(const RateSelection& s, const BlockErrorTable& table);

}  // namespace surgeon
