#include "surgery/stage2_knapsack.h"

#include <cmath>

#include "core/error.h"

namespace surgeon {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

bool candidate(const KnapsackOption& o) { return std::isfinite(o.error); }

// Checks the inputs and that the cheapest choice fits; returns that cheapest summed cost.
double check_problem(const std::vector<std::vector<KnapsackOption>>& blocks, double budget) {
    SURGEON_CHECK(!blocks.empty(), "knapsack: no blocks");
    SURGEON_CHECK(std::isfinite(budget) && budget > 0, "knapsack: budget must be positive and finite, got {}", budget);
    double cheapest = 0;
    for (size_t b = 0; b < blocks.size(); ++b) {
        double lo = kInf;
        for (size_t o = 0; o < blocks[b].size(); ++o) {
            const auto& opt = blocks[b][o];
            SURGEON_CHECK(std::isfinite(opt.cost) && opt.cost >= 0,
                          "knapsack: block {} option {}: cost must be finite and >= 0, got {}", b, o, opt.cost);
            SURGEON_CHECK(!std::isnan(opt.error), "knapsack: block {} option {}: error is NaN", b, o);
            SURGEON_CHECK(opt.error != -kInf, "knapsack: block {} option {}: error is -infinity", b, o);
            if (candidate(opt)) lo = std::min(lo, opt.cost);
        }
        SURGEON_CHECK(lo < kInf, "knapsack: block {} has no candidate option (every error is infinite or missing)", b);
        cheapest += lo;
    }
    SURGEON_CHECK(cheapest <= budget * (1 + 1e-12),
                  "knapsack: nothing fits the budget {:.6g}: the cheapest choice costs {:.6g} ({:.4f} x the budget)",
                  budget, cheapest, cheapest / budget);
    return cheapest;
}

KnapsackSolution finish(const std::vector<std::vector<KnapsackOption>>& blocks, std::vector<int> choice, double step) {
    KnapsackSolution s;
    s.choice = std::move(choice);
    s.step = step;
    for (size_t b = 0; b < blocks.size(); ++b) {
        s.cost += blocks[b][s.choice[b]].cost;
        s.error += blocks[b][s.choice[b]].error;
    }
    return s;
}
}  // namespace

namespace {
// The DP over integer costs on the grid (rounded up or down); empty if no choice fits the rounded budget.
std::vector<int> grid_dp(const std::vector<std::vector<KnapsackOption>>& blocks, double step, int64_t units, bool up) {
    const size_t B = blocks.size();
    const size_t U = static_cast<size_t>(units);
    // Integer costs; -1 = not usable (not a candidate, or alone over the budget).
    std::vector<std::vector<int64_t>> w(B);
    for (size_t b = 0; b < B; ++b) {
        for (const auto& opt : blocks[b]) {
            int64_t wi = -1;
            if (candidate(opt)) {
                const double x = opt.cost / step;
                const double q = up ? std::ceil(x - 1e-9) : std::floor(x + 1e-9);
                wi = q <= static_cast<double>(units) ? std::max<int64_t>(0, static_cast<int64_t>(q)) : -1;
            }
            w[b].push_back(wi);
        }
    }
    // dp[c]: least summed error of the blocks so far with grid cost <= c; choice[b][c]: block b's option there.
    std::vector<double> prev(U + 1, 0.0), cur(U + 1);
    std::vector<std::vector<uint16_t>> choice(B, std::vector<uint16_t>(U + 1, 0));
    for (size_t b = 0; b < B; ++b) {
        std::fill(cur.begin(), cur.end(), kInf);
        for (size_t o = 0; o < blocks[b].size(); ++o) {
            const int64_t wi = w[b][o];
            if (wi < 0) continue;
            const double e = blocks[b][o].error;
            auto* ch = choice[b].data();
            for (size_t c = static_cast<size_t>(wi); c <= U; ++c) {
                const double v = prev[c - wi] + e;
                if (v < cur[c]) {  // strict: among equal errors the lower option index wins
                    cur[c] = v;
                    ch[c] = static_cast<uint16_t>(o);
                }
            }
        }
        std::swap(prev, cur);
    }
    if (!(prev[U] < kInf)) return {};
    // The cheapest grid cost that reaches the least error, then back along the choices.
    size_t c = U;
    while (c > 0 && prev[c - 1] <= prev[U]) --c;
    std::vector<int> pick(B);
    for (size_t b = B; b-- > 0;) {
        pick[b] = choice[b][c];
        c -= static_cast<size_t>(w[b][pick[b]]);
    }
    return pick;
}
}  // namespace

KnapsackSolution solve_knapsack_dp(const std::vector<std::vector<KnapsackOption>>& blocks, double budget,
                                   int64_t units) {
    check_problem(blocks, budget);
    SURGEON_CHECK(units >= 1 && units <= 100000000, "knapsack: units must be in [1, 1e8], got {}", units);
    for (size_t b = 0; b < blocks.size(); ++b)
        SURGEON_CHECK(blocks[b].size() <= 65535, "knapsack: block {} has {} options (at most 65535)", b, blocks[b].size());
    const double step = budget / static_cast<double>(units);
    // Costs rounded down: every choice that fits the true budget fits the grid, so this optimum is a lower bound.
    auto relaxed = grid_dp(blocks, step, units, false);
    SURGEON_CHECK(!relaxed.empty(), "knapsack: the cheapest choice fits the budget only within floating-point "
                                    "rounding; raise the budget slightly");
    auto low = finish(blocks, std::move(relaxed), step);
    low.lower_bound = low.error;
    if (low.cost <= budget * (1 + 1e-12)) {
        low.optimal = true;
        return low;
    }
    // Costs rounded up: what it chooses fits the true budget.
    auto safe = grid_dp(blocks, step, units, true);
    SURGEON_CHECK(!safe.empty(),
                  "knapsack: the cheapest choice fits the budget only within the cost grid's rounding; "
                  "use more units (got {})", units);
    auto s = finish(blocks, std::move(safe), step);
    s.lower_bound = low.error;
    s.optimal = s.error <= low.error;
    return s;
}

KnapsackSolution solve_knapsack_brute(const std::vector<std::vector<KnapsackOption>>& blocks, double budget,
                                      double max_combinations) {
    check_problem(blocks, budget);
    double combos = 1;
    for (const auto& b : blocks) combos *= static_cast<double>(b.size());
    SURGEON_CHECK(combos <= max_combinations, "knapsack: brute force over {:.3g} combinations refused (at most {:.3g})",
                  combos, max_combinations);
    const size_t B = blocks.size();
    std::vector<int> idx(B, 0), best;
    double best_error = kInf, best_cost = kInf;
    while (true) {
        double cost = 0, error = 0;
        bool ok = true;
        for (size_t b = 0; b < B && ok; ++b) {
            const auto& opt = blocks[b][idx[b]];
            ok = candidate(opt);
            cost += opt.cost;
            error += opt.error;
        }
        if (ok && cost <= budget * (1 + 1e-12) && (error < best_error || (error == best_error && cost < best_cost))) {
            best_error = error;
            best_cost = cost;
            best = idx;
        }
        size_t b = B;  // mixed-radix increment, last block fastest
        while (b > 0 && ++idx[b - 1] == static_cast<int>(blocks[b - 1].size())) idx[--b] = 0;
        if (b == 0) break;
    }
    auto s = finish(blocks, std::move(best), 0);
    s.lower_bound = s.error;
    s.optimal = true;
    return s;
}

}  // namespace surgeon
