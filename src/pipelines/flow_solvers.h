// Flow-matching samplers (x_sigma = (1-sigma) x0 + sigma eps, model predicts v = eps - x0):
//   unipc            the official Wan2.1 FlowUniPCMultistepScheduler (bh2, order 2, predict_x0, integer timesteps)
//   unipc-diffusers  diffusers' UniPCMultistepScheduler(use_flow_sigmas) schedule, same update
//   euler            diffusers' FlowMatchEulerDiscreteScheduler (float timesteps)
// See wan-reference.md §3.3-3.5; each is checked against shared/golden sampler traces.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/names.h"

namespace surgeon {

enum class SolverKind { UniPC, UniPCDiffusers, Euler };
inline constexpr EnumName<SolverKind> kSolverNames[] = {
    {SolverKind::UniPC, "unipc"}, {SolverKind::UniPCDiffusers, "unipc-diffusers"}, {SolverKind::Euler, "euler"}};
SolverKind parse_solver(const std::string& s);
std::string to_string(SolverKind k);

struct Schedule {
    std::vector<double> sigmas;     // N + 1 values (float32-rounded), last is 0
    std::vector<double> timesteps;  // N model timesteps (integers for the UniPC schedules)
    int64_t steps() const { return static_cast<int64_t>(timesteps.size()); }
};
Schedule make_schedule(SolverKind kind, int64_t steps, double shift);

// One solver run: call step(i, v_i, x_i) for i = 0..N-1 in order; returns x_{i+1}.
class FlowSolver {
public:
    virtual ~FlowSolver() = default;
    virtual torch::Tensor step(int64_t i, const torch::Tensor& velocity, const torch::Tensor& sample) = 0;
    const Schedule& schedule() const { return schedule_; }

protected:
    explicit FlowSolver(Schedule s) : schedule_(std::move(s)) {}
    Schedule schedule_;
};
std::unique_ptr<FlowSolver> make_solver(SolverKind kind, int64_t steps, double shift);

// One rectified-flow Euler *ancestral* step (ComfyUI's sample_euler_ancestral_RF; stable-diffusion.cpp's euler_a
// for flow models): an Euler step from sigma to sigma_down = sigma_next (1 + (sigma_next / sigma - 1) eta), then
// x * (1 - sigma_next) / (1 - sigma_down) plus fresh `noise` [like x] scaled so that x_{i+1} again has noise level
// sigma_next. eta = 0 is the plain Euler step, eta = 1 replaces the most noise; sigma_next must be > 0 (the last
// step is a plain Euler step to x0).
torch::Tensor euler_ancestral_step(const torch::Tensor& x, const torch::Tensor& v, double sigma, double sigma_next,
                                   double eta, const torch::Tensor& noise);

}  // namespace surgeon
