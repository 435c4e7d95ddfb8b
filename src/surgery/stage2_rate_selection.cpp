// Stage 2: option pricing, knapsack selection into an attention plan, and its report.
#include "surgery/stage2_rate_selection.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "attention/cost_model.h"
#include "core/error.h"
#include "core/fs.h"
#include "surgery/attention_swap.h"
#include "surgery/plan_report.h"

namespace surgeon {
using json = nlohmann::json;

KnapsackSolver parse_knapsack_solver(const std::string& s) {
    return parse_name(kKnapsackSolverNames, s, "knapsack solver");
}

namespace {
// Best uniform plan: option o on the k blocks whose error rises least over softmax, the rest softmax.
void best_uniform(RateSelection& s, const BlockErrorTable& t, int64_t softmax_option) {
    const size_t B = t.errors.size(), O = t.options.size();
    for (size_t o = 0; o < O; ++o) {
        if (static_cast<int64_t>(o) == softmax_option) continue;
        std::vector<size_t> order;
        for (size_t b = 0; b < B; ++b)
            if (std::isfinite(t.errors[b][o])) order.push_back(b);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
            return t.errors[a][o] - t.errors[a][softmax_option] < t.errors[b][o] - t.errors[b][softmax_option];
        });
        std::vector<int> choice(B, static_cast<int>(softmax_option));
        for (size_t k = 0; k <= order.size(); ++k) {  // k blocks converted, the cheapest error rises first
            if (k > 0) choice[order[k - 1]] = static_cast<int>(o);
            KnapsackSolution u;
            u.choice = choice;
            for (size_t b = 0; b < B; ++b) {
                u.cost += s.costs[b][choice[b]];
                u.error += t.errors[b][choice[b]];
            }
            if (k == 0 || !std::isfinite(u.error) || u.cost > s.budget * (1 + 1e-12)) continue;
            if (!s.uniform || u.error < s.uniform->error) {
                s.uniform = u;
                s.uniform_option = t.names[o];
            }
        }
    }
}
}  // namespace

RateSelection select_rates(const BlockErrorTable& table, const WanConfig& cfg, const TokenGrid& grid,
                           double budget_fraction, KnapsackSolver solver, int64_t units) {
    SURGEON_CHECK(std::isfinite(budget_fraction) && budget_fraction > 0,
                  "budget must be a positive fraction of the teacher's attention cost, got {}", budget_fraction);
    SURGEON_CHECK(table.num_blocks() == cfg.num_layers, "block-error table has {} blocks but the model has {}",
                  table.num_blocks(), cfg.num_layers);
    const int64_t D = cfg.head_dim();
    std::vector<PlanEntry> entries;
    int64_t softmax_option = -1;
    for (size_t o = 0; o < table.options.size(); ++o) {
        entries.push_back(table.options[o].normalized(D));
        validate_entry(entries.back(), D, &grid, fmt::format("option '{}'", table.names[o]));
        if (entries.back().kind == AttentionKind::Softmax && softmax_option < 0) softmax_option = static_cast<int64_t>(o);
    }
    RateSelection s;
    s.flops = !table.costs.has_value();
    if (s.flops) {
        std::vector<double> per_option;
        for (const auto& e : entries) per_option.push_back(block_attention_flops(e, cfg.num_heads, D, grid).total());
        s.costs.assign(table.errors.size(), per_option);
        s.teacher_cost = teacher_attention_flops(cfg.num_heads, D, grid) * static_cast<double>(cfg.num_layers);
    } else {
        SURGEON_CHECK(softmax_option >= 0,
                      "block-error table gives its own costs but no softmax option: the budget is a fraction of the "
                      "teacher's cost, which is then the softmax option's");
        s.costs = *table.costs;
        for (const auto& row : s.costs) s.teacher_cost += row[softmax_option];
        SURGEON_CHECK(s.teacher_cost > 0, "block-error table: the softmax option costs 0 in every block");
    }
    s.budget = budget_fraction * s.teacher_cost;
    std::vector<std::vector<KnapsackOption>> problem(table.errors.size());
    for (size_t b = 0; b < problem.size(); ++b)
        for (size_t o = 0; o < entries.size(); ++o) problem[b].push_back({s.costs[b][o], table.errors[b][o]});
    s.solution = solver == KnapsackSolver::Dp ? solve_knapsack_dp(problem, s.budget, units)
                                              : solve_knapsack_brute(problem, s.budget);
    for (size_t b = 0; b < problem.size(); ++b) s.plan.blocks.push_back(entries[s.solution.choice[b]]);
    validate_plan(s.plan, cfg, &grid);
    if (softmax_option >= 0) best_uniform(s, table, softmax_option);
    return s;
}

std::string describe_selection(const RateSelection& s, const BlockErrorTable& table) {
    auto cost_str = [&](double c) { return s.flops ? format_flops(c) : fmt::format("{:.4g}", c); };
    const double teacher_block = s.teacher_cost / std::max<size_t>(1, s.plan.blocks.size());
    std::string out = fmt::format("{:>5}  {:<12} {:<36} {:>12} {:>12} {:>9}\n", "block", "option", "attention", "error",
                                  s.flops ? "FLOPs" : "cost", "% teacher");
    for (size_t b = 0; b < s.plan.blocks.size(); ++b) {
        const int o = s.solution.choice[b];
        out += fmt::format("{:>5}  {:<12} {:<36} {:>12.6g} {:>12} {:>8.1f}%\n", b, table.names[o],
                           s.plan.blocks[b].describe(), table.errors[b][o], cost_str(s.costs[b][o]),
                           100.0 * s.costs[b][o] / teacher_block);
    }
    out += fmt::format("total: error {:.6g}, cost {} = {:.2f}% of the teacher's {} (budget {:.2f}%)\n", s.solution.error,
                       cost_str(s.solution.cost), 100.0 * s.solution.cost / s.teacher_cost, cost_str(s.teacher_cost),
                       100.0 * s.budget / s.teacher_cost);
    out += s.solution.optimal
               ? std::string("the least summed error of any choice within the budget (proven)\n")
               : fmt::format("not proven optimal: no choice within the budget has an error below {:.6g} (raise --units)\n",
                             s.solution.lower_bound);
    if (s.uniform) {
        int64_t k = 0;
        for (size_t b = 0; b < s.uniform->choice.size(); ++b) k += table.names[s.uniform->choice[b]] == s.uniform_option;
        out += fmt::format("best uniform plan in the same budget: {} x {}, error {:.6g}, cost {:.2f}% (knapsack: {:+.6g})\n",
                           k, s.uniform_option, s.uniform->error, 100.0 * s.uniform->cost / s.teacher_cost,
                           s.solution.error - s.uniform->error);
    } else {
        out += "best uniform plan in the same budget: none (no softmax option, or no uniform plan fits)\n";
    }
    return out;
}

}  // namespace surgeon
