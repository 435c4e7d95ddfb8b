// Stage 3 of the surgery (method.md §5.3): fine-tuning a student (a synth model folder whose DiT runs an
// attention plan) with the flow-matching loss ||v(x_sigma, 1000 sigma, c) - (eps - x0)||^2 on the synthetic
// world's videos — the teacher's own data path (make_train_batch: world clips from a data seed that is never
// SynthBench's, logit-normal sigma, CFG dropout) — optionally plus matching a frozen teacher's velocity on the
// same noisy clips: loss = fm + teacher_weight * ||v_student - v_teacher||^2.
//
// One loop for every teacher (run_stage3): the teacher kind supplies the data stream, the student's
// flow-matching term and the teacher's velocity (Stage3Hooks); optimiser, schedule, checkpoints, resume, log and
// export are shared. run_finetune is the synth front end (the trainer's make_train_batch and flow_matching_term);
// the Wan front end lives with the surgery on Wan teachers. Part of surgeon_surgery (above src/pipelines).
//
// What trains (`trainable`; the text encoder is frozen in every mode):
//   all        every DiT parameter
//   attention  the self-attention of the converted blocks: q, k, v, o, norm_q, norm_k and the core's feature maps
//              and scale (blocks.N.self_attn.*)
//   phi        the converted blocks' core parameters only: phi_q.*, phi_k.*, linear_log_scale
//              (blocks.N.self_attn.attn.*)
// AdamW (FlatAdamW; weight decay on tensors of rank >= 2 only), linear warm-up + cosine decay to
// lr * min_lr_ratio, gradient clipping over the trainable set. fp32 master weights; on CUDA the forward runs
// in `dtype` (bf16: Wan's recipe), on the CPU always in fp32.
//
// Output folder `out`:
//   checkpoint/            state.safetensors (all DiT weights fp32, AdamW moments of the trainable set, the loss
//                          history) + progress.json (step, elapsed, partial log window); written atomically
//                          (atomic_write_dir). The data of step s is a function of (data_seed, s) only, so
//                          resuming from it reproduces an uninterrupted run exactly (bitwise on the CPU).
//   model/                 the fine-tuned student (a synth model folder with its plan), refreshed atomically at
//                          every checkpoint and at the end
//   loss.csv, loss.png     step, loss (flow matching), teacher_mse, lr, grad_norm, elapsed_s per log window
//   finetune_config.json   the run's settings; --resume refuses different ones
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

#include <functional>

#include "pipelines/train_losses.h"
#include "pipelines/trainer.h"

namespace surgeon {

struct FinetuneConfig {
    std::string student;  // student folder (synth model whose DiT carries an attention plan)
    std::string out;      // output folder (see above)
    std::string teacher;  // optional: synth model folder for velocity matching (frozen, same architecture)
    int64_t steps = 300, batch = 4, warmup = 20;
    double lr = 1e-4, min_lr_ratio = 0.1, weight_decay = 0, grad_clip = 1.0;
    double teacher_weight = 0;  // loss = fm + teacher_weight * mse(v_student, v_teacher); > 0 needs `teacher`
    std::string trainable = "all";  // all | attention | phi
    // World clips of step s: train_world_seed(data_seed, s * batch + i). Not 7 (SynthBench's held-out seeds) and
    // by default not the bundled teacher's training seeds (0..15) nor `surgeon distill`'s (90).
    uint64_t data_seed = 91;
    // Noise levels sigma = sigmoid(N(logit_mean, logit_std)) and CFG dropout: the bundled teacher's last stages.
    double logit_mean = 1.0, logit_std = 1.0, cfg_dropout = 0.1;
    std::string dtype = "bf16";       // compute precision on CUDA: fp32 | bf16 | bf16-lean (CPU: always fp32)
    std::string save_dtype = "fp32";  // model/ weights: fp32 | bf16 (bf16 rounds away updates below ~0.4%)
    torch::Device device = torch::kCPU;
    int64_t checkpoint_every = 50, log_every = 10;
    bool resume = false;      // continue out/checkpoint (same settings); without it `out` must hold no run
    double time_limit_s = 0;  // > 0: stop cleanly (checkpoint + model/) at the first step that ends after it
    bool progress = true;

    // Range and choice checks of every value (one-line errors); no file access.
    void validate() const;
    // The settings a resumed run must share (not: device, resume, time limit, progress, checkpoint_every).
    nlohmann::json settings_json() const;
};

struct FinetuneResult {
    int64_t steps_done = 0;      // steps finished in the folder (this call and before)
    bool finished = false;       // all `steps` done and model/ holds the final student
    double final_loss = 0;       // mean flow-matching loss over the last log window
    double seconds = 0;          // training time of the whole run (resumed calls included)
    std::string model_dir;       // out/model
    int64_t trainable_params = 0, trainable_tensors = 0;
};

// What a teacher kind gives the stage-3 loop. Every function is called on the loop's thread except `batch`, which
// runs one step ahead on a prefetch thread (it must depend on the step only).
struct Stage3Hooks {
    WanModel dit{nullptr};                                   // the student's DiT: the parameters that train
    std::function<void()> prepare;                           // after the record: device, precision, train mode
    std::function<TrainBatch(int64_t step)> batch;           // data of step s: x0 (videos or latents), eps, sigma
    std::function<FlowMatchingTerm(const TrainBatch&)> forward;  // the student's term (v, loss; xs and sigma kept)
    // The frozen teacher's velocity at fm.xs (called under NoGradGuard; only with teacher_weight > 0).
    std::function<torch::Tensor(const TrainBatch&, const FlowMatchingTerm& fm)> teacher;
    std::function<void(const std::string& dir)> export_model;  // writes the student folder into `dir`
    std::string export_marker;  // a file every exported folder holds (a finished run re-exports when it is missing)
};

// The loop: record, FlatAdamW over `trainable`, warm-up + cosine, clipping, checkpoints, exact resume, export.
FinetuneResult run_stage3(const FinetuneConfig& config, const Stage3Hooks& hooks, int64_t stop_after = -1);

// Runs (or with config.resume, continues) a fine-tuning run of a synth student. `stop_after` > 0 ends it after that many steps
// with a checkpoint, as a kill right after a checkpoint would (tests of exact resume).
FinetuneResult run_finetune(const FinetuneConfig& config, int64_t stop_after = -1);

// Names of the DiT parameters that `trainable` (all | attention | phi) selects, sorted (the plan's converted
// blocks decide attention/phi).
std::vector<std::string> finetune_trainable_names(const WanModel& dit, const std::string& trainable);

// The data stream of a run on a model with these settings: a TrainConfig for make_train_batch (world size,
// batch, data seed, sigma sampling, CFG dropout, position channels, device). Tests make held-out batches from it
// with another data seed.
TrainConfig finetune_data_config(const FinetuneConfig& config, const SynthModel& model);

// Flow-matching loss of `model` on one batch (no gradients): mean ||v - (eps - x0)||^2.
double flow_matching_loss(SynthModel& model, const TrainBatch& batch);

}  // namespace surgeon
