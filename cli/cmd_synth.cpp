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
#include "pipelines/synthbench_eval.h"
#include "pipelines/trainer.h"
#include "pipelines/wan_t2v.h"
#include "surgery/student.h"
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
        cmd->add_option("--solver", solver, "sampler (default: the model's)")
            ->check(CLI::IsMember(names_of(kSolverNames)));
        cmd->add_option("--steps", steps, "sampling steps (default: the model's)")->check(CLI::Range(1, 10000));
        cmd->add_option("--shift", shift, "flow shift (default: the model's)")->check(finite_in(0, 1000, true));
        cmd->add_option("--guidance", guidance, "CFG scale, 1 = off (default: the model's)")->check(finite_in(0, 1000));
        cmd->add_option("--eta", eta, "with --solver euler: ancestral steps, fresh noise each step (0 = the ODE, 1 = the most; "
                                      "default: the model's)")->check(finite_in(0, 1));
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
    std::string config, stage, out, device, init_from, dtype;
    std::vector<std::string> set;
    int64_t steps = 0;
    double time_limit = 0;
    bool resume = false;
};
void run_train(const TrainArgs& a) {
    check_output_path(a.out, {}, {a.init_from}, OutputKind::Folder);
    auto c = load_train_config(a.config, a.stage, a.set);
    if (a.steps > 0) c.steps = a.steps;
    if (!a.device.empty()) c.device = a.device;
    if (!a.init_from.empty()) c.init_from = a.init_from;
    if (!a.dtype.empty()) c.dtype = a.dtype;
    parse_device(c.device);
    // A run that fails before its first checkpoint leaves nothing behind (no empty folder, no train_config.json).
    const bool created = !fs::exists(a.out), had_record = fs::exists(fs::path(a.out) / "train_config.json");
    TrainResult r;
    try {
        r = train_synth_model(c, a.out, a.resume, /*progress=*/true, /*stop_after=*/-1, a.time_limit);
    } catch (...) {
        remove_failed_run_outputs(a.out, created, had_record ? std::vector<std::string>{} : std::vector<std::string>{"train_config.json"});
        throw;
    }
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
struct GenerateArgs {
    std::string model, prompt, out, vae, context, trace;
    StudentSpec student;
    int64_t frames = 81, height = 480, width = 832;
    SamplingFlags sampling;
    CommonOptions common;
};
// A synthetic-world model from a prompt; --trace: the model's clean-video prediction x0 = x_i - sigma_i v_i at every
// step, one row each.
void generate_synth(const GenerateArgs& a, const StudentSpec& student, torch::Device device, Precision precision) {
    SURGEON_CHECK(!a.prompt.empty(), "--prompt is required for a synthetic-world model");
    auto m = load_synth_student(a.model, student, device, precision);
    m.dit->set_attention_impl(parse_attention_impl(a.common.attention_impl));
    auto o = a.sampling.resolve(m.settings.sampling);
    o.progress = true;
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
}

// A real Wan2.1 DiT: prompt embeddings from a file (--context), latents decoded by the Wan-VAE.
void generate_wan_from_context(const GenerateArgs& a, const StudentSpec& student, torch::Device device,
                               Precision precision) {
    SURGEON_CHECK(!a.vae.empty() && !a.context.empty(),
                  "{} is a Wan2.1 model folder: --vae DIR and --context FILE (context [1, L, 4096], optional negative_context) are required",
                  a.model);
    SURGEON_CHECK(a.frames % 4 == 1 && a.height % 16 == 0 && a.width % 16 == 0,
                  "--frames must be 4n+1 and --height/--width multiples of 16, got {}x{}x{}", a.frames, a.height, a.width);
    auto in = load_safetensors(a.context);
    auto ctx = require_tensor(in, "context", a.context);
    auto neg = in.count("negative_context") ? in.at("negative_context") : torch::zeros_like(ctx);
    auto model = load_wan_student(a.model, student, device, precision).loaded.model;
    model->set_attention_impl(parse_attention_impl(a.common.attention_impl));
    auto o = a.sampling.resolve(SampleOptions{});
    o.progress = true;
    auto vae = vae::load_vae(a.vae, device);
    SURGEON_CHECK(vae.stats.has_value(), "{}: the VAE has no latent mean/std", a.vae);
    const auto& cfg = model->config();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(a.common.seed);
    const auto [lf, lh, lw] = vae_latent_size(a.frames, a.height, a.width);
    auto noise = at::randn({1, cfg.out_dim, lf, lh, lw}, gen);
    // --eta (ancestral steps): the fresh noise continues the seed's stream after the initial noise.
    auto z = sample_video(model, noise, ctx, neg, o, nullptr, {}, [&](int64_t) { return at::randn(noise.sizes(), gen); });
    torch::NoGradGuard ng;
    auto video = vae.model->decode(vae.stats->denormalize(z.to(device))).clamp(-1, 1).to(torch::kCPU);
    write_video(a.out, video[0]);
    std::printf("wrote %s\n", a.out.c_str());
}

// Synthetic-world models; Wan2.1 folders with a text encoder and a prompt (pipelines/wan_t2v: umT5 -> DiT -> VAE);
// Wan2.1 DiTs with --context and --vae.
void run_generate(const GenerateArgs& a) {
    check_video_extension(a.out);
    auto student = a.student;
    student.seed = a.common.seed;
    check_output_path(a.out, {a.context, student.plan}, {a.model, a.vae, student.phi});
    if (!a.trace.empty()) {
        SURGEON_CHECK(a.trace != a.out, "--trace and --out name the same file '{}'", a.out);
        check_output_path(a.trace, {a.context, student.plan}, {a.model, a.vae, student.phi}, OutputKind::File, "--trace");
    }
    const auto device = parse_device(a.common.device);
    const auto precision = parse_precision(a.common.dtype);
    if (!a.trace.empty())
        SURGEON_CHECK(fs::path(a.trace).extension() == ".png", "--trace writes a PNG contact sheet: expected a .png path, got '{}'", a.trace);
    if (is_synth_model_folder(a.model)) return generate_synth(a, student, device, precision);
    SURGEON_CHECK(a.trace.empty(), "--trace is for synthetic-world models (a Wan2.1 model's x0 is a latent)");
    SURGEON_CHECK(student.phi.empty(), "--phi (distilled feature maps of `surgeon distill`) is for synthetic-world models");
    if (!a.context.empty() || !is_wan_t2v_folder(a.model)) return generate_wan_from_context(a, student, device, precision);
    WanT2VRequest r{a.prompt, "", a.frames, a.height, a.width, a.common.seed, a.sampling.resolve(SampleOptions{}),
                    a.vae, student.plan, device, precision, parse_attention_impl(a.common.attention_impl)};
    r.sampling.progress = true;
    write_video(a.out, generate_wan_t2v(a.model, r));
    std::printf("wrote %s (%s, seed %llu)\n", a.out.c_str(), a.prompt.c_str(), static_cast<unsigned long long>(a.common.seed));
}

// ---------------------------------------------------------------------------------------------- eval
struct EvalArgs {
    std::string model, reference, json_out, sheet;
    StudentSpec student;
    std::vector<double> denoise_sigmas;
    int64_t num_samples = 8, batch = 4;
    SamplingFlags sampling;
    CommonOptions common;
};
void run_eval(const EvalArgs& a) {
    for (const auto& [path, flag] : {std::pair(a.json_out, "--json"), std::pair(a.sheet, "--sheet")})
        if (!path.empty())
            check_output_path(path, {a.student.plan}, {a.model, a.reference, a.student.phi}, OutputKind::File, flag);
    SURGEON_CHECK(a.json_out.empty() || a.json_out != a.sheet, "--json and --sheet name the same file '{}'", a.sheet);
    const auto device = parse_device(a.common.device);
    const auto precision = parse_precision(a.common.dtype);
    auto student = a.student;
    student.seed = a.common.seed;
    auto m = load_synth_student(a.model, student, device, precision);
    m.dit->set_attention_impl(parse_attention_impl(a.common.attention_impl));
    std::optional<SynthModel> ref;
    if (!a.reference.empty()) ref = load_synth_model(a.reference, device, precision);
    EvalOptions o;
    o.num_samples = a.num_samples;
    o.batch = a.batch;
    o.seed = a.common.seed;
    o.sampling = a.sampling.resolve(m.settings.sampling);
    o.denoise_sigmas = a.denoise_sigmas;
    auto r = evaluate_synthbench(m, o, ref ? &*ref : nullptr);
    json& j = r.json;
    j["model"] = a.model;
    if (!student.plan.empty()) j["plan"] = student.plan;
    if (!student.phi.empty()) j["phi"] = student.phi;
    if (ref) j["reference_model"] = a.reference;
    if (!a.json_out.empty()) atomic_write(a.json_out, [&](std::ostream& out) { out << j.dump(1) << "\n"; });
    if (!a.sheet.empty()) write_png(a.sheet, contact_sheet_rows(r.sheet));
    json summary = j;
    summary.erase("samples");
    std::printf("%s\n", summary.dump(1).c_str());
}

}  // namespace

void register_synth_commands(CLI::App& app) {
    {
        auto a = std::make_shared<TrainArgs>();
        auto* cmd = app.add_subcommand("train", "Train a Wan-architecture DiT + text encoder on the synthetic world (flow matching)");
        cmd->add_option("--config", a->config, "training config JSON or curriculum (see configs/)")->required()->check(CLI::ExistingFile);
        cmd->add_option("--stage", a->stage, "with a curriculum: the stage to run (e.g. 14 of configs/synth-teacher-curriculum.json)");
        cmd->add_option("--set", a->set, "override train fields of the config: KEY=VALUE ... (e.g. lr=1e-4 seed=20), checked as the file's");
        cmd->add_option("--out", a->out, "output folder (checkpoint/, model/, loss.csv, loss.png)")->required();
        cmd->add_flag("--resume", a->resume, "continue from OUT/checkpoint if present");
        cmd->add_option("--steps", a->steps, "override the config's step count")
            ->check(CLI::Range(int64_t{1}, int64_t{1000000000}));
        cmd->add_option("--device", a->device, "override the config's device (cpu, cuda)");
        cmd->add_option("--dtype", a->dtype, "override the config's CUDA precision")
            ->check(CLI::IsMember(names_of(kPrecisionNames)));
        cmd->add_option("--init-from", a->init_from,
                        "start from this synth model folder's weights (same architecture) instead of a fresh init");
        cmd->add_option("--time-limit", a->time_limit,
                        "stop after this many seconds (checkpoint + model), continue later with --resume")
            ->check(finite_in(0, 1e9, true));
        cmd->callback([a]() { run_train(*a); });
    }
    {
        auto a = std::make_shared<GenerateArgs>();
        auto* cmd = app.add_subcommand("generate", "Text to video: synthetic-world models, Wan2.1 folders with umT5 (--prompt), or Wan2.1 DiTs with --vae and --context");
        cmd->add_option("--model", a->model, "model folder")->required();
        cmd->add_option("--prompt", a->prompt, "prompt (synthetic-world models; Wan2.1 folders with a text encoder)");
        cmd->add_option("--out", a->out, "output video: .mp4, .gif or .png (contact sheet)")->required();
        cmd->add_option("--trace", a->trace, "also write a PNG: the model's x0 prediction at every sampling step, one row per step (synthetic-world models)");
        cmd->add_option("--vae", a->vae, "Wan-VAE folder (real Wan models)");
        cmd->add_option("--context", a->context, "safetensors with context [1, L, 4096] (+ negative_context) (real Wan models)");
        cmd->add_option("--frames", a->frames, "video frames, 4n+1 (real Wan models)")->capture_default_str();
        cmd->add_option("--height", a->height, "video height (real Wan models)")->capture_default_str();
        cmd->add_option("--width", a->width, "video width (real Wan models)")->capture_default_str();
        add_student_options(cmd, a->student);
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
            ->capture_default_str()
            ->check(CLI::Range(int64_t{1}, int64_t{100000}));
        cmd->add_option("--batch", a->batch, "videos generated at once")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{4096}));
        cmd->add_option("--json", a->json_out, "write the report here");
        cmd->add_option("--sheet", a->sheet, "write a PNG contact sheet of the first 8 videos");
        cmd->add_option("--denoise-sigmas", a->denoise_sigmas,
                        "also report the one-step x0 error at these noise levels (e.g. 0.05 0.2 0.5 0.8)");
        add_student_options(cmd, a->student);
        a->sampling.add(cmd);
        add_common_options(cmd, a->common);
        cmd->callback([a]() { run_eval(*a); });
    }
}

}  // namespace surgeon::cli
