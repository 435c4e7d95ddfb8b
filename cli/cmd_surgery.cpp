// `surgeon surgery`: stages 1 -> 2 -> 3 on a synth teacher or a Wan2.1 folder with good defaults, resumable as a whole
// (surgery/surgery.h). The output folder is the student plus its report.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "model/wan_model.h"
#include "surgery/surgery.h"

namespace surgeon::cli {

void register_surgery(CLI::App& app) {
    auto c = std::make_shared<SurgeryConfig>();
    auto* cmd = app.add_subcommand("surgery", "The whole surgery: distil (stage 1), choose rates under a budget "
                                              "(stage 2), fine-tune (stage 3), report");
    cmd->add_option("--teacher", c->teacher, "synth teacher folder, or a Wan2.1 folder (official or diffusers layout)")
        ->required();
    cmd->add_option("--prompts", c->prompts, "Wan teachers: prompts file, one per line (the last ones held out)");
    cmd->add_option("--videos", c->videos, "Wan teachers: training videos for stage 3 (name order = prompt order; "
                                           "default: the teacher's own samples)");
    cmd->add_option("--frames", c->frames, "Wan teachers: video frames (4n+1)")->capture_default_str();
    cmd->add_option("--height", c->height, "Wan teachers: video height")->capture_default_str();
    cmd->add_option("--width", c->width, "Wan teachers: video width")->capture_default_str();
    cmd->add_option("--budget", c->budget, "attention FLOPs of the student as a fraction of the teacher's")
        ->capture_default_str();
    cmd->add_option("--out", c->out, "output folder: the student, report.json/.md, pictures, work/")->required();
    cmd->add_option("--preset", c->preset, "quick (2-core CPU, minutes) or full (one GPU)")
        ->check(CLI::IsMember({"quick", "full"}))->capture_default_str();
    cmd->add_option("--options", c->options, "options JSON for stages 1-2 (default: softmax, R2, R4, R8, linear)");
    add_device_option(cmd, c->device);
    cmd->add_option("--dtype", c->dtype, "stage-3 precision on CUDA")->check(CLI::IsMember(names_of(kPrecisionNames)))
        ->capture_default_str();
    cmd->add_option("--distill-prompts", c->distill_prompts, "override the preset's stage-1 training prompts");
    cmd->add_option("--distill-updates", c->distill_updates, "override the preset's stage-1 updates per round");
    cmd->add_option("--finetune-steps", c->finetune_steps, "override the preset's stage-3 steps (0: no stage 3)");
    cmd->add_option("--eval-samples", c->eval_samples, "override the preset's SynthBench prompts of the report");
    cmd->add_option("--curve", c->curve, "attention-FLOPs fractions of the quality curve");
    cmd->callback([c]() {
        c->validate();
        parse_device(c->device);
        check_output_path(c->out, {c->options, c->prompts}, {c->teacher, c->videos}, OutputKind::Folder);
        const auto r = run_surgery(*c).report;
        std::printf("student: %s (%.1f%% of the teacher's attention FLOPs)\n", c->out.c_str(),
                    100 * r["attention_flops_fraction"].get<double>());
        if (r["student"].contains("score"))
            std::printf("SynthBench over %lld prompts: teacher %.4f, student %.4f (%.1f%%); ",
                        static_cast<long long>(r["eval_samples"].get<int64_t>()), r["teacher"]["score"].get<double>(),
                        r["student"]["score"].get<double>(), 100 * r["student"]["relative_score"].get<double>());
        else
            std::printf("held-out prompts %lld (SynthBench: synth teachers only); ",
                        static_cast<long long>(r["eval_samples"].get<int64_t>()));
        std::printf("PSNR %.2f dB, SSIM %.4f vs the teacher\nreport: %s/report.md\n", r["student"]["psnr"].get<double>(),
                    r["student"]["ssim"].get<double>(), c->out.c_str());
    });
}

}  // namespace surgeon::cli
