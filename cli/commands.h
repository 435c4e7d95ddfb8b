// Subcommands of the `surgeon` program: each cmd_*.cpp defines one register_* function that declares its
// flags once (name, default, help) and sets the callback. main.cpp wires them and owns error handling.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include <torch/torch.h>

namespace surgeon {
struct StudentSpec;  // surgery/student.h
}

namespace surgeon::cli {

// Flags shared by commands that run a model.
struct CommonOptions {
    std::string device = "cpu";  // cpu | cuda | cuda:N
    std::string dtype = "fp32";  // fp32 | bf16
    uint64_t seed = 0;
    std::string attention_impl = "fast";  // fast | reference
};
void add_common_options(CLI::App* cmd, CommonOptions& o);
void add_device_option(CLI::App* cmd, std::string& device);  // --device cpu | cuda | cuda:N
torch::Device parse_device(const std::string& s);  // clear error when CUDA is asked for but absent

// The student flags, declared once for every command that loads a model under an attention plan: --plan (the
// plan JSON; none = the checkpoint's own plan, if any) and --phi (a `surgeon distill` run's feature maps). The
// command sets spec.seed (phi in neither come from the seed) and loads through surgery/student.h, the one door.
void add_student_options(CLI::App* cmd, StudentSpec& spec, bool plan_required = false);

// Option validators (CLI::Range lets NaN through, and an unsigned option reads "-1" as 2^64 - 1):
// a finite number in [lo, hi] (lo excluded when `lo_open`), and a non-negative integer written in digits.
CLI::Validator finite_in(double lo, double hi, bool lo_open = false);
CLI::Validator unsigned_integer();

void register_inspect(CLI::App& app);
void register_forward(CLI::App& app);
void register_sample(CLI::App& app);
void register_compare(CLI::App& app);
// Registered by other areas (each in its own cmd_*.cpp); declared here so main.cpp stays the only list.
void register_vae_commands(CLI::App& app);    // encode, decode (cmd_vae.cpp)
void register_world_commands(CLI::App& app);  // world, ... (cmd_world.cpp)
void register_plan_commands(CLI::App& app);   // plan (cmd_plan.cpp)
void register_synth_commands(CLI::App& app);  // train, generate, eval (cmd_synth.cpp)
void register_plot_commands(CLI::App& app);   // plot (cmd_plot.cpp)
void register_distill(CLI::App& app);         // distill (cmd_distill.cpp)
void register_text_encode(CLI::App& app);     // text-encode (cmd_text.cpp)
void register_student(CLI::App& app);         // student (cmd_student.cpp)
void register_surgery(CLI::App& app);         // surgery (cmd_surgery.cpp)
void register_finetune(CLI::App& app);        // finetune (cmd_finetune.cpp)

}  // namespace surgeon::cli
