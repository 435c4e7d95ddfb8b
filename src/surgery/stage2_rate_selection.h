// Stage 2 of the surgery (method.md §5.2): per-block option selection under a compute budget. Reads the table of
// held-out errors e[block][option] that stage 1 (block-wise distillation) records, prices every option with the
// attention cost model (method.md §6) or with the table's own costs (e.g. measured latency), solves the
// multiple-choice knapsack (surgery/knapsack.h) and returns the attention plan.
//
// Table format ("surgeon.block_errors", version 1):
//   {"format": "surgeon.block_errors", "version": 1,
//    "options": [{"name": "softmax", "kind": "softmax"},
//                {"name": "R4", "kind": "hybrid", "rate": 4, "feature_map": {"kind": "poly"}}, ...],
//    "errors": [[0.0, 0.021, ...], ...],   // one row per block, one column per option; null = not a candidate
//    "costs": [[...], ...]}                 // optional, same shape; default: attention FLOPs on the token grid
// Option objects take the keys of an attention plan entry (attention/attention_plan.h) plus "name".
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "attention/attention_plan.h"
#include "model/wan_config.h"
#include "surgery/knapsack.h"

namespace surgeon {

struct BlockErrorTable {
    static constexpr int kVersion = 1;
    std::vector<std::string> names;           // one per option, unique
    std::vector<PlanEntry> options;           // the plan entry each option stands for
    std::vector<std::vector<double>> errors;  // [block][option]; +infinity = not a candidate
    std::optional<std::vector<std::vector<double>>> costs;  // [block][option]

    int64_t num_blocks() const { return static_cast<int64_t>(errors.size()); }
    nlohmann::json to_json() const;
    // Errors are one line naming `source` and the field (block and option where it applies).
    static BlockErrorTable from_json(const nlohmann::json& j, const std::string& source = "table");
    static BlockErrorTable load(const std::string& path);
    void save(const std::string& path) const;  // atomic
};

// The "options" array of a table (also the options file of `surgeon distill`): names and plan entries, each
// entry checked on its own (head dim and grid are checked at selection); errors name `source` and the option.
void parse_table_options(const nlohmann::json& options, const std::string& source, std::vector<std::string>& names,
                         std::vector<PlanEntry>& entries);

enum class KnapsackSolver { Dp, Brute };
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
