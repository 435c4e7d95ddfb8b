// `surgeon surgery`: the whole recipe of method.md §5, resumable as a whole, on a synth teacher or on a Wan2.1 folder
// (official or diffusers layout; prompts from a file, optional training videos: wan_teacher.h). One implementation:
// the teacher kind only supplies its recordings, stage-3 data, student export and report samples.
//   stage 1  work/stage1/   distil every (block, option) along the teacher's sampling trajectories (stage1_run.h)
//   stage 2  work/plan.json multiple-choice knapsack under the attention-FLOPs budget (stage2_rate_selection.h)
//   student  work/student-init/  teacher weights + distilled phi + plan (student.h)
//   stage 3  work/stage3/   fine-tuning with flow matching on the world's videos, or on a Wan teacher's latents
//                           (videos through the Wan-VAE, or the teacher's samples) (stage3_finetune.h)
//   report   the student itself in OUT (a model folder: `surgeon generate --model OUT` runs it), report.json,
//            report.md, errors.png (stage-1 heat map), curve.png (SynthBench vs attention FLOPs: knapsack and uniform
//            plans), sheet.png (teacher | student rows, same prompts and noise). Wan teachers: PSNR/SSIM of student
//            vs teacher samples on the held-out prompts (SynthBench exists for synth teachers only).
// Each stage skips itself when its output exists, so a killed run continues where it stopped (stages 1 and 3 resume
// mid-way from their checkpoints).
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace surgeon {

struct SurgeryConfig {
    std::string teacher, out;
    double budget = 0.5;          // attention FLOPs of the student / the teacher's
    std::string preset = "quick"; // quick (CPU, minutes) | full (GPU)
    std::string options;          // options JSON for stage 1 and 2 (default: softmax, R2, R4, R8, linear; poly, lse)
    std::string device = "cpu";
    std::string dtype = "bf16";   // stage 3 precision on CUDA (fp32 on the CPU)
    // Overrides of the preset (0 / negative = the preset's).
    int64_t distill_prompts = 0, distill_updates = 0, finetune_steps = -1, eval_samples = 0;
    std::vector<double> curve;     // attention-FLOPs fractions of the curve (default: the preset's)
    // Wan2.1 teachers: prompts (one per line; the last ones held out), optional training videos (paired with the
    // training prompts in name order), the video size of every stage.
    std::string prompts, videos;
    int64_t frames = 81, height = 480, width = 832;
    bool progress = true;
    void validate() const;
};

struct SurgeryResult {
    nlohmann::json report;  // what report.json holds
};

SurgeryResult run_surgery(const SurgeryConfig& config);

}  // namespace surgeon
