// `surgeon forward`: one DiT forward from a tensor file (in.latents, in.timestep, in.context) to out.velocity.
#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "core/tensor_checks.h"
#include "model/model_io.h"
#include "surgery/student.h"

namespace surgeon::cli {

namespace {
struct ForwardArgs {
    std::string model, inputs, out;
    StudentSpec student;
    bool dump_activations = false;
    CommonOptions common;
};

void run_forward(const ForwardArgs& a) {
    check_input_file(a.inputs, "--inputs");
    check_output_path(a.out, {a.inputs, a.student.plan}, {a.model, a.student.phi});
    const auto device = parse_device(a.common.device);
    torch::manual_seed(a.common.seed);
    auto in = load_safetensors(a.inputs);
    const auto& x = require_tensor(in, "in.latents", a.inputs);
    const auto& t = require_tensor(in, "in.timestep", a.inputs);
    const auto& c = require_tensor(in, "in.context", a.inputs);
    auto spec = a.student;
    spec.seed = a.common.seed;
    auto loaded = load_wan_student(a.model, spec, device, parse_precision(a.common.dtype)).loaded;
    loaded.model->set_attention_impl(parse_attention_impl(a.common.attention_impl));
    loaded.model->eval();
    TensorMap out;
    ActivationTap tap = [&](const std::string& name, const torch::Tensor& v) {
        out["act." + name] = v.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    };
    torch::NoGradGuard ng;
    auto v = loaded.model->forward(x, t, c, a.dump_activations ? &tap : nullptr);
    out["out.velocity"] = v.to(torch::kCPU, torch::kFloat32).contiguous();
    SURGEON_CHECK(torch::isfinite(out["out.velocity"]).all().item<bool>(),
                  "the model's output holds NaN or Inf (weights or a feature map out of range); nothing written");
    save_safetensors(a.out, out, {{"surgeon.command", "forward"}, {"surgeon.dtype", a.common.dtype}});
}
}  // namespace

void register_forward(CLI::App& app) {
    auto a = std::make_shared<ForwardArgs>();
    auto* cmd = app.add_subcommand("forward", "One DiT forward: in.latents, in.timestep, in.context -> out.velocity");
    cmd->add_option("--model", a->model, "model folder (official or diffusers layout) or student folder")->required();
    add_student_options(cmd, a->student);
    cmd->add_option("--inputs", a->inputs, "safetensors file with in.latents, in.timestep, in.context")->required();
    cmd->add_option("--out", a->out, "output safetensors file (out.velocity)")->required();
    cmd->add_flag("--dump-activations", a->dump_activations,
                  "also write every observed intermediate as act.<name> (patch_embedding, blocks.N.self_attn, ...)");
    add_common_options(cmd, a->common);
    cmd->callback([a]() { run_forward(*a); });
}

}  // namespace surgeon::cli
