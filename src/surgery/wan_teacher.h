// A Wan2.1 folder as the surgery's teacher (official or diffusers layout, detected as `surgeon generate` does):
// what stages 1 and 3 and the report need of it, so the stage loops stay the same for synth and Wan teachers.
//  * prompts: umT5-encoded once (the folder's own text encoder) with Wan's default negative prompt for the
//    unconditional CFG row, cached in work/contexts.safetensors;
//  * stage 1: the teacher's own sampling trajectories (CFG, the sampler's tap sees every forward), one per prompt
//    and seed; the final latents of each trajectory are kept (work/teacher-samples/) as stage 3's data;
//  * stage 3: flow matching on latents (videos of --videos encoded through the Wan-VAE and normalised, or the
//    teacher's own samples) plus the frozen teacher's velocity on the same noisy latents;
//  * report: decoded samples of teacher and student for the held-out prompts, same noise (PSNR/SSIM; SynthBench
//    exists for synth teachers only).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pipelines/sampling.h"
#include "surgery/stage1_run.h"
#include "surgery/stage3_finetune.h"
#include "vae/vae_io.h"

namespace surgeon {

struct WanTeacherSpec {
    std::string folder;                 // the teacher (is_wan_t2v_folder)
    std::vector<std::string> prompts;   // training prompts, then the held-out ones
    int64_t heldout = 1;                // the last `heldout` prompts are held out (stage-1 errors, the report)
    std::string videos;                 // optional: training videos, paired with the training prompts in name order
    int64_t frames = 81, height = 480, width = 832;
    SampleOptions sampling;             // the teacher's sampler (trajectories, samples, the report)
    torch::Device device = torch::kCPU;
    Precision precision = Precision::Float32;  // the teacher's forwards (bf16 on CUDA as Wan runs)
    uint64_t seed = 0;                  // noise of trajectory n: splitmix64(seed + n)
};

// Reads a prompts file: one prompt per non-empty line (trimmed). One line error when missing or empty.
std::vector<std::string> read_prompts_file(const std::string& path);

class WanTeacher {
public:
    // Checks the folder, the sizes and the videos (one-line errors); encodes the prompts (cached in `work`).
    WanTeacher(const WanTeacherSpec& spec, const std::string& work);
    const WanConfig& config() const { return cfg_; }
    TokenGrid grid() const;
    int64_t training_prompts() const { return static_cast<int64_t>(spec_.prompts.size()) - spec_.heldout; }
    // What a resumed stage must share with the run (prompts, sizes, sampler, videos).
    nlohmann::json settings() const;

    // Stage 1: trajectory n of the training prompts is prompt n's sampling from seed n; held out: the last prompts.
    Stage1Source stage1_source(int64_t sample_steps);
    // Stage 3 on `config.student` (a Wan student folder): clean latents from --videos or the teacher's samples.
    FinetuneResult finetune(const FinetuneConfig& config, int64_t stop_after = -1);
    // Decoded videos [3, T, H, W] in [-1, 1] of a teacher or student folder for held-out prompts 0..n-1, the noise
    // of held-out trajectory i (the same for every model).
    std::vector<torch::Tensor> heldout_videos(const std::string& model, int64_t n, int64_t steps);

private:
    torch::Tensor noise(uint64_t index) const;  // [1, z, F', h, w]
    torch::Tensor context(int64_t prompt) const;  // [1, N, text_dim]; -1: the negative prompt
    // The teacher's sample for training prompt n (final latents, normalised), cached in work/teacher-samples.
    torch::Tensor teacher_sample(int64_t n, int64_t steps);
    // Clean latents and their prompt index for stage 3.
    std::vector<std::pair<torch::Tensor, int64_t>> stage3_latents(int64_t steps);
    vae::LoadedVAE& vae();

    WanTeacherSpec spec_;
    std::string work_;
    WanConfig cfg_;
    torch::Tensor contexts_;  // [P + 1, N, text_dim] on the CPU; the last row is the negative prompt
    WanModel dit_{nullptr};   // loaded on first use
    std::unique_ptr<vae::LoadedVAE> vae_;
    WanModel& teacher_dit();
};

}  // namespace surgeon
