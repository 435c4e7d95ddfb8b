// `surgeon inspect MODEL`: config, weight format, parameter count, dtypes and the tensor table.
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "core/error.h"
#include "core/tensor_checks.h"
#include "model/model_io.h"
#include "surgery/attention_swap.h"
#include "surgery/plan_report.h"
#include "surgery/student.h"

namespace surgeon::cli {

namespace {
struct InspectArgs {
    std::string model;
    StudentSpec student;
    int64_t frames = 81, height = 480, width = 832;
    bool tensors = true;
};

void run_inspect(const InspectArgs& a) {
    auto folder = find_model_folder(a.model);
    auto cfg = read_model_config(folder);
    Metadata meta;
    auto tensors = read_model_tensors(folder, &meta);
    // Validate against the model the config (and plan) imply: strict names, shapes, dtypes.
    auto student = load_wan_student(a.model, a.student);

    std::map<std::string, int64_t> by_dtype;
    int64_t total = 0;
    for (const auto& [n, t] : tensors) {
        by_dtype[dtype_to_safetensors(t.scalar_type())] += t.numel();
        total += t.numel();
    }
    std::printf("model:      %s\n", a.model.c_str());
    std::printf("format:     %s names, %s\n", folder.naming == WeightNaming::Official ? "official" : "diffusers",
                folder.sharded ? "sharded safetensors (index.json)" : "single safetensors file");
    std::printf("weights:    %s\n", folder.weights_path.c_str());
    std::printf("config:     %s\n", cfg.to_json().dump().c_str());
    std::printf("head dim:   %lld, patch volume %lld\n", static_cast<long long>(cfg.head_dim()),
                static_cast<long long>(cfg.patch_volume()));
    std::printf("parameters: %lld in %zu tensors (config formula: %lld)\n", static_cast<long long>(total),
                tensors.size(), static_cast<long long>(cfg.num_parameters()));
    for (const auto& [d, n] : by_dtype) std::printf("dtype:      %s %lld params\n", d.c_str(), static_cast<long long>(n));
    for (const auto& [k, v] : meta) std::printf("metadata:   %s = %.200s\n", k.c_str(), v.c_str());
    if (student.plan) {
        std::printf("plan:       %s\n", student.plan_source.c_str());
        auto grid = token_grid_for_video(cfg, a.frames, a.height, a.width);
        std::printf("%s\n", describe_plan_costs(*student.plan, cfg, grid).c_str());
    }
    if (a.tensors) {
        std::printf("\n%-48s %-6s %s\n", "tensor", "dtype", "shape");
        for (const auto& [n, t] : tensors)
            std::printf("%-48s %-6s %s\n", n.c_str(), dtype_to_safetensors(t.scalar_type()).c_str(),
                        shape_str(t.sizes()).c_str());
    }
}
}  // namespace

void register_inspect(CLI::App& app) {
    auto a = std::make_shared<InspectArgs>();
    auto* cmd = app.add_subcommand("inspect", "Print a model folder's config, parameter count, dtypes and tensors (with --plan: its FLOPs per block)");
    cmd->add_option("model", a->model, "model folder (official or diffusers layout)")->required();
    cmd->add_flag("!--no-tensors", a->tensors, "omit the tensor table");
    add_student_options(cmd, a->student);  // a plan also prints its FLOPs per block and vs the teacher
    cmd->add_option("--frames", a->frames, "video frames for the FLOPs report")->capture_default_str();
    cmd->add_option("--height", a->height, "video height for the FLOPs report")->capture_default_str();
    cmd->add_option("--width", a->width, "video width for the FLOPs report")->capture_default_str();
    cmd->callback([a]() { run_inspect(*a); });
}

}  // namespace surgeon::cli
