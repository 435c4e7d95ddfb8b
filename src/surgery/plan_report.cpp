// describe_plan_costs: FLOPs table of a plan against the teacher.
#include "surgery/plan_report.h"

#include <fmt/format.h>

#include "attention/cost_model.h"
#include "surgery/attention_swap.h"

namespace surgeon {

std::string format_flops(double f) {
    const char* units[] = {"FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP"};
    int u = 0;
    while (f >= 1000.0 && u < 5) {
        f /= 1000.0;
        ++u;
    }
    return fmt::format("{:.3g} {}", f, units[u]);
}

std::string describe_plan_costs(const AttentionPlan& plan, const WanConfig& cfg, const TokenGrid& grid) {
    validate_plan(plan, cfg, &grid);
    const auto flops = plan_attention_flops(plan, cfg.num_heads, cfg.head_dim(), grid);
    const double teacher_block = flops.teacher_total / std::max<size_t>(1, plan.blocks.size());
    std::string s = fmt::format(
        "attention plan: {} of {} blocks converted; self-attention FLOPs per forward, batch 1, grid {}x{}x{} = {} "
        "tokens, {} heads x {}\n",
        plan.num_converted(), plan.blocks.size(), grid.frames, grid.height, grid.width, grid.tokens(), cfg.num_heads,
        cfg.head_dim());
    s += fmt::format("{:>5}  {:<36} {:>12} {:>12} {:>12} {:>12} {:>9}\n", "block", "attention", "softmax", "linear",
                     "features", "total", "% teacher");
    for (size_t i = 0; i < plan.blocks.size(); ++i) {
        const auto& f = flops.blocks[i];
        s += fmt::format("{:>5}  {:<36} {:>12} {:>12} {:>12} {:>12} {:>8.1f}%\n", i, plan.blocks[i].describe(),
                         format_flops(f.softmax), format_flops(f.linear_state + f.linear_apply),
                         format_flops(f.feature_maps), format_flops(f.total()), 100.0 * f.total() / teacher_block);
    }
    s += fmt::format("total: {} of the teacher's {} = {:.1f}% of the teacher's attention FLOPs\n",
                     format_flops(flops.total), format_flops(flops.teacher_total), 100.0 * flops.fraction());
    return s;
}

}  // namespace surgeon
