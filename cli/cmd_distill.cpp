// `surgeon distill`: stage 1 on a synth model — distil every (block, option) of an options file from the
// teacher's attention and write the block-error table for `surgeon plan knapsack` (pipelines/distill_synth.h).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "pipelines/distill_synth.h"

namespace surgeon::cli {

namespace {
struct DistillArgs {
    DistillRunConfig c;
    std::string device = "cpu";
};
}  // namespace

void register_distill(CLI::App& app) {
    auto a = std::make_shared<DistillArgs>();
    auto* cmd = app.add_subcommand("distill", "Stage 1: distil each block's feature maps per option, write block_errors.json");
    cmd->add_option("--model", a->c.model, "synth model folder (the teacher)")->required();
    cmd->add_option("--options", a->c.options, "JSON {\"options\": [{\"name\": ..., plan entry keys}, ...]}")->required();
    cmd->add_option("--out", a->c.out, "output folder (block_errors.json, phi/, progress.json)")->required();
    cmd->add_option("--clips", a->c.clips, "training clips of the world")->capture_default_str();
    cmd->add_option("--heldout-clips", a->c.heldout_clips, "held-out clips (the table's errors)")->capture_default_str();
    cmd->add_option("--sigmas", a->c.sigmas, "noise levels each clip is recorded at")->capture_default_str();
    cmd->add_option("--data-seed", a->c.data_seed, "world seed stream of the clips")->capture_default_str();
    cmd->add_option("--steps", a->c.train.steps, "AdamW steps per (block, option)")->capture_default_str();
    cmd->add_option("--lr", a->c.train.lr, "learning rate")->capture_default_str();
    cmd->add_option("--seed", a->c.train.seed, "seed of the feature maps' initial weights")->capture_default_str();
    cmd->add_option("--time-limit", a->c.time_limit_s, "stop cleanly after this many seconds (then --resume)");
    cmd->add_flag("--resume", a->c.resume, "continue the run in --out (same settings)");
    cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
    cmd->callback([a]() {
        a->c.device = parse_device(a->device);
        const auto r = run_distill(a->c);
        if (r.finished)
            std::printf("distilled %lld entries; wrote %s/block_errors.json\n", static_cast<long long>(r.entries_total),
                        a->c.out.c_str());
        else
            std::printf("stopped at the time limit after %lld of %lld entries; --resume continues\n",
                        static_cast<long long>(r.entries_done), static_cast<long long>(r.entries_total));
    });
}

}  // namespace surgeon::cli
