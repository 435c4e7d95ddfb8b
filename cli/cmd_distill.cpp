// `surgeon distill`: stage 1 on a synth teacher — record the teacher along its own sampling trajectories and
// distil every (block, option) of an options file at once; writes the block-error table for `surgeon plan knapsack`
// (surgery/stage1_run.h).
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "surgery/stage1_run.h"

namespace surgeon::cli {

namespace {
struct DistillArgs {
    DistillRunConfig c;
    std::string device = "cpu", loss = "value";
};
}  // namespace

void register_distill(CLI::App& app) {
    auto a = std::make_shared<DistillArgs>();
    auto* cmd = app.add_subcommand("distill", "Stage 1: distil every block's feature maps for every option at once, "
                                              "write block_errors.json");
    cmd->add_option("--teacher,--model", a->c.model, "synth model folder (the teacher)")->required();
    cmd->add_option("--options", a->c.options, "JSON {\"options\": [{\"name\": ..., plan entry keys}, ...]}")->required();
    cmd->add_option("--out", a->c.out, "output folder (block_errors.json, errors.png, phi/, checkpoint/)")->required();
    cmd->add_option("--data", a->c.data, "trajectories (the teacher's own sampling, CFG rows too) or noised "
                                         "(noised world clips)")->capture_default_str();
    cmd->add_option("--prompts", a->c.prompts, "training prompts (world seeds of --data-seed)")->capture_default_str();
    cmd->add_option("--heldout-prompts", a->c.heldout_prompts, "held-out prompts (the table's errors)")
        ->capture_default_str();
    cmd->add_option("--noise-seeds", a->c.noise_seeds, "trajectories per training prompt")->capture_default_str();
    cmd->add_option("--batch", a->c.batch, "trajectories recorded per round")->capture_default_str();
    cmd->add_option("--updates", a->c.updates, "optimiser steps per round (U)")->capture_default_str();
    cmd->add_option("--sample-steps", a->c.sample_steps, "sampler steps of the recorded trajectories (0: the "
                                                         "teacher's)")->capture_default_str();
    cmd->add_option("--sigmas", a->c.sigmas, "noise levels of --data noised")->capture_default_str();
    cmd->add_option("--data-seed", a->c.data_seed, "world seed stream of the prompts")
        ->check(unsigned_integer())->capture_default_str();
    cmd->add_option("--lr", a->c.train.lr, "AdamW learning rate")->capture_default_str();
    cmd->add_option("--loss", a->loss, "value (|y - y_hat|) or score (attention weights)")
        ->check(CLI::IsMember({"value", "score"}))->capture_default_str();
    cmd->add_option("--queries", a->c.train.queries, "queries per update for hybrid/linear options (0: all)")
        ->capture_default_str();
    cmd->add_option("--rows", a->c.train.rows, "batch rows per update, e.g. 1 of each CFG pair (0: all)")
        ->capture_default_str();
    cmd->add_option("--heldout-queries", a->c.heldout_queries, "held-out errors of hybrid/linear options on this many "
                                                               "queries per recorded forward (0: all)")
        ->capture_default_str();
    cmd->add_option("--seed", a->c.train.seed, "seed of the feature maps' initial weights")
        ->check(unsigned_integer())->capture_default_str();
    cmd->add_option("--time-limit", a->c.time_limit_s, "stop cleanly after the round that crosses this many seconds "
                                                       "(then --resume)");
    cmd->add_flag("--resume", a->c.resume, "continue the run in --out (same settings)");
    add_device_option(cmd, a->device);
    cmd->callback([a]() {
        a->c.train.loss = parse_distill_loss(a->loss);
        a->c.validate();
        check_input_file(a->c.options, "--options");
        check_output_path(a->c.out, {a->c.options}, {a->c.model}, OutputKind::Folder);
        a->c.device = parse_device(a->device);
        const bool created = !std::filesystem::exists(a->c.out);
        DistillRunResult r;
        try {
            r = run_distill(a->c);
        } catch (...) {  // a run that fails before its first checkpoint leaves no folder behind
            remove_failed_run_outputs(a->c.out, created, {});
            throw;
        }
        if (r.finished)
            std::printf("distilled %lld rounds; wrote %s/block_errors.json and %s/errors.png\n",
                        static_cast<long long>(r.rounds_total), a->c.out.c_str(), a->c.out.c_str());
        else
            std::printf("stopped after %lld of %lld rounds; --resume continues\n", static_cast<long long>(r.rounds_done),
                        static_cast<long long>(r.rounds_total));
    });
}

}  // namespace surgeon::cli
