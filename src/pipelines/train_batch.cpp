// Training batches (see train_batch.h): world clips rendered in parallel over the batch, noise and sigma from a
// per-step generator.
#include "pipelines/train_batch.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include "core/rng.h"
#include "world/prompt.h"
#include "world/world.h"

namespace surgeon {

namespace {

// The prompt to contrast with (swap_contrast) and its kind, or {"", ""} when the sample has nothing of swap_kinds
// to swap.
std::pair<std::string, std::string> swapped_prompt(const TrainConfig& c, const world::WorldSpec& spec, uint64_t seed) {
    std::vector<std::pair<world::WorldSpec, std::string>> options;
    for (const auto& k : c.swap_kinds) {
        if (k == "direction") {
            // The clip played backwards: every direction swapped (when there is one to swap).
            auto rev = spec;
            bool any = false;
            for (auto& o : rev.objects) {
                const auto r = world::reversed(o.motion);
                any = any || r != o.motion;
                o.motion = r;
            }
            if (any) options.emplace_back(std::move(rev), k);
        } else if (k == "gradient" && spec.background.kind != world::BackgroundKind::Solid &&
                   spec.background.first != spec.background.second) {
            auto mirrored = spec;
            std::swap(mirrored.background.first, mirrored.background.second);
            options.emplace_back(std::move(mirrored), k);
        } else if (k == "binding" && spec.objects.size() == 2) {
            // The two objects' colours (or shapes) exchanged: the same words, bound the other way round.
            const auto& a = spec.objects[0];
            const auto& b = spec.objects[1];
            if (a.colour != b.colour) {
                auto sw = spec;
                std::swap(sw.objects[0].colour, sw.objects[1].colour);
                options.emplace_back(std::move(sw), k);
            }
            if (a.shape != b.shape) {
                auto sw = spec;
                std::swap(sw.objects[0].shape, sw.objects[1].shape);
                options.emplace_back(std::move(sw), k);
            }
        }
    }
    if (options.empty()) return {};
    const auto& [sw, kind] = options[splitmix64(seed ^ 0x5a5a) % options.size()];
    return {world::prompt(sw), kind};
}

bool excluded(const TrainConfig& c, const world::WorldSpec& spec) {
    for (const auto& o : spec.objects)
        for (const auto& m : c.exclude_motions)
            if (world::to_string(o.motion) == m) return true;
    return false;
}

}  // namespace

TrainBatch make_train_batch(const TrainConfig& c, int64_t step) {
    TrainBatch b;
    const int64_t B = c.batch;
    std::vector<torch::Tensor> vids(B);
    b.prompts.resize(B);
    std::vector<std::pair<std::string, std::string>> swapped(B);  // (prompt, kind)
    at::parallel_for(0, B, 1, [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) {
            uint64_t seed = world::train_world_seed(c.seed, static_cast<uint64_t>(step * B + i));
            auto spec = world::sample_spec(seed);
            while (excluded(c, spec)) spec = world::sample_spec(seed = splitmix64(seed));
            vids[i] = world::render(spec, c.world);
            const double u = SplitMix64::to_unit(splitmix64(seed ^ 0xc0ffee));
            b.prompts[i] = u < c.cfg_dropout ? "" : world::prompt(spec);
            if (c.swap_contrast > 0 && !b.prompts[i].empty()) swapped[i] = swapped_prompt(c, spec, seed);
        }
    });
    for (int64_t i = 0; i < B; ++i)
        if (!swapped[i].first.empty()) {
            b.swapped_index.push_back(i);
            b.swapped_prompts.push_back(std::move(swapped[i].first));
            b.swapped_kinds.push_back(std::move(swapped[i].second));
        }
    b.videos = torch::stack(vids, 0);
    // Noise and sigma from a per-step CPU generator: identical across resume and devices. Drawn here, on the
    // prefetch thread, so the ~35 ms of CPU randn per batch does not stall the GPU loop.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed * 7919 + static_cast<uint64_t>(step) + 1);
    b.eps = at::randn(b.videos.sizes(), gen);
    b.sigma = c.sigma_sampling == "uniform" ? at::rand({B}, gen)
                                            : torch::sigmoid(at::randn({B}, gen) * c.logit_std + c.logit_mean);
    // Drawn last from the same generator, so runs without it keep their exact noise and sigma streams.
    const auto n_swapped = static_cast<int64_t>(b.swapped_index.size());
    if (c.swap_sigma_min > 0 && n_swapped > 0)
        b.swap_sigma = c.swap_sigma_min + (1.0 - c.swap_sigma_min) * at::rand({n_swapped}, gen);
    if (c.device.rfind("cuda", 0) == 0 && torch::cuda::is_available()) {
        // Page-locked, so the training loop's copies to the GPU are asynchronous (non_blocking) and fast.
        b.videos = b.videos.pin_memory();
        b.eps = b.eps.pin_memory();
    }
    return b;
}

}  // namespace surgeon
