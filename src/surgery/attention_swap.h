// Applying an attention plan to a Wan model: the chosen blocks get a hybrid/linear/chunked core (feature-map
// weights drawn from a seed, registered as `blocks.N.self_attn.attn.phi_{q,k}.*`); the rest keep softmax.
// Teacher weights are untouched. Also reads the plan back off a model.
#pragma once
#include <cstdint>
#include <string>

#include "attention/attention_plan.h"
#include "model/wan_model.h"

namespace surgeon {

// Validates `plan` against the model (and grid, if given) and swaps the self-attention cores. Each converted
// block's phi is drawn from a CPU generator seeded with block_seed(seed, block), then moved to the model's
// device (float32). The cores take the model's current attention impl (fast/reference).
void apply_plan(WanModel& model, const AttentionPlan& plan, uint64_t seed);

// The plan the model currently runs (softmax for blocks whose core is not a HybridAttention).
AttentionPlan plan_of(const WanModel& model);

// Prefix of block i's feature-map parameters in the model's state dict: "blocks.{i}.self_attn.attn.".
std::string phi_prefix(int64_t block);
// Seed of block i's feature maps (distinct, deterministic streams per block).
uint64_t block_seed(uint64_t seed, int64_t block);

// Checks a plan against a model config (block count, head dim) and optionally a token grid.
void validate_plan(const AttentionPlan& plan, const WanConfig& cfg, const TokenGrid* grid = nullptr);

// Token grid of a video of `frames` x `height` x `width` pixels (Wan-VAE stride 4x8x8, then the patch size):
// 81 x 480 x 832 -> 21 x 30 x 52 = 32,760 tokens for Wan2.1.
TokenGrid token_grid_for_video(const WanConfig& cfg, int64_t frames, int64_t height, int64_t width);

}  // namespace surgeon
