// Stage 2 of the surgery (method.md §5.2): the multiple-choice knapsack. Each block picks exactly one of its
// options (cost, error); minimise the summed error subject to summed cost <= budget.
//   solve_knapsack_dp     the fast path: dynamic programming over costs discretised onto a grid of `units` steps
//                         of the budget. First with costs rounded *down*, a relaxation: its optimum is a lower
//                         bound on the exact one, and if its choice fits the true budget it is the exact optimum.
//                         Otherwise with costs rounded *up*: the choice fits, and is never worse than the exact
//                         optimum at budget - blocks * step; `optimal` says whether the two met.
//   solve_knapsack_brute  the slow twin: every combination, exact for the true costs (small cases only).
// No torch: plain numbers in, indices out.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

namespace surgeon {

struct KnapsackOption {
    double cost = 0;   // >= 0, any unit (FLOPs, ms)
    double error = 0;  // what the choice costs in quality; +infinity = not a candidate for this block
};

struct KnapsackSolution {
    std::vector<int> choice;  // per block, the index of the chosen option
    double cost = 0;          // true summed cost of the choice
    double error = 0;         // summed error of the choice
    double step = 0;          // DP: the grid step (budget / units); brute force: 0
    double lower_bound = 0;   // no choice within the budget has a smaller summed error
    bool optimal = false;     // proven: error == the exact optimum for the true costs
};

// Throws one line if an option has a negative or non-finite cost, a NaN error, a block has no candidate, the
// budget is not positive and finite, or no choice fits the budget (naming the cheapest achievable cost).
KnapsackSolution solve_knapsack_dp(const std::vector<std::vector<KnapsackOption>>& blocks, double budget,
                                   int64_t units = 100000);
// Refuses more than `max_combinations` combinations.
KnapsackSolution solve_knapsack_brute(const std::vector<std::vector<KnapsackOption>>& blocks, double budget,
                                      double max_combinations = 2e7);

}  // namespace surgeon
