// `surgeon train`, `surgeon generate`, `surgeon eval`: the synthetic-world teacher's training, text-to-video
// generation (synthetic-world models, or real Wan models with --vae and --context) and SynthBench evaluation.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/tensor_checks.h"
#include "core/video_io.h"
#include "model/model_io.h"
#include "pipelines/synth_model.h"
#include "pipelines/trainer.h"
#include "surgery/attention_swap.h"
#include "surgery/distill.h"
#include "surgery/student_checkpoint.h"
#include "vae/vae_io.h"
#include "world/fidelity.h"
#include "world/prompt.h"
#include "world/synthbench.h"

namespace surgeon::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct SamplingFlags {
    std::string solver;
    int64_t steps = 0;
    double shift = 0, guidance = -1, eta = -1;
    void add(CLI::App* cmd) {
        cmd->add_option("--solver", solver, "unipc, unipc-diffusers or euler (default: the model's)")
            ->check(CLI::IsMember({"unipc", "unipc-diffusers", "euler"}));
        cmd->add_option("--steps", steps, "sampling steps (default: the model's)")->check(CLI::Range(1, 10000));
        cmd->add_option("--shift", shift, "flow shift (default: the model's)");
        cmd->add_option("--guidance", guidance, "CFG scale, 1 = off (default: the model's)");
        cmd->add_option("--eta", eta, "with --solver euler: ancestral steps, fresh noise each step (0 = the ODE, 1 = the most; "
                                      "default: the model's)")->check(CLI::Range(0.0, 1.0));
    }
    SampleOptions resolve(SampleOptions o) const {
        if (!solver.empty()) o.solver = parse_solver(solver);
        if (steps > 0) o.steps = steps;
        if (shift > 0) o.shift = shift;
        if (guidance >= 0) o.guidance = guidance;
        if (eta >= 0) o.eta = eta;
        SURGEON_CHECK(o.eta == 0 || o.solver == SolverKind::Euler, "--eta (ancestral steps) needs --solver euler, got {}",
                      to_string(o.solver));
        make_schedule(o.solver, o.steps, o.shift);  // validates
        return o;
    }
};

void check_video_extension(const std::string& out) {
    auto ext = fs::path(out).extension().string();
    SURGEON_CHECK(ext == ".mp4" || ext == ".gif" || ext == ".png", "--out must end in .mp4, .gif or .png, got '{}'", out);
}

// ---------------------------------------------------------------------------------------------- train
struct TrainArgs {
    std::string config, out, device, init_from, dtype;
    int64_t steps = 0;
    double time_limit = 0;
    bool resume = false;
};
void run_train(const TrainArgs& a) {
    json j;
    try {
        j = json::parse(read_text_file(a.config));
    } catch (const json::exception& e) {
        fail("{}: invalid JSON ({})", a.config, e.what());
    }
    auto c = TrainConfig::from_json(j);
    if (a.steps > 0) c.steps = a.steps;
    if (!a.device.empty()) c.device = a.device;
    if (!a.init_from.empty()) c.init_from = a.init_from;
    if (!a.dtype.empty()) c.dtype = a.dtype;
    parse_device(c.device);
    auto r = train_synth_model(c, a.out, a.resume, /*progress=*/true, /*stop_after=*/-1, a.time_limit);
    if (r.steps_done < c.steps) {
        std::printf("stopped at step %lld of %lld after the time limit (%.1f s in all, loss %.5f); checkpoint and "
                    "model in %s; continue with --resume\n",
                    static_cast<long long>(r.steps_done), static_cast<long long>(c.steps), r.seconds, r.final_loss,
                    a.out.c_str());
        return;
    }
    std::printf("trained %lld steps in %.1f s, final loss %.5f; model in %s/model\n", static_cast<long long>(r.steps_done),
                r.seconds, r.final_loss, a.out.c_str());
}

// ---------------------------------------------------------------------------------------------- generate
// A synth model under an optional attention plan (--plan) with optional distilled feature maps (--phi, the
// output folder of `surgeon distill`); phi not given are drawn from the seed.
SynthModel load_synth_cli(const std::string& model, const std::string& plan, const std::string& phi,
                          torch::Device device, Precision precision, uint64_t seed) {
    auto m = load_synth_model(model, device, precision, plan, seed);
    if (!phi.empty()) {
        SURGEON_CHECK(plan_of(m.dit).num_converted() > 0, "--phi: {} runs no attention plan to load them into (give --plan)",
                      model);
        load_distilled_phi(m.dit, phi);
    }
    return m;
}

struct GenerateArgs {
    std::string model, prompt, out, vae, context, trace, plan, phi;
    int64_t frames = 81, height = 480, width = 832;
    SamplingFlags sampling;
    CommonOptions common;
};
void run_generate(const GenerateArgs& a) {
    check_video_extension(a.out);
    const auto device = parse_device(a.common.device);
    const auto precision = parse_precision(a.common.dtype);
    if (!a.trace.empty())
        SURGEON_CHECK(fs::path(a.trace).extension() == ".png", "--trace writes a PNG contact sheet: expected a .png path, got '{}'", a.trace);
    if (is_synth_model_folder(a.model)) {
        SURGEON_CHECK(!a.prompt.empty(), "--prompt is required for a synthetic-world model");
        auto m = load_synth_cli(a.model, a.plan, a.phi, device, precision, a.common.seed);
        m.dit->set_attention_impl(parse_attention_impl(a.common.attention_impl));
        auto o = a.sampling.resolve(m.settings.sampling);
        o.progress = true;
        // --trace: the model's clean-video prediction x0 = x_i - sigma_i v_i at every step, one row each.
        std::vector<torch::Tensor> rows;
        std::string sigmas;
        StepCallback trace = [&](const StepState& s) {
            rows.push_back(s.x0()[0].clamp(-1, 1).to(torch::kCPU));
            sigmas += fmt::format("{}{:.3f}", s.step ? " " : "", s.sigma);
        };
        auto v = m.generate({a.prompt}, {a.common.seed}, o, a.trace.empty() ? StepCallback() : trace);  // [1, 3, T, H, W]
        write_video(a.out, v[0]);
        if (!a.trace.empty()) {
            write_png(a.trace, contact_sheet_rows(rows));
            std::printf("wrote %s: row i = the x0 prediction at step i, sigma %s\n", a.trace.c_str(), sigmas.c_str());
        }
        std::printf("wrote %s (%s, seed %llu, %s %lld steps)\n", a.out.c_str(), a.prompt.c_str(),
                    static_cast<unsigned long long>(a.common.seed), to_string(o.solver).c_str(), static_cast<long long>(o.steps));
        return;
    }
    SURGEON_CHECK(a.trace.empty(), "--trace is for synthetic-world models (a Wan2.1 model's x0 is a latent)");
    // A real Wan2.1 model: prompt embeddings from a file (no umT5 yet), latents decoded by the Wan-VAE.
    SURGEON_CHECK(!a.vae.empty() && !a.context.empty(),
                  "{} is a Wan2.1 model folder: --vae DIR and --context FILE (context [1, L, 4096], optional negative_context) are required",
                  a.model);
    SURGEON_CHECK(a.frames % 4 == 1 && a.height % 16 == 0 && a.width % 16 == 0,
                  "--frames must be 4n+1 and --height/--width multiples of 16, got {}x{}x{}", a.frames, a.height, a.width);
    auto in = load_safetensors(a.context);
    auto ctx = require_tensor(in, "context", a.context);
    auto neg = in.count("negative_context") ? in.at("negative_context") : torch::zeros_like(ctx);
    SURGEON_CHECK(a.phi.empty(), "--phi (distilled feature maps of `surgeon distill`) is for synthetic-world models");
    auto model = load_model_or_student(a.model, a.plan, a.common.seed, device, precision).loaded.model;
    model->set_attention_impl(parse_attention_impl(a.common.attention_impl));
    SampleOptions def;
    auto o = a.sampling.resolve(def);
    o.progress = true;
    auto vae = vae::load_vae(a.vae, device);
    SURGEON_CHECK(vae.stats.has_value(), "{}: the VAE has no latent mean/std", a.vae);
    const auto& cfg = model->config();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(a.common.seed);
    auto noise = at::randn({1, cfg.out_dim, (a.frames - 1) / 4 + 1, a.height / 8, a.width / 8}, gen);
    // --eta (ancestral steps): the fresh noise continues the seed's stream after the initial noise.
    auto z = sample_video(model, noise, ctx, neg, o, nullptr, {}, [&](int64_t) { return at::randn(noise.sizes(), gen); });
    torch::NoGradGuard ng;
    auto video = vae.model->decode(vae.stats->denormalize(z.to(device))).clamp(-1, 1).to(torch::kCPU);
    write_video(a.out, video[0]);
    std::printf("wrote %s\n", a.out.c_str());
}

// ---------------------------------------------------------------------------------------------- eval
struct EvalArgs {
    std::string model, reference, json_out, sheet, plan, phi;
    std::vector<double> denoise_sigmas;
    int64_t num_samples = 8, batch = 4;
    SamplingFlags sampling;
    CommonOptions common;
};
void run_eval(const EvalArgs& a) {
    SURGEON_CHECK(a.num_samples >= 1 && a.num_samples <= 100000, "--num-samples must be in 1..100000");
    SURGEON_CHECK(a.batch >= 1, "--batch must be >= 1");
    const auto device = parse_device(a.common.device);
    const auto precision = parse_precision(a.common.dtype);
    auto m = load_synth_cli(a.model, a.plan, a.phi, device, precision, a.common.seed);
    m.dit->set_attention_impl(parse_attention_impl(a.common.attention_impl));
    std::optional<SynthModel> ref;
    if (!a.reference.empty()) ref = load_synth_model(a.reference, device, precision);
    auto o = a.sampling.resolve(m.settings.sampling);
    std::vector<world::BenchScores> gen_scores, gt_scores;
    double psnr_sum = 0, ssim_sum = 0;
    std::vector<torch::Tensor> sheet_rows;
    json per_sample = json::array();  // seed, world seed, prompt and scores of every sample (sheet rows first)
    Progress bar("eval", a.num_samples);
    for (int64_t s = 0; s < a.num_samples; s += a.batch) {
        const int64_t n = std::min(a.batch, a.num_samples - s);
        std::vector<std::string> prompts;
        std::vector<uint64_t> seeds;
        std::vector<world::WorldSpec> specs;
        for (int64_t i = 0; i < n; ++i) {
            const uint64_t seed = a.common.seed + static_cast<uint64_t>(s + i);
            specs.push_back(world::sample_spec(world::eval_world_seed(seed)));  // held out: no training run draws these
            prompts.push_back(world::prompt(specs.back()));
            seeds.push_back(seed);
        }
        auto vids = m.generate(prompts, seeds, o);  // [n, 3, T, H, W]
        torch::Tensor rvids;
        if (ref) rvids = ref->generate(prompts, seeds, o);
        for (int64_t i = 0; i < n; ++i) {
            gen_scores.push_back(world::synthbench(vids[i], specs[i]));
            json e = world::to_json(gen_scores.back(), /*with_details=*/true);
            e["seed"] = seeds[i];
            e["world_seed"] = world::eval_world_seed(seeds[i]);
            e["prompt"] = prompts[i];
            per_sample.push_back(std::move(e));
            gt_scores.push_back(world::synthbench(world::render(specs[i], m.settings.size), specs[i]));
            if (ref) {
                psnr_sum += world::psnr(vids[i], rvids[i]);
                ssim_sum += world::ssim(vids[i], rvids[i]);
            }
            if (static_cast<int64_t>(sheet_rows.size()) < 8) sheet_rows.push_back(vids[i]);
        }
        bar.update(s + n);
    }
    auto mean = world::mean_scores(gen_scores), gt = world::mean_scores(gt_scores);
    json j = world::to_json(mean);
    if (!a.denoise_sigmas.empty()) {
        // One-step denoising error per noise level on ground-truth clips: MSE of x0_pred = x_s - s * v(x_s)
        // against x0 (values in [-1, 1]). Separates "the model cannot denoise" from sampler problems.
        torch::NoGradGuard ng;
        const int64_t n = std::min<int64_t>(a.num_samples, 8);
        std::vector<std::string> prompts;
        std::vector<torch::Tensor> x0s, eps;
        for (int64_t i = 0; i < n; ++i) {
            auto spec = world::sample_spec(world::eval_world_seed(a.common.seed + static_cast<uint64_t>(i)));
            prompts.push_back(world::prompt(spec));
            x0s.push_back(world::render(spec, m.settings.size).unsqueeze(0));
            eps.push_back(m.noise(a.common.seed + static_cast<uint64_t>(i) + 1));
        }
        auto x0 = torch::cat(x0s, 0).to(device), e = torch::cat(eps, 0).to(device);
        auto ctx = m.encode(prompts);
        json curve = json::object();
        for (double s : a.denoise_sigmas) {
            SURGEON_CHECK(s > 0 && s <= 1, "--denoise-sigmas must be in (0, 1], got {}", s);
            auto xs = (1 - s) * x0 + s * e;
            auto v = m.velocity(xs, torch::full({n}, 1000.0 * s), ctx);
            curve[fmt::format("{:g}", s)] = (xs - s * v - x0).pow(2).mean().item<double>();
        }
        j["denoise_mse"] = curve;
    }
    j["ground_truth_score"] = gt.score;
    j["ground_truth_metrics"] = world::to_json(gt)["metrics"];
    j["num_samples"] = a.num_samples;
    j["sampling"] = sampling_to_json(o);
    j["model"] = a.model;
    if (!a.plan.empty()) j["plan"] = a.plan;
    if (!a.phi.empty()) j["phi"] = a.phi;
    j["samples"] = per_sample;
    if (ref) {
        j["psnr"] = psnr_sum / a.num_samples;
        j["ssim"] = ssim_sum / a.num_samples;
        j["reference_model"] = a.reference;
    }
    if (!a.json_out.empty()) atomic_write(a.json_out, [&](std::ostream& out) { out << j.dump(1) << "\n"; });
    if (!a.sheet.empty()) write_png(a.sheet, contact_sheet_rows(sheet_rows));
    json summary = j;
    summary.erase("samples");
    std::printf("%s\n", summary.dump(1).c_str());
}

}  // namespace

void register_synth_commands(CLI::App& app) {
    {
        auto a = std::make_shared<TrainArgs>();
        auto* cmd = app.add_subcommand("train", "Train a Wan-architecture DiT + text encoder on the synthetic world (flow matching)");
        cmd->add_option("--config", a->config, "training config JSON (see configs/)")->required()->check(CLI::ExistingFile);
        cmd->add_option("--out", a->out, "output folder (checkpoint/, model/, loss.csv, loss.png)")->required();
        cmd->add_flag("--resume", a->resume, "continue from OUT/checkpoint if present");
        cmd->add_option("--steps", a->steps, "override the config's step count");
        cmd->add_option("--device", a->device, "override the config's device (cpu, cuda)");
        cmd->add_option("--dtype", a->dtype, "override the config's CUDA precision")
            ->check(CLI::IsMember({"fp32", "bf16", "bf16-lean"}));
        cmd->add_option("--init-from", a->init_from,
                        "start from this synth model folder's weights (same architecture) instead of a fresh init");
        cmd->add_option("--time-limit", a->time_limit,
                        "stop after this many seconds (checkpoint + model), continue later with --resume")
            ->check(CLI::PositiveNumber);
        cmd->callback([a]() { run_train(*a); });
    }
    {
        auto a = std::make_shared<GenerateArgs>();
        auto* cmd = app.add_subcommand("generate", "Text to video: synthetic-world models (--prompt) or Wan2.1 (--vae, --context)");
        cmd->add_option("--model", a->model, "model folder")->required();
        cmd->add_option("--prompt", a->prompt, "prompt (synthetic-world models)");
        cmd->add_option("--out", a->out, "output video: .mp4, .gif or .png (contact sheet)")->required();
        cmd->add_option("--trace", a->trace, "also write a PNG: the model's x0 prediction at every sampling step, one row per step (synthetic-world models)");
        cmd->add_option("--vae", a->vae, "Wan-VAE folder (real Wan models)");
        cmd->add_option("--context", a->context, "safetensors with context [1, L, 4096] (+ negative_context) (real Wan models)");
        cmd->add_option("--frames", a->frames, "video frames, 4n+1 (real Wan models)")->capture_default_str();
        cmd->add_option("--height", a->height, "video height (real Wan models)")->capture_default_str();
        cmd->add_option("--width", a->width, "video width (real Wan models)")->capture_default_str();
        cmd->add_option("--plan", a->plan, "attention plan JSON (surgeon plan ...); phi drawn from --seed unless --phi");
        cmd->add_option("--phi", a->phi, "output folder of `surgeon distill`: its trained feature maps (synthetic-world models)");
        a->sampling.add(cmd);
        add_common_options(cmd, a->common);
        cmd->callback([a]() { run_generate(*a); });
    }
    {
        auto a = std::make_shared<EvalArgs>();
        auto* cmd = app.add_subcommand("eval", "SynthBench of a synthetic-world model (and PSNR/SSIM against a reference model)");
        cmd->add_option("--model", a->model, "synthetic-world model folder")->required();
        cmd->add_option("--reference-model", a->reference, "reference model for PSNR/SSIM (same prompts and noise)");
        cmd->add_option("--num-samples", a->num_samples,
                        "number of prompts: sample i uses seed + i for its noise and held-out world seed 7e9 + seed + "
                        "i, so --seed 1 shares all but one prompt with --seed 0; a disjoint set starts at seed >= the "
                        "other set's seed + N")
            ->capture_default_str();
        cmd->add_option("--batch", a->batch, "videos generated at once")->capture_default_str();
        cmd->add_option("--json", a->json_out, "write the report here");
        cmd->add_option("--sheet", a->sheet, "write a PNG contact sheet of the first 8 videos");
        cmd->add_option("--denoise-sigmas", a->denoise_sigmas,
                        "also report the one-step x0 error at these noise levels (e.g. 0.05 0.2 0.5 0.8)");
        cmd->add_option("--plan", a->plan, "attention plan JSON (surgeon plan ...); phi drawn from --seed unless --phi");
        cmd->add_option("--phi", a->phi, "output folder of `surgeon distill`: its trained feature maps");
        a->sampling.add(cmd);
        add_common_options(cmd, a->common);
        cmd->callback([a]() { run_eval(*a); });
    }
}

}  // namespace surgeon::cli
