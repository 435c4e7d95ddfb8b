// SynthBench evaluation (see synthbench_eval.h).
#include "pipelines/synthbench_eval.h"

#include <algorithm>

#include "core/error.h"
#include "core/progress.h"
#include "world/fidelity.h"
#include "world/prompt.h"
#include "world/synthbench.h"
#include "world/world.h"

namespace surgeon {
using json = nlohmann::json;

namespace {

// Running sums of one evaluation.
struct EvalTally {
    std::vector<world::BenchScores> generated, ground_truth;
    double psnr_sum = 0, ssim_sum = 0;
    json samples = json::array();  // seed, world seed, prompt and scores of every sample (sheet rows first)
    std::vector<torch::Tensor> sheet;
};

// Samples [first, first + n): generated (and reference) videos scored, ground truth beside them.
void evaluate_batch(SynthModel& m, SynthModel* ref, const EvalOptions& o, int64_t first, int64_t n, EvalTally& t) {
    std::vector<std::string> prompts;
    std::vector<uint64_t> seeds;
    std::vector<world::WorldSpec> specs;
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t seed = o.seed + static_cast<uint64_t>(first + i);
        specs.push_back(world::sample_spec(world::eval_world_seed(seed)));  // held out: no training run draws these
        prompts.push_back(world::prompt(specs.back()));
        seeds.push_back(seed);
    }
    auto vids = m.generate(prompts, seeds, o.sampling);  // [n, 3, T, H, W]
    torch::Tensor rvids;
    if (ref) rvids = ref->generate(prompts, seeds, o.sampling);
    for (int64_t i = 0; i < n; ++i) {
        t.generated.push_back(world::synthbench(vids[i], specs[i]));
        json e = world::to_json(t.generated.back(), /*with_details=*/true);
        e["seed"] = seeds[i];
        e["world_seed"] = world::eval_world_seed(seeds[i]);
        e["prompt"] = prompts[i];
        t.samples.push_back(std::move(e));
        t.ground_truth.push_back(world::synthbench(world::render(specs[i], m.settings.size), specs[i]));
        if (ref) {
            t.psnr_sum += world::psnr(vids[i], rvids[i]);
            t.ssim_sum += world::ssim(vids[i], rvids[i]);
        }
        if (static_cast<int64_t>(t.sheet.size()) < o.sheet_videos) t.sheet.push_back(vids[i]);
    }
}

// One-step denoising error per noise level on ground-truth clips: MSE of x0_pred = x_s - s * v(x_s) against x0
// (values in [-1, 1]), on the first min(num_samples, 8) eval clips. Separates "the model cannot denoise" from
// sampler problems.
json denoise_curve(SynthModel& m, const EvalOptions& o) {
    torch::NoGradGuard ng;
    const int64_t n = std::min<int64_t>(o.num_samples, 8);
    std::vector<std::string> prompts;
    std::vector<torch::Tensor> x0s, eps;
    for (int64_t i = 0; i < n; ++i) {
        auto spec = world::sample_spec(world::eval_world_seed(o.seed + static_cast<uint64_t>(i)));
        prompts.push_back(world::prompt(spec));
        x0s.push_back(world::render(spec, m.settings.size).unsqueeze(0));
        eps.push_back(m.noise(o.seed + static_cast<uint64_t>(i) + 1));
    }
    const auto device = m.dit->device();
    auto x0 = torch::cat(x0s, 0).to(device), e = torch::cat(eps, 0).to(device);
    auto ctx = m.encode(prompts);
    json curve = json::object();
    for (double s : o.denoise_sigmas) {
        auto xs = (1 - s) * x0 + s * e;
        auto v = m.velocity(xs, torch::full({n}, 1000.0 * s), ctx);
        curve[fmt::format("{:g}", s)] = (xs - s * v - x0).pow(2).mean().item<double>();
    }
    return curve;
}

}  // namespace

EvalReport evaluate_synthbench(SynthModel& m, const EvalOptions& o, SynthModel* ref) {
    SURGEON_CHECK(o.num_samples >= 1 && o.batch >= 1, "evaluate_synthbench: num_samples and batch must be >= 1, got {} and {}",
                  o.num_samples, o.batch);
    for (double s : o.denoise_sigmas) SURGEON_CHECK(s > 0 && s <= 1, "--denoise-sigmas must be in (0, 1], got {}", s);
    EvalTally t;
    Progress bar("eval", o.num_samples, o.progress);
    for (int64_t s = 0; s < o.num_samples; s += o.batch) {
        const int64_t n = std::min(o.batch, o.num_samples - s);
        evaluate_batch(m, ref, o, s, n, t);
        bar.update(s + n);
    }
    const auto mean = world::mean_scores(t.generated), gt = world::mean_scores(t.ground_truth);
    EvalReport r;
    r.json = world::to_json(mean);
    if (!o.denoise_sigmas.empty()) r.json["denoise_mse"] = denoise_curve(m, o);
    r.json["ground_truth_score"] = gt.score;
    r.json["ground_truth_metrics"] = world::to_json(gt)["metrics"];
    r.json["num_samples"] = o.num_samples;
    r.json["sampling"] = sampling_to_json(o.sampling);
    r.json["samples"] = std::move(t.samples);
    if (ref) {
        r.json["psnr"] = t.psnr_sum / o.num_samples;
        r.json["ssim"] = t.ssim_sum / o.num_samples;
    }
    r.sheet = std::move(t.sheet);
    return r;
}

}  // namespace surgeon
