// `surgeon sample`: the denoising loop with CFG from a tensor file (in.noise, in.context, in.negative_context).
#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "core/tensor_checks.h"
#include "model/model_io.h"
#include "pipelines/sampling.h"
#include "surgery/student.h"

namespace surgeon::cli {

namespace {
struct SampleArgs {
    std::string model, inputs, out, solver = "unipc";
    StudentSpec student;
    int64_t steps = 50;
    double shift = 5.0, guidance = 5.0;
    bool trace = false;
    CommonOptions common;
};

void run_sample(const SampleArgs& a) {
    check_input_file(a.inputs, "--inputs");
    check_output_path(a.out, {a.inputs, a.student.plan}, {a.model, a.student.phi});
    const auto device = parse_device(a.common.device);
    SampleOptions o;
    o.solver = parse_solver(a.solver);
    o.steps = a.steps;
    o.shift = a.shift;
    o.guidance = a.guidance;
    o.progress = true;
    make_schedule(o.solver, o.steps, o.shift);  // validate options before loading anything
    torch::manual_seed(a.common.seed);
    auto in = load_safetensors(a.inputs);
    const auto& noise = require_tensor(in, "in.noise", a.inputs);
    const auto& ctx = require_tensor(in, "in.context", a.inputs);
    torch::Tensor neg;
    if (o.guidance != 1.0) neg = require_tensor(in, "in.negative_context", a.inputs);
    auto spec = a.student;
    spec.seed = a.common.seed;
    auto loaded = load_wan_student(a.model, spec, device, parse_precision(a.common.dtype)).loaded;
    loaded.model->set_attention_impl(parse_attention_impl(a.common.attention_impl));
    loaded.model->eval();
    TensorMap out;
    StepCallback trace = [&](const StepState& s) {
        out["out.step" + std::to_string(s.step)] = s.next.to(torch::kCPU).contiguous();
    };
    auto x = sample_video(loaded.model, noise, ctx, neg, o, a.trace ? trace : StepCallback());
    out["out.latents"] = x.to(torch::kCPU).contiguous();
    SURGEON_CHECK(torch::isfinite(out["out.latents"]).all().item<bool>(),
                  "the sampled latents hold NaN or Inf (weights or a feature map out of range); nothing written");
    auto sch = make_schedule(o.solver, o.steps, o.shift);
    out["out.sigmas"] = torch::tensor(sch.sigmas, torch::kFloat64).to(torch::kFloat32);
    out["out.timesteps"] = torch::tensor(sch.timesteps, torch::kFloat64).to(torch::kFloat32);
    save_safetensors(a.out, out, {{"surgeon.command", "sample"}, {"surgeon.solver", a.solver}});
}
}  // namespace

void register_sample(CLI::App& app) {
    auto a = std::make_shared<SampleArgs>();
    auto* cmd = app.add_subcommand("sample", "Flow-matching sampling with CFG: in.noise, in.context, in.negative_context -> out.latents");
    cmd->add_option("--model", a->model, "model folder (official or diffusers layout) or student folder")->required();
    add_student_options(cmd, a->student);
    cmd->add_option("--inputs", a->inputs, "safetensors file with in.noise, in.context, in.negative_context")->required();
    cmd->add_option("--out", a->out, "output safetensors file (out.latents; out.stepN with --trace)")->required();
    cmd->add_option("--solver", a->solver, "sampler (unipc: the official one)")
        ->check(CLI::IsMember(names_of(kSolverNames)))
        ->capture_default_str();
    cmd->add_option("--steps", a->steps, "number of sampling steps")->check(CLI::Range(1, 10000))->capture_default_str();
    cmd->add_option("--shift", a->shift, "flow shift")->check(finite_in(0, 1000, true))->capture_default_str();
    cmd->add_option("--guidance", a->guidance, "classifier-free guidance scale (1 = off)")
        ->check(finite_in(0, 1000))
        ->capture_default_str();
    cmd->add_flag("--trace", a->trace, "also write the latents after every step (out.step0, ...)");
    add_common_options(cmd, a->common);
    cmd->callback([a]() { run_sample(*a); });
}

}  // namespace surgeon::cli
