// `surgeon plan uniform`: write an attention plan that converts the chosen blocks of a model (all by default)
// to one kind (softmax|hybrid|linear|chunked) with one set of options; every other block stays softmax.
#include <cstdio>

#include "attention/attention_plan.h"
#include "cli/commands.h"
#include "core/error.h"
#include "model/model_io.h"
#include "surgery/attention_swap.h"

namespace surgeon::cli {

namespace {
struct PlanUniformArgs {
    std::string model, kind = "hybrid", blocks = "all", feature_map = "poly", stabilizer = "lse", out;
    int64_t rate = 2, chunk = 1, overlap = 0, poly_hidden = 0, poly_parts = 2;
    bool causal = false;
};

void run_plan_uniform(const PlanUniformArgs& a, const CLI::App& cmd) {
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
}  // namespace

void register_plan_commands(CLI::App& app) {
    auto* plan = app.add_subcommand("plan", "Write attention plans (which blocks get which attention)");
    plan->require_subcommand(1);
    auto a = std::make_shared<PlanUniformArgs>();
    auto* cmd = plan->add_subcommand("uniform", "One attention kind and options for the chosen blocks");
    cmd->add_option("--model", a->model, "model folder (teacher or student) whose config sizes the plan")->required();
    cmd->add_option("--kind", a->kind, "softmax, hybrid, linear or chunked")
        ->check(CLI::IsMember({"softmax", "hybrid", "linear", "chunked"}))
        ->capture_default_str();
    cmd->add_option("--rate", a->rate, "hybrid: every R-th token is a softmax key")->capture_default_str();
    cmd->add_option("--chunk", a->chunk, "chunked: T_c latent frames per chunk")->capture_default_str();
    cmd->add_option("--overlap", a->overlap, "chunked: T_o frames of softmax overlap")->capture_default_str();
    cmd->add_flag("--causal", a->causal, "chunked: linear keys only from earlier frames (recurrent)");
    cmd->add_option("--blocks", a->blocks, "all, or block indices i,j,... (others stay softmax)")->capture_default_str();
    cmd->add_option("--feature-map", a->feature_map, "poly, hedgehog, elu1 or relu")
        ->check(CLI::IsMember({"poly", "hedgehog", "elu1", "relu"}))
        ->capture_default_str();
    cmd->add_option("--poly-hidden", a->poly_hidden, "poly: MLP hidden width (0 = 2 x head dim)")->capture_default_str();
    cmd->add_option("--poly-parts", a->poly_parts, "poly: number of parts P (powers 1..P)")->capture_default_str();
    cmd->add_option("--stabilizer", a->stabilizer, "max (the paper's) or lse (stock attention kernels)")
        ->check(CLI::IsMember({"max", "lse"}))
        ->capture_default_str();
    cmd->add_option("--out", a->out, "plan JSON file to write")->required();
    cmd->callback([a, cmd]() { run_plan_uniform(*a, *cmd); });
}

}  // namespace surgeon::cli
