// `surgeon finetune`: stage 3 of the surgery — fine-tune a student folder with the flow-matching loss on the
// synthetic world's videos, optionally plus matching a teacher's velocity (surgery/stage3_finetune.h).
#include <cstdio>

#include "cli/commands.h"
#include "core/fs.h"
#include "core/error.h"
#include "surgery/stage3_finetune.h"

namespace surgeon::cli {

namespace {
struct FinetuneArgs {
    FinetuneConfig c;
    std::string device = "cpu";
};
}  // namespace

void register_finetune(CLI::App& app) {
    auto a = std::make_shared<FinetuneArgs>();
    auto* cmd = app.add_subcommand("finetune", "Stage 3: fine-tune a student (flow matching on the world's videos, optional teacher velocity matching)");
    cmd->add_option("--student", a->c.student, "student folder (synth model with an attention plan)")->required();
    cmd->add_option("--out", a->c.out, "output folder (checkpoint/, model/ = the fine-tuned student, loss.csv, loss.png)")->required();
    cmd->add_option("--steps", a->c.steps, "optimiser steps")->capture_default_str();
    cmd->add_option("--trainable", a->c.trainable,
                    "all (every DiT weight) | attention (self-attention of converted blocks + phi) | phi (feature maps + scale)")
        ->capture_default_str();
    cmd->add_option("--teacher", a->c.teacher, "synth model folder whose velocity the student also matches (frozen)");
    cmd->add_option("--teacher-weight", a->c.teacher_weight, "weight w of w * ||v_student - v_teacher||^2")->capture_default_str();
    cmd->add_option("--lr", a->c.lr, "peak learning rate (AdamW, warm-up + cosine)")->capture_default_str();
    cmd->add_option("--min-lr-ratio", a->c.min_lr_ratio, "final learning rate / peak")->capture_default_str();
    cmd->add_option("--weight-decay", a->c.weight_decay, "AdamW weight decay (matrices only)")->capture_default_str();
    cmd->add_option("--grad-clip", a->c.grad_clip, "global gradient-norm clip")->capture_default_str();
    cmd->add_option("--batch", a->c.batch, "clips per step")->capture_default_str();
    cmd->add_option("--warmup", a->c.warmup, "linear warm-up steps")->capture_default_str();
    cmd->add_option("--data-seed", a->c.data_seed, "world seed stream of the training clips (not 7: SynthBench's)")
        ->check(unsigned_integer())->capture_default_str();
    cmd->add_option("--checkpoint-every", a->c.checkpoint_every, "steps between checkpoints (and model/ refreshes)")->capture_default_str();
    cmd->add_option("--log-every", a->c.log_every, "steps per loss.csv row")->capture_default_str();
    cmd->add_option("--save-dtype", a->c.save_dtype, "precision of model/ weights: fp32 | bf16")->capture_default_str();
    cmd->add_flag("--resume", a->c.resume, "continue the run in --out (same settings)");
    cmd->add_option("--time-limit", a->c.time_limit_s, "stop cleanly after this many seconds (then --resume)");
    add_device_option(cmd, a->device);
    cmd->add_option("--dtype", a->c.dtype, "compute precision on CUDA: fp32 | bf16 | bf16-lean (CPU: fp32)")->capture_default_str();
    cmd->callback([a]() {
        check_output_path(a->c.out, {}, {a->c.student, a->c.teacher}, OutputKind::Folder);
        a->c.device = parse_device(a->device);
        const auto r = run_finetune(a->c);
        if (r.finished)
            std::printf("fine-tuned %lld steps (%lld trainable parameters, %s): final loss %.6g; student in %s\n",
                        static_cast<long long>(r.steps_done), static_cast<long long>(r.trainable_params),
                        a->c.trainable.c_str(), r.final_loss, r.model_dir.c_str());
        else
            std::printf("stopped at the time limit after %lld of %lld steps (loss %.6g); student so far in %s; --resume continues\n",
                        static_cast<long long>(r.steps_done), static_cast<long long>(a->c.steps), r.final_loss,
                        r.model_dir.c_str());
    });
}

}  // namespace surgeon::cli
