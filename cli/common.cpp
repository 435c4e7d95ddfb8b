// Shared CLI flags and parsing helpers.
#include "cli/commands.h"
#include "core/error.h"
#include "model/wan_model.h"
#include "surgery/student.h"

#include <algorithm>
#include <cmath>

namespace surgeon::cli {

void add_device_option(CLI::App* cmd, std::string& device) {
    cmd->add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
}

void add_common_options(CLI::App* cmd, CommonOptions& o) {
    add_device_option(cmd, o.device);
    cmd->add_option("--dtype", o.dtype, "fp32, bf16 (bf16 GEMMs/attention, fp32 residual stream and norms: Wan's recipe) or bf16-lean (all bf16 but norm statistics, time embedding and head)")
        ->check(CLI::IsMember(names_of(kPrecisionNames)))
        ->capture_default_str();
    cmd->add_option("--seed", o.seed, "random seed")->check(unsigned_integer())->capture_default_str();
    cmd->add_option("--attention-impl", o.attention_impl, "fast, or reference (the slow twin of every fast path)")
        ->check(CLI::IsMember(names_of(kAttentionImplNames)))
        ->capture_default_str();
}

void add_student_options(CLI::App* cmd, StudentSpec& spec, bool plan_required) {
    auto* plan = cmd->add_option("--plan", spec.plan,
                                 "attention plan JSON (surgeon plan ...; default: the checkpoint's own plan, if any)");
    if (plan_required) plan->required();
    cmd->add_option("--phi", spec.phi,
                    "output folder of `surgeon distill`: its trained feature maps (default: the checkpoint's, "
                    "else drawn from --seed)");
}

CLI::Validator finite_in(double lo, double hi, bool lo_open) {
    const std::string desc = fmt::format("{}{:g}, {:g}]", lo_open ? "(" : "[", lo, hi);
    return CLI::Validator(
        [lo, hi, lo_open, desc](std::string& s) -> std::string {
            double v = 0;
            size_t used = 0;
            try {
                v = std::stod(s, &used);
            } catch (const std::exception&) {
                return fmt::format("'{}' is not a number", s);
            }
            if (used != s.size() || !std::isfinite(v)) return fmt::format("'{}' is not a finite number", s);
            if (v < lo || v > hi || (lo_open && v == lo)) return fmt::format("{} is outside {}", s, desc);
            return "";
        },
        "FINITE in " + desc);
}

CLI::Validator unsigned_integer() {
    return CLI::Validator(
        [](std::string& s) -> std::string {
            const bool digits = !s.empty() && s.size() <= 20 && std::all_of(s.begin(), s.end(), [](char c) {
                return c >= '0' && c <= '9';
            });
            return digits ? "" : fmt::format("'{}' is not a non-negative integer", s);
        },
        "UINT");
}

torch::Device parse_device(const std::string& s) {
    std::unique_ptr<torch::Device> d;
    try {
        d = std::make_unique<torch::Device>(s);
    } catch (const std::exception&) {
        fail("unknown device '{}' (expected cpu, cuda or cuda:N)", s);
    }
    SURGEON_CHECK(d->is_cpu() || d->is_cuda(), "unsupported device '{}' (expected cpu, cuda or cuda:N)", s);
    if (d->is_cuda()) {
        SURGEON_CHECK(torch::cuda::is_available(), "device '{}' requested but no CUDA GPU is available", s);
        SURGEON_CHECK(!d->has_index() || d->index() < static_cast<int>(torch::cuda::device_count()),
                      "device '{}' does not exist ({} CUDA devices)", s, torch::cuda::device_count());
    }
    return *d;
}

}  // namespace surgeon::cli
