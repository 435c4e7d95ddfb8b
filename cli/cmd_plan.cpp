// `surgeon plan uniform`: write an attention plan that converts the chosen blocks of a model (all by default)
// to one kind (softmax|hybrid|linear|chunked) with one set of options; every other block stays softmax.
// `surgeon plan knapsack`: stage 2, one option per block from a block-error table under a compute budget.
#include <cstdio>
#include <sstream>

#include <fmt/format.h>

#include "attention/attention_plan.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "model/model_io.h"
#include "surgery/attention_swap.h"
#include "surgery/stage2_latency.h"
#include "surgery/stage2_rate_selection.h"

namespace surgeon::cli {

namespace {
struct PlanUniformArgs {
    std::string model, kind = "hybrid", blocks = "all", feature_map = "poly", stabilizer = "lse", out;
    int64_t rate = 2, chunk = 1, overlap = 0, poly_hidden = 0, poly_parts = 2;
    bool causal = false;
};

void run_plan_uniform(const PlanUniformArgs& a, const CLI::App& cmd) {
    check_output_path(a.out, {}, {a.model});
    const WanConfig cfg = read_model_config(find_model_folder(a.model));
    PlanEntry e;
    e.kind = parse_attention_kind(a.kind);
    auto given = [&](const char* flag) { return cmd.get_option(flag)->count() > 0; };
    if (e.kind != AttentionKind::Hybrid)
        SURGEON_CHECK(!given("--rate"), "--rate applies to --kind hybrid only (got --kind {})", a.kind);
    if (e.kind != AttentionKind::Chunked)
        for (const char* f : {"--chunk", "--overlap", "--causal"})
            SURGEON_CHECK(!given(f), "{} applies to --kind chunked only (got --kind {})", f, a.kind);
    if (e.kind == AttentionKind::Softmax)
        for (const char* f : {"--feature-map", "--stabilizer", "--poly-hidden", "--poly-parts"})
            SURGEON_CHECK(!given(f), "{} does not apply to --kind softmax", f);
    e.rate = a.rate;
    e.chunk = a.chunk;
    e.overlap = a.overlap;
    e.causal = a.causal;
    e.feature_map.kind = parse_feature_map_kind(a.feature_map);
    e.feature_map.hidden = a.poly_hidden;
    e.feature_map.parts = a.poly_parts;
    e.stabilizer = parse_stabilizer(a.stabilizer);
    const auto blocks = parse_block_list(a.blocks, cfg.num_layers);
    validate_entry(e.normalized(cfg.head_dim()), cfg.head_dim(), nullptr, "plan");
    const AttentionPlan plan = uniform_plan(cfg.num_layers, cfg.head_dim(), e, blocks);
    validate_plan(plan, cfg);
    plan.save(a.out);
    std::printf("wrote %s: %lld of %lld blocks -> %s\n", a.out.c_str(), static_cast<long long>(plan.num_converted()),
                static_cast<long long>(cfg.num_layers), e.normalized(cfg.head_dim()).describe().c_str());
}
struct PlanKnapsackArgs {
    std::string model, errors, grid, solver = "dp", out, cost = "flops", device = "cpu";
    double budget = 0;
    int64_t frames = 81, height = 480, width = 832, units = 100000, latency_iters = 3;
};

// "21x30x52" (tokens: frames x height x width) -> TokenGrid.
TokenGrid parse_grid(const std::string& s) {
    TokenGrid g;
    char x1 = 0, x2 = 0;
    std::istringstream in(s);
    in >> g.frames >> x1 >> g.height >> x2 >> g.width;
    SURGEON_CHECK(in && in.peek() == EOF && x1 == 'x' && x2 == 'x' && g.frames > 0 && g.height > 0 && g.width > 0,
                  "--grid: expected FRAMESxHEIGHTxWIDTH in tokens, e.g. 21x30x52, got '{}'", s);
    check_token_grid(g, "--grid");
    return g;
}

void run_plan_knapsack(const PlanKnapsackArgs& a, const CLI::App& cmd) {
    check_input_file(a.errors, "--errors");
    check_output_path(a.out, {a.errors}, {a.model});
    const WanConfig cfg = read_model_config(find_model_folder(a.model));
    const bool video_given = cmd.get_option("--frames")->count() + cmd.get_option("--height")->count() +
                             cmd.get_option("--width")->count() > 0;
    SURGEON_CHECK(a.grid.empty() || !video_given, "give either --grid or --frames/--height/--width, not both");
    SURGEON_CHECK(a.frames <= 4 * kMaxTokens && a.height <= 65536 && a.width <= 65536,
                  "--frames/--height/--width: at most {} frames and 65536 pixels a side, got {}x{}x{}", 4 * kMaxTokens,
                  a.frames, a.height, a.width);
    const TokenGrid grid = a.grid.empty() ? token_grid_for_video(cfg, a.frames, a.height, a.width) : parse_grid(a.grid);
    check_token_grid(grid, "plan knapsack");
    auto table = BlockErrorTable::load(a.errors);
    SURGEON_CHECK(a.latency_iters > 0 && a.latency_iters <= 1000, "--latency-iters must be in 1..1000, got {}",
                  a.latency_iters);
    if (parse_name(kStageTwoCostNames, a.cost, "cost") == StageTwoCost::Latency) {
        SURGEON_CHECK(!table.costs, "--cost latency: {} already has its own costs", a.errors);
        const auto ms = price_by_latency(table, cfg, grid, LatencyOptions{parse_device(a.device), 1, a.latency_iters});
        std::printf("measured attention latency per block on %s (median of %lld):\n", a.device.c_str(),
                    static_cast<long long>(a.latency_iters));
        for (size_t o = 0; o < ms.size(); ++o) std::printf("  %-12s %10.3f ms\n", table.names[o].c_str(), ms[o]);
    }
    const auto sel = select_rates(table, cfg, grid, a.budget, parse_knapsack_solver(a.solver), a.units);
    std::printf("knapsack (%s%s) over %lld blocks x %zu options, grid %lldx%lldx%lld = %lld tokens, %s\n",
                a.solver.c_str(), a.solver == "dp" ? fmt::format(", {} units", a.units).c_str() : "",
                static_cast<long long>(table.num_blocks()), table.options.size(), static_cast<long long>(grid.frames),
                static_cast<long long>(grid.height), static_cast<long long>(grid.width),
                static_cast<long long>(grid.tokens()), sel.flops ? "attention FLOPs (cost model)" : "the table's costs");
    std::printf("%s", describe_selection(sel, table).c_str());
    sel.plan.save(a.out);
    std::printf("wrote %s: %lld of %lld blocks converted\n", a.out.c_str(), static_cast<long long>(sel.plan.num_converted()),
                static_cast<long long>(cfg.num_layers));
}
}  // namespace

void register_plan_commands(CLI::App& app) {
    auto* plan = app.add_subcommand("plan", "Write attention plans (which blocks get which attention)");
    plan->require_subcommand(1);
    auto a = std::make_shared<PlanUniformArgs>();
    auto* cmd = plan->add_subcommand("uniform", "One attention kind and options for the chosen blocks");
    cmd->add_option("--model", a->model, "model folder (teacher or student) whose config sizes the plan")->required();
    cmd->add_option("--kind", a->kind, "attention kind of the chosen blocks")
        ->check(CLI::IsMember(names_of(kAttentionKindNames)))
        ->capture_default_str();
    cmd->add_option("--rate", a->rate, "hybrid: every R-th token is a softmax key")->capture_default_str();
    cmd->add_option("--chunk", a->chunk, "chunked: T_c latent frames per chunk")->capture_default_str();
    cmd->add_option("--overlap", a->overlap, "chunked: T_o frames of softmax overlap")->capture_default_str();
    cmd->add_flag("--causal", a->causal, "chunked: linear keys only from earlier frames (recurrent)");
    cmd->add_option("--blocks", a->blocks, "all, or block indices i,j,... (others stay softmax)")->capture_default_str();
    cmd->add_option("--feature-map", a->feature_map, "feature map of the linear branch")
        ->check(CLI::IsMember(names_of(kFeatureMapNames)))
        ->capture_default_str();
    cmd->add_option("--poly-hidden", a->poly_hidden, "poly: MLP hidden width (0 = 2 x head dim)")->capture_default_str();
    cmd->add_option("--poly-parts", a->poly_parts, "poly: number of parts P (powers 1..P)")->capture_default_str();
    cmd->add_option("--stabilizer", a->stabilizer, "row stabiliser: max (the paper's) or lse (stock attention kernels)")
        ->check(CLI::IsMember(names_of(kStabilizerNames)))
        ->capture_default_str();
    cmd->add_option("--out", a->out, "plan JSON file to write")->required();
    cmd->callback([a, cmd]() { run_plan_uniform(*a, *cmd); });

    auto k = std::make_shared<PlanKnapsackArgs>();
    auto* kc = plan->add_subcommand(
        "knapsack", "Stage 2: one option per block from a block-error table, least summed error within a budget");
    kc->add_option("--model", k->model, "model folder whose config sizes the plan")->required();
    kc->add_option("--errors", k->errors, "block-error table JSON (format surgeon.block_errors: options, errors[block][option], optional costs)")
        ->required();
    kc->add_option("--budget", k->budget, "fraction of the teacher's attention cost (e.g. 0.6)")->required();
    kc->add_option("--frames", k->frames, "video frames the FLOPs are counted for")->capture_default_str();
    kc->add_option("--height", k->height, "video height")->capture_default_str();
    kc->add_option("--width", k->width, "video width")->capture_default_str();
    kc->add_option("--grid", k->grid, "token grid FxHxW instead of a video size (e.g. 16x16x16 for the synth teacher)");
    kc->add_option("--solver", k->solver, "dp (grid DP: proven optimal, or a stated lower bound) or brute (every combination)")
        ->check(CLI::IsMember(names_of(kKnapsackSolverNames)))
        ->capture_default_str();
    kc->add_option("--units", k->units, "dp: grid steps of the budget")->capture_default_str();
    kc->add_option("--cost", k->cost, "price options by attention FLOPs (cost model) or by their latency measured "
                   "at the grid on --device (then the budget is a fraction of the teacher's measured attention time)")
        ->check(CLI::IsMember(names_of(kStageTwoCostNames)))
        ->capture_default_str();
    kc->add_option("--device", k->device, "--cost latency: cpu, cuda or cuda:N")->capture_default_str();
    kc->add_option("--latency-iters", k->latency_iters, "--cost latency: timed forwards per option (median)")
        ->capture_default_str();
    kc->add_option("--out", k->out, "plan JSON file to write")->required();
    kc->callback([k, kc]() { run_plan_knapsack(*k, *kc); });
}

}  // namespace surgeon::cli
