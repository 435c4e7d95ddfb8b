// Stage 1's training (method.md §5.1, block-wise value distillation): train the feature maps phi of a block's
// hybrid/linear/chunked core so that it reproduces the teacher's attention output from the teacher's own q, k, v
// (recorded by stage1_recorder.h; only phi and the linear weight train), and measure the held-out error
// e[block][option] that stage 2 selects with (stage2_rate_selection.h). StageOneTrainer trains every (block,
// option) at once; stage1_run.h drives it along the teacher's sampling trajectories.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attention/attention_plan.h"
#include "attention/hybrid_attention.h"
#include "model/wan_model.h"
#include "surgery/stage1_recorder.h"

namespace surgeon {

struct DistillOptions {
    int64_t steps = 200;       // optimiser steps, cycling through the training samples
    double lr = 1e-3;          // AdamW
    double weight_decay = 0.0;
    uint64_t seed = 0;         // phi's initial weights (as apply_plan draws them)
};

struct DistillResult {
    HybridAttention core{nullptr};  // the trained core (phi inside)
    double heldout_l1_init = 0;     // value_l1 on the held-out samples before training
    double heldout_l1 = 0;          // ... after training: e[block][option]
    std::vector<double> train_l1;   // the training loss per step
};

// Trains phi of a core for `entry` on `train` (only phi; the samples' q, k, v, y are constants) and measures the
// held-out error. Options without parameters (elu1/relu feature maps) are only measured. Throws one line on a
// softmax entry, no samples, or samples of another head count/dim than the core.
DistillResult distill_block(const PlanEntry& entry, const std::vector<AttentionSample>& train,
                            const std::vector<AttentionSample>& heldout, const DistillOptions& options);

enum class DistillLoss { Value, Score };
DistillLoss parse_distill_loss(const std::string& s);  // "value" | "score"
std::string to_string(DistillLoss l);

struct StageOneOptions {
    double lr = 1e-3, weight_decay = 0.0;
    // The linear weight's log-scale learns at scale_lr_mult x lr: it starts at kLinearInitMass of the softmax mass
    // and may need to move by several units of log (R=8 on diffuse attention wants a mass of order 1-10), which at
    // the feature maps' rate would take thousands of steps.
    double scale_lr_mult = 20.0;
    uint64_t seed = 0;          // phi's initial weights (block_seed(seed, block) per block, as apply_plan draws them)
    DistillLoss loss = DistillLoss::Value;
    // > 0: each update trains hybrid/linear options on this many random queries of the sample (against all keys);
    // chunked options always use every query. 0 = every query.
    int64_t queries = 0;
    // > 0: each update uses this many random rows of the sample's batch (e.g. 1 of the CFG pair); 0 = every row.
    int64_t rows = 0;
};

// Stage 1 of method.md §5.1 for every candidate at once: one core per (block, option), all trained together from
// the teacher's recorded attention (blocks are independent, so one recording trains every block and option).
// Only phi and the linear weight train (one AdamW over all cores). Value loss: mean |y - y_hat| (the paper's
// default); score loss: log(1 + sum_{j in T_L} (exp(s_ij - c_i) - lambda phi_q(q_i).phi_k(k_j))^2) averaged over
// queries, for hybrid and linear options (chunked options then fall back to the value loss).
class StageOneTrainer {
public:
    // options: non-softmax entries normalised for head dim D; blocks: the DiT blocks to convert.
    StageOneTrainer(std::vector<int64_t> blocks, std::vector<PlanEntry> options, int64_t num_heads, int64_t head_dim,
                    const StageOneOptions& o, torch::Device device);
    // Sets every core's linear weight from data (HybridAttentionImpl::calibrate_linear_scale), sample per block.
    void calibrate(const std::map<int64_t, AttentionSample>& sample);
    // One optimiser step of every core on one sample per block ([B, N, H, D] each; `gen` picks query subsets).
    // Returns the losses [blocks, options] (on the device; read them back when convenient).
    torch::Tensor update(const std::map<int64_t, AttentionSample>& sample, at::Generator& gen);
    // Held-out mean |y - y_hat| [block][option] over the samples of each block; queries > 0: hybrid/linear options
    // on that many fixed random queries per sample (the same for every option: an unbiased, cheaper estimate).
    std::vector<std::vector<double>> heldout_l1(const std::map<int64_t, std::vector<AttentionSample>>& samples,
                                                int64_t queries = 0);
    HybridAttention core(size_t block_index, size_t option) const { return cores_.at(block_index).at(option); }
    const std::vector<int64_t>& blocks() const { return blocks_; }
    // Every core's parameters ("<option index>/<block>/<name>") and the optimiser state, exactly (resume).
    void save(const std::string& dir) const;
    void load(const std::string& dir);

private:
    torch::Tensor loss(HybridAttentionImpl& core, const AttentionSample& s, at::Generator& gen) const;
    std::vector<int64_t> blocks_;
    std::vector<PlanEntry> options_;
    StageOneOptions o_;
    std::vector<std::vector<HybridAttention>> cores_;  // [block index][option]
    std::unique_ptr<torch::optim::AdamW> opt_;
};

// Loads the phi that `surgeon distill` trained (its output folder: block_errors.json names the options,
// phi/<option>/block<N>.safetensors holds them) into every converted block of `model` (already under a plan,
// e.g. from `surgeon plan knapsack`): the option whose entry equals the block's. Strict: one line naming the
// block when no option matches, a file is missing, or a tensor is missing, unexpected or mis-shaped.
void load_distilled_phi(WanModel& model, const std::string& distill_dir);

}  // namespace surgeon
