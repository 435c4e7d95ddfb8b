// apply_plan / plan_of: swap self-attention cores per block according to an AttentionPlan.
#include "surgery/attention_swap.h"

#include "attention/hybrid_attention.h"
#include "attention/softmax_attention.h"
#include "core/error.h"
#include "core/rng.h"

namespace surgeon {

std::string phi_prefix(int64_t block) { return fmt::format("blocks.{}.self_attn.attn.", block); }

uint64_t block_seed(uint64_t seed, int64_t block) {
    // splitmix64 of (seed, block): well-separated streams even for consecutive seeds.
    return splitmix64(seed + kSplitMix64Gamma * static_cast<uint64_t>(block));
}

void validate_plan(const AttentionPlan& plan, const WanConfig& cfg, const TokenGrid* grid) {
    validate_plan(plan, cfg.num_layers, cfg.head_dim(), grid);
}

void apply_plan(WanModel& model, const AttentionPlan& plan, uint64_t seed) {
    const auto& cfg = model->config();
    validate_plan(plan, cfg);
    const auto device = model->device();
    for (int64_t i = 0; i < cfg.num_layers; ++i) {
        const auto& e = plan.blocks[i];
        AttentionCore core;
        if (e.kind == AttentionKind::Softmax) {
            core = std::make_shared<SoftmaxAttentionImpl>();
        } else {
            core = std::make_shared<HybridAttentionImpl>(e, cfg.num_heads, cfg.head_dim(), block_seed(seed, i));
            core->to(device);
        }
        core->set_impl(model->attention_impl());
        model->block(i)->self_attn->set_core(core);
    }
}

AttentionPlan plan_of(const WanModel& model) {
    AttentionPlan plan;
    const auto& cfg = model->config();
    for (int64_t i = 0; i < cfg.num_layers; ++i) {
        auto h = std::dynamic_pointer_cast<HybridAttentionImpl>(model->block(i)->self_attn->core());
        plan.blocks.push_back(h ? h->entry() : PlanEntry{});
    }
    return plan;
}

TokenGrid token_grid_for_video(const WanConfig& cfg, int64_t frames, int64_t height, int64_t width) {
    SURGEON_CHECK(frames >= 1 && (frames - 1) % 4 == 0, "video frames: expected 4k+1 (e.g. 81), got {}", frames);
    const auto& p = cfg.patch_size;
    SURGEON_CHECK(height % (8 * p[1]) == 0 && width % (8 * p[2]) == 0,
                  "video size: expected height and width divisible by {} and {}, got {}x{}", 8 * p[1], 8 * p[2],
                  height, width);
    const auto lat = vae_latent_size(frames, height, width);  // the Wan-VAE's 4x8x8 compression
    return token_grid(cfg, lat[0], lat[1], lat[2]);
}

}  // namespace surgeon
