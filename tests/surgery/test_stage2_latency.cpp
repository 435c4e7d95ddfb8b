// Stage 2 priced by measured latency: every option is timed at the grid and the knapsack keeps the student within
// the budget in those units.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/attention_latency.h"
#include "surgery/stage2_latency.h"
#include "surgery/stage2_rate_selection.h"
#include "testing/testing.h"

using namespace surgeon;

namespace {

void expect_error(const std::function<void()>& f, const std::string& needle) {
    const std::string e = surgeon::testing::error_of(f);
    EXPECT_NE(e.find(needle), std::string::npos) << "error: '" << e << "', expected to contain '" << needle << "'";
}

WanConfig small_config() {
    WanConfig c;
    c.dim = 32;
    c.num_heads = 2;
    c.num_layers = 3;
    return c;
}

BlockErrorTable small_table() {
    BlockErrorTable t;
    PlanEntry softmax, r2, c2, lin;
    r2.kind = AttentionKind::Hybrid;
    r2.rate = 2;
    c2.kind = AttentionKind::Chunked;
    c2.chunk = 2;
    lin.kind = AttentionKind::Linear;
    t.names = {"softmax", "R2", "C2", "linear"};
    t.options = {softmax, r2, c2, lin};
    t.errors = {{0.0, 0.01, 0.02, 0.2}, {0.0, 0.05, 0.03, 0.3}, {0.0, 0.02, 0.04, 0.1}};
    return t;
}

}  // namespace

TEST(Stage2Latency, EveryOptionIsTimedAndTheKnapsackKeepsTheMeasuredBudget) {
    at::set_num_threads(1);
    const auto cfg = small_config();
    const TokenGrid grid{4, 4, 4};
    auto t = small_table();
    const auto ms = price_by_latency(t, cfg, grid, LatencyOptions{torch::kCPU, 1, 3});
    ASSERT_EQ(ms.size(), t.options.size());
    for (double m : ms) EXPECT_TRUE(std::isfinite(m) && m > 0) << m;
    ASSERT_TRUE(t.costs.has_value());
    ASSERT_EQ(t.costs->size(), 3u);
    for (const auto& row : *t.costs) EXPECT_EQ(row, ms);  // one shape, one time per option in every block
    for (double f : {1.0, 1.5, 4.0}) {
        const auto s = select_rates(t, cfg, grid, f);
        EXPECT_FALSE(s.flops);
        EXPECT_DOUBLE_EQ(s.teacher_cost, 3 * ms[0]);
        double cost = 0, error = 0;
        for (size_t b = 0; b < s.solution.choice.size(); ++b) {
            cost += ms[static_cast<size_t>(s.solution.choice[b])];
            error += t.errors[b][static_cast<size_t>(s.solution.choice[b])];
        }
        EXPECT_NEAR(cost, s.solution.cost, 1e-9 * cost);
        EXPECT_NEAR(error, s.solution.error, 1e-12);
        EXPECT_LE(cost, f * s.teacher_cost * (1 + 1e-9));
    }
    // A budget that affords every option everywhere: the least-error choice, softmax in every block.
    EXPECT_DOUBLE_EQ(select_rates(t, cfg, grid, 1e3).solution.error, 0.0);
}

TEST(Stage2Latency, BadValuesAreOneLineErrors) {
    const auto cfg = small_config();
    PlanEntry c;
    c.kind = AttentionKind::Chunked;
    c.chunk = 9;  // longer than the 4-frame video
    expect_error([&] { attention_latency_ms(c, 2, 16, TokenGrid{4, 4, 4}); }, "latency");
    expect_error([&] { attention_latency_ms(PlanEntry{}, 2, 16, TokenGrid{4, 4, 4}, {torch::kCPU, 0, 0}); },
                          "iters must be > 0");
    auto t = small_table();
    t.options[2].chunk = 9;
    expect_error([&] { price_by_latency(t, cfg, TokenGrid{4, 4, 4}, {}); }, "latency of option 'C2'");
}
