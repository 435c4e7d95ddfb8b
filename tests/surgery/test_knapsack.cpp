// Stage 2: the multiple-choice knapsack (DP fast path against its brute-force twin on random and awkward
// problems), the block-error table format, option pricing with the cost model, and `surgeon plan knapsack`.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "attention/cost_model.h"
#include "core/error.h"
#include "core/fs.h"
#include "model/model_io.h"
#include "surgery/attention_swap.h"
#include "surgery/stage2_knapsack.h"
#include "surgery/stage2_rate_selection.h"
#include "testing/testing.h"

namespace surgeon {
namespace {
namespace fs = std::filesystem;
using Problem = std::vector<std::vector<KnapsackOption>>;
constexpr double kInf = std::numeric_limits<double>::infinity();
const std::string kTiny = testing::golden("wan-t2v-tiny");

void expect_error(const std::function<void()>& f, const std::string& needle) {
    const std::string msg = testing::error_of(f);
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected an error containing: " << needle << "; got: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

// Random problem: B blocks x 1..O options, errors in [0, 1) (some not candidates), costs as multiples of `grain`
// (grain 0: any real cost in [0, 10)). Every block keeps at least one candidate.
Problem random_problem(std::mt19937& rng, int B, int O, double grain) {
    std::uniform_int_distribution<int> nopt(1, O), mult(0, 20);
    std::uniform_real_distribution<double> u(0, 1);
    Problem p(B);
    for (auto& block : p) {
        const int n = nopt(rng);
        for (int o = 0; o < n; ++o) {
            KnapsackOption opt;
            opt.cost = grain > 0 ? grain * mult(rng) : 10 * u(rng);
            opt.error = (o > 0 && u(rng) < 0.15) ? kInf : u(rng);
            block.push_back(opt);
        }
    }
    return p;
}

double cheapest(const Problem& p) {
    double c = 0;
    for (const auto& b : p) {
        double lo = kInf;
        for (const auto& o : b)
            if (std::isfinite(o.error)) lo = std::min(lo, o.cost);
        c += lo;
    }
    return c;
}

double sum_cost(const Problem& p, const std::vector<int>& choice) {
    double c = 0;
    for (size_t b = 0; b < p.size(); ++b) c += p[b][choice[b]].cost;
    return c;
}

TEST(Knapsack, DpEqualsBruteForceWhenCostsLieOnTheGrid) {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 300; ++trial) {
        const int B = 1 + trial % 6, O = 1 + (trial / 6) % 5;
        const auto p = random_problem(rng, B, O, 0.5);
        const double lo = cheapest(p);
        // A budget on the 0.5 grid at or above the cheapest choice; units make 0.5 a whole number of steps.
        const double budget = std::max(0.5, lo + 0.5 * std::uniform_int_distribution<int>(0, 20 * B)(rng));
        const int64_t units = static_cast<int64_t>(std::llround(budget / 0.5)) * 4;
        const auto dp = solve_knapsack_dp(p, budget, units);
        const auto bf = solve_knapsack_brute(p, budget);
        ASSERT_NEAR(dp.error, bf.error, 1e-9) << "trial " << trial;
        EXPECT_LE(dp.cost, budget + 1e-9);
        EXPECT_NEAR(dp.cost, sum_cost(p, dp.choice), 1e-9);
        for (size_t b = 0; b < p.size(); ++b) EXPECT_TRUE(std::isfinite(p[b][dp.choice[b]].error));
    }
}

TEST(Knapsack, DpOnRealCostsIsExactOrBounded) {
    // With costs off the grid: the chosen set never exceeds the budget; its error is at least the exact optimum
    // and at most the exact optimum at budget - blocks x step; the lower bound is one; "optimal" is true only
    // when it equals the brute-force optimum.
    std::mt19937 rng(11);
    int proven = 0, tried = 0;
    for (int trial = 0; trial < 300; ++trial) {
        const int B = 1 + trial % 7, O = 1 + (trial / 7) % 4;
        const auto p = random_problem(rng, B, O, 0);
        const double lo = cheapest(p);
        const double budget = lo + std::uniform_real_distribution<double>(0.01, 5.0 * B)(rng);
        const int64_t units = (trial % 3 == 0) ? 50 : 5000;
        const auto exact = solve_knapsack_brute(p, budget);
        KnapsackSolution dp;
        const std::string err = testing::error_of([&] { dp = solve_knapsack_dp(p, budget, units); });
        if (!err.empty()) {  // only when even the cheapest choice is within the grid's rounding of the budget
            EXPECT_NE(err.find("use more units"), std::string::npos) << err;
            EXPECT_GT(lo, budget - B * budget / units) << trial;
            continue;
        }
        ++tried;
        EXPECT_LE(dp.cost, budget * (1 + 1e-9)) << trial;
        EXPECT_GE(dp.error, exact.error - 1e-9) << trial;
        EXPECT_LE(dp.lower_bound, exact.error + 1e-9) << trial;
        if (dp.optimal) {
            ++proven;
            EXPECT_NEAR(dp.error, exact.error, 1e-9) << trial;
        }
        const double tighter = budget - B * dp.step;
        if (tighter >= lo) EXPECT_LE(dp.error, solve_knapsack_brute(p, tighter).error + 1e-9) << trial;
    }
    EXPECT_GT(tried, 250);
    EXPECT_GT(proven, tried * 3 / 4) << "proven optimal in " << proven << " of " << tried;
}

TEST(Knapsack, AwkwardCases) {
    // One block, one option, exactly at the budget.
    auto s = solve_knapsack_dp({{{3.0, 0.25}}}, 3.0, 7);
    EXPECT_EQ(s.choice, std::vector<int>{0});
    EXPECT_DOUBLE_EQ(s.error, 0.25);
    // Zero-cost options and equal errors: the cheaper of two equal-error choices wins, in both solvers.
    Problem p = {{{0.0, 1.0}, {2.0, 0.5}, {1.0, 0.5}}, {{0.0, 0.0}, {1.0, 0.0}}};
    for (const auto& r : {solve_knapsack_dp(p, 4.0, 400), solve_knapsack_brute(p, 4.0)}) {
        EXPECT_EQ(r.choice, (std::vector<int>{2, 0}));
        EXPECT_DOUBLE_EQ(r.cost, 1.0);
    }
    // A non-candidate option is never chosen even when it is the only cheap one that fits... and then nothing fits.
    p = {{{1.0, kInf}, {5.0, 0.1}}};
    expect_error([&] { solve_knapsack_dp(p, 2.0); }, "nothing fits the budget 2: the cheapest choice costs 5");
    EXPECT_EQ(solve_knapsack_dp(p, 5.0).choice, std::vector<int>{1});
    expect_error([&] { solve_knapsack_dp({{{1.0, kInf}}}, 2.0); }, "block 0 has no candidate option");
    expect_error([&] { solve_knapsack_dp({{{-1.0, 0.0}}}, 2.0); }, "block 0 option 0: cost must be finite and >= 0");
    expect_error([&] { solve_knapsack_dp({{{1.0, std::nan("")}}}, 2.0); }, "block 0 option 0: error is NaN");
    expect_error([&] { solve_knapsack_dp({{{1.0, 0.0}}}, 0.0); }, "budget must be positive and finite");
    expect_error([&] { solve_knapsack_dp({}, 1.0); }, "knapsack: no blocks");
    // Three blocks of {0.4: error 1, 0.5: error 0} under 1.2. Rounded down, the 0.5s look free and the relaxed
    // choice does not fit; rounded up on 2 units nothing fits (the DP asks for more units); on 3 units only the
    // 0.4s fit: the exact optimum, but not proven (lower bound 0).
    const Problem tight(3, {{0.4, 1.0}, {0.5, 0.0}});
    expect_error([&] { solve_knapsack_dp(tight, 1.2, 2); }, "use more units (got 2)");
    s = solve_knapsack_dp(tight, 1.2, 3);
    EXPECT_EQ(s.choice, (std::vector<int>{0, 0, 0}));
    EXPECT_DOUBLE_EQ(s.error, solve_knapsack_brute(tight, 1.2).error);
    EXPECT_FALSE(s.optimal);
    EXPECT_DOUBLE_EQ(s.lower_bound, 0.0);
    // With a fine grid the rounding no longer hides it: proven.
    EXPECT_TRUE(solve_knapsack_dp(tight, 1.2, 100000).optimal);
    Problem big(30, std::vector<KnapsackOption>(4, {1.0, 0.0}));
    expect_error([&] { solve_knapsack_brute(big, 100.0); }, "brute force over 1.15e+18 combinations refused");
}

// A table for the tiny golden model (2 blocks, head dim 16).
BlockErrorTable tiny_table() {
    BlockErrorTable t;
    PlanEntry softmax, r2, lin;
    r2.kind = AttentionKind::Hybrid;
    r2.rate = 2;
    lin.kind = AttentionKind::Linear;
    lin.feature_map.kind = FeatureMapKind::Elu1;
    t.names = {"softmax", "R2", "linear"};
    t.options = {softmax, r2, lin};
    t.errors = {{0.0, 0.01, 0.2}, {0.0, 0.05, kInf}};
    return t;
}

TEST(RateSelection, TableRoundTripAndOneLineErrors) {
    const auto dir = testing::temp_dir("knapsack_table");
    auto t = tiny_table();
    t.costs = std::vector<std::vector<double>>{{4.0, 2.5, 1.0}, {4.0, 2.5, 1.0}};
    t.save(dir + "/t.json");
    auto back = BlockErrorTable::load(dir + "/t.json");
    EXPECT_EQ(back.names, t.names);
    ASSERT_EQ(back.options.size(), 3u);
    for (size_t o = 0; o < 3; ++o) EXPECT_EQ(back.options[o], t.options[o].normalized()) << o;
    EXPECT_EQ(back.errors[0], t.errors[0]);
    EXPECT_TRUE(std::isinf(back.errors[1][2]));  // null = not a candidate
    EXPECT_EQ(*back.costs, *t.costs);

    auto bad = [&](const std::string& text, const std::string& needle) {
        std::ofstream(dir + "/bad.json") << text;
        expect_error([&] { BlockErrorTable::load(dir + "/bad.json"); }, needle);
    };
    const std::string head = R"({"format": "surgeon.block_errors", "version": 1, )";
    bad("{", "invalid JSON");
    bad(R"({"format": "x", "version": 1})", "field 'format': expected \"surgeon.block_errors\", got \"x\"");
    bad(head + R"("options": [{"name": "a", "kind": "softmax"}], "errors": [[0.1, 0.2]]})",
        "errors of block 0: expected 1 values (one per option), got 2");
    bad(head + R"("options": [{"name": "a", "kind": "hybrid", "rate": 0}], "errors": [[0.1]]})", "option 'a'");
    bad(head + R"("options": [{"name": "a", "kind": "softmax"}, {"name": "a", "kind": "linear"}], "errors": [[0, 0]]})",
        "option name 'a' appears twice");
    bad(head + R"("options": [{"name": "a", "kind": "softmax"}], "errors": [[-1]]})",
        "errors of block 0 option 0: expected a finite value >= 0, got -1");
    bad(head + R"("options": [{"name": "a", "kind": "softmax"}], "errors": [[0]], "costs": [[null]]})",
        "costs of block 0 option 0: expected a number, got null");
    bad(head + R"("options": [{"name": "a", "kind": "softmax"}], "errors": [[0]], "extra": 1})", "unknown key 'extra'");
}

TEST(RateSelection, FlopsBudgetGivesTheCheapestErrorPlanThatFits) {
    SURGEON_REQUIRE_GOLDEN(kTiny);
    const WanConfig cfg = read_model_config(find_model_folder(kTiny));
    const TokenGrid grid{3, 4, 6};
    const auto t = tiny_table();
    // Budget 1: the teacher itself (error 0).
    auto s = select_rates(t, cfg, grid, 1.0);
    EXPECT_EQ(s.plan.num_converted(), 0);
    EXPECT_DOUBLE_EQ(s.solution.error, 0.0);
    // Every budget: the plan's FLOPs by the cost model equal the solution's cost, fit the budget, and the DP
    // agrees with brute force; the knapsack is never worse than the best uniform plan.
    for (double f : {0.3, 0.45, 0.6, 0.75, 0.9}) {
        try {
            s = select_rates(t, cfg, grid, f);
        } catch (const Error& e) {  // budgets below the cheapest plan
            EXPECT_NE(std::string(e.what()).find("nothing fits"), std::string::npos) << e.what();
            continue;
        }
        const auto flops = plan_attention_flops(s.plan, cfg.num_heads, cfg.head_dim(), grid);
        EXPECT_NEAR(flops.total, s.solution.cost, 1e-6 * flops.total);
        EXPECT_NEAR(flops.teacher_total, s.teacher_cost, 1e-6 * s.teacher_cost);
        EXPECT_LE(flops.fraction(), f + 1e-9);
        const auto brute = select_rates(t, cfg, grid, f, KnapsackSolver::Brute);
        EXPECT_NEAR(brute.solution.error, s.solution.error, 1e-12) << f;
        if (s.uniform) EXPECT_LE(s.solution.error, s.uniform->error + 1e-12);
        validate_plan(s.plan, cfg, &grid);
    }
    // Wrong block count, and own costs without a softmax option.
    auto three = t;
    three.errors.push_back({0, 0, 0});
    expect_error([&] { select_rates(three, cfg, grid, 0.5); }, "table has 3 blocks but the model has 2");
    auto no_softmax = t;
    no_softmax.names = {"R4", "R2", "linear"};
    no_softmax.options[0].kind = AttentionKind::Hybrid;
    no_softmax.options[0].rate = 4;
    no_softmax.costs = std::vector<std::vector<double>>{{1, 2, 3}, {1, 2, 3}};
    expect_error([&] { select_rates(no_softmax, cfg, grid, 0.5); }, "no softmax option");
}

TEST(RateSelection, OwnCostsAndTheUniformComparison) {
    SURGEON_REQUIRE_GOLDEN(kTiny);
    const WanConfig cfg = read_model_config(find_model_folder(kTiny));
    auto t = tiny_table();
    // Measured-latency style costs where block 1's R2 is slow.
    t.costs = std::vector<std::vector<double>>{{10, 5, 1}, {10, 9, 10}};
    t.errors = {{0.0, 0.01, 0.2}, {0.0, 0.001, 0.3}};
    const auto s = select_rates(t, cfg, TokenGrid{3, 4, 6}, 0.75);
    // Teacher 20, budget 15: {R2, softmax} costs exactly 15 with error 0.01, the optimum ({R2, R2}: 14, 0.011).
    EXPECT_EQ(s.solution.choice, (std::vector<int>{1, 0}));
    EXPECT_TRUE(s.solution.optimal);
    EXPECT_DOUBLE_EQ(s.teacher_cost, 20.0);
    EXPECT_FALSE(s.flops);
    ASSERT_TRUE(s.uniform.has_value());
    // Uniform: R2 on the block whose error rises least (block 1) costs 19 > 15, so R2 on both (0.011); linear
    // on block 0 costs 11 with error 0.2. The knapsack beats the best uniform plan by 0.001.
    EXPECT_EQ(s.uniform_option, "R2");
    EXPECT_NEAR(s.uniform->error, 0.011, 1e-12);
    const auto text = describe_selection(s, t);
    EXPECT_NE(text.find("best uniform plan in the same budget: 2 x R2, error 0.011"), std::string::npos) << text;
    EXPECT_NE(text.find("(knapsack: -0.001)"), std::string::npos) << text;
}

TEST(RateSelection, TheReadmeExampleTableOnTheBundledTeacher) {
    // examples/block-errors.json on models/synth-teacher (8 blocks, 16x16x16 tokens), as in the README:
    // the DP's choice is proven optimal, agrees with brute force (5^8 choices) and beats every uniform plan.
    const auto t = BlockErrorTable::load(std::string(SURGEON_SOURCE_DIR) + "/examples/block-errors.json");
    const WanConfig cfg = read_model_config(find_model_folder(std::string(SURGEON_SOURCE_DIR) + "/models/synth-teacher"));
    const TokenGrid grid{16, 16, 16};
    for (double f : {0.4, 0.6, 0.8}) {
        const auto dp = select_rates(t, cfg, grid, f);
        const auto bf = select_rates(t, cfg, grid, f, KnapsackSolver::Brute);
        EXPECT_TRUE(dp.solution.optimal) << f;
        EXPECT_NEAR(dp.solution.error, bf.solution.error, 1e-12) << f;
        EXPECT_LE(dp.solution.cost, dp.budget * (1 + 1e-12));
        ASSERT_TRUE(dp.uniform.has_value()) << f;
        EXPECT_LE(dp.solution.error, dp.uniform->error + 1e-12) << f;
    }
}

TEST(RateSelection, TheDistillOptionsExampleParses) {
    std::vector<std::string> names;
    std::vector<PlanEntry> entries;
    const auto path = std::string(SURGEON_SOURCE_DIR) + "/examples/distill-options.json";
    parse_table_options(nlohmann::json::parse(read_text_file(path))["options"], path, names, entries);
    EXPECT_EQ(names, (std::vector<std::string>{"softmax", "R2", "R4", "R8", "linear"}));
    EXPECT_EQ(entries[2].rate, 4);
    // Its options are the example table's.
    EXPECT_EQ(BlockErrorTable::load(std::string(SURGEON_SOURCE_DIR) + "/examples/block-errors.json").names, names);
}

TEST(PlanCli, KnapsackWritesAPlanWithinTheBudget) {
    SURGEON_REQUIRE_GOLDEN(kTiny);
    const auto dir = testing::temp_dir("knapsack_cli");
    tiny_table().save(dir + "/t.json");
    auto r = testing::run_surgeon("plan knapsack --model " + kTiny + " --errors " + dir + "/t.json --budget 0.8 --grid 3x4x6 --out " +
                                  dir + "/p.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("wrote " + dir + "/p.json"), std::string::npos) << r.out;
    const auto plan = AttentionPlan::load(dir + "/p.json");
    const WanConfig cfg = read_model_config(find_model_folder(kTiny));
    const TokenGrid grid{3, 4, 6};
    EXPECT_LE(plan_attention_flops(plan, cfg.num_heads, cfg.head_dim(), grid).fraction(), 0.8 + 1e-9);
    EXPECT_EQ(plan, select_rates(tiny_table(), cfg, grid, 0.8).plan);

    auto fails = [&](const std::string& args, const std::string& needle) {
        auto q = testing::run_surgeon("plan knapsack --model " + kTiny + " --errors " + dir + "/t.json " + args + " --out " +
                                      dir + "/x.json");
        EXPECT_EQ(q.exit_code, 1) << args;
        EXPECT_NE(q.err.find(needle), std::string::npos) << q.err;
        EXPECT_EQ(std::count(q.err.begin(), q.err.end(), '\n'), 1) << q.err;
        EXPECT_FALSE(fs::exists(dir + "/x.json"));
    };
    fails("--budget 0.01 --grid 3x4x6", "nothing fits the budget");
    fails("--budget 0.5 --grid 3x4", "--grid: expected FRAMESxHEIGHTxWIDTH");
    fails("--budget 0.5 --grid 3x4x6 --frames 9", "either --grid or --frames/--height/--width");
    fails("--budget -1 --grid 3x4x6", "budget must be a positive fraction");
}

}  // namespace
}  // namespace surgeon
