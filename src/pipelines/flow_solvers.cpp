// Flow-matching schedules and solvers. UniPC follows the official fm_solvers_unipc.py (= diffusers'
// UniPCMultistepScheduler) with solver_order 2, bh2, predict_x0, lower_order_final, final sigma 0.
#include "pipelines/flow_solvers.h"

#include <cmath>
#include <deque>
#include <limits>

#include "core/error.h"

namespace surgeon {

SolverKind parse_solver(const std::string& s) { return parse_name(kSolverNames, s, "solver"); }
std::string to_string(SolverKind k) { return name_of(kSolverNames, k); }

namespace {
double f32(double x) { return static_cast<double>(static_cast<float>(x)); }
double shifted(double s, double shift) { return shift * s / (1.0 + (shift - 1.0) * s); }
// numpy.linspace(a, b, n)[k]
double linspace_at(double a, double b, int64_t n, int64_t k) {
    if (n == 1) return a;
    if (k == n - 1) return b;
    return a + (b - a) * static_cast<double>(k) / static_cast<double>(n - 1);
}
}  // namespace

Schedule make_schedule(SolverKind kind, int64_t steps, double shift) {
    SURGEON_CHECK(steps >= 1 && steps <= 10000, "--steps must be in 1..10000, got {}", steps);
    SURGEON_CHECK(std::isfinite(shift) && shift > 0 && shift <= 1000, "--shift must be in (0, 1000], got {}", shift);
    Schedule s;
    const int64_t N = steps;
    switch (kind) {
        case SolverKind::UniPC: {
            // Training sigmas 1 - linspace(1, 1/1000, 1000)[::-1]: sigma_max = float32(0.999), sigma_min = 0.
            const double smax = f32(0.999);
            for (int64_t k = 0; k < N; ++k) {
                const double sig = shifted(linspace_at(smax, 0.0, N + 1, k), shift);
                s.timesteps.push_back(std::floor(sig * 1000.0));  // int64 truncation
                s.sigmas.push_back(f32(sig));
            }
            break;
        }
        case SolverKind::UniPCDiffusers: {
            // Flow sigmas from linspace(1, 1/1000, N+1)[:-1], shifted; a first sigma of 1 becomes 1 - 1e-6.
            for (int64_t k = 0; k < N; ++k) {
                double sig = shifted(linspace_at(1.0, 1.0 / 1000.0, N + 1, k), shift);
                if (sig >= 1.0) sig = 1.0 - 1e-6;
                s.timesteps.push_back(std::floor(sig * 1000.0));
                s.sigmas.push_back(f32(sig));
            }
            break;
        }
        case SolverKind::Euler: {
            // FlowMatchEulerDiscreteScheduler(shift): sigma_min of the shifted 1000-step training grid, then
            // linspace(1, sigma_min, N) shifted once more; timesteps = 1000 * sigma (floats).
            const double smin = shifted(1.0 / 1000.0, shift);
            for (int64_t k = 0; k < N; ++k) {
                const double sig = f32(shifted(linspace_at(1.0, smin, N, k), shift));
                s.sigmas.push_back(sig);
                s.timesteps.push_back(f32(sig * 1000.0));
            }
            break;
        }
    }
    s.sigmas.push_back(0.0);
    return s;
}

torch::Tensor euler_ancestral_step(const torch::Tensor& x, const torch::Tensor& v, double sigma, double sigma_next,
                                   double eta, const torch::Tensor& noise) {
    SURGEON_CHECK(eta >= 0 && eta <= 1, "euler ancestral: eta must be in [0, 1], got {}", eta);
    SURGEON_CHECK(sigma_next > 0 && sigma_next < sigma && sigma <= 1, "euler ancestral: needs 0 < sigma_next < sigma <= 1, got {} -> {}",
                  sigma, sigma_next);
    SURGEON_CHECK(noise.sizes() == x.sizes(), "euler ancestral: noise {} does not match x {}", noise.sizes(), x.sizes());
    const double sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta);
    const double alpha_next = 1 - sigma_next, alpha_down = 1 - sigma_down;
    const double renoise = std::sqrt(std::max(0.0, sigma_next * sigma_next - std::pow(sigma_down * alpha_next / alpha_down, 2)));
    auto x_down = x.to(torch::kFloat32) + (sigma_down - sigma) * v.to(torch::kFloat32);  // Euler to sigma_down
    return (alpha_next / alpha_down) * x_down + renoise * noise.to(x_down.device(), torch::kFloat32);
}

namespace {

class EulerSolver : public FlowSolver {
public:
    explicit EulerSolver(Schedule s) : FlowSolver(std::move(s)) {}
    torch::Tensor step(int64_t i, const torch::Tensor& v, const torch::Tensor& x) override {
        const double dt = schedule_.sigmas[i + 1] - schedule_.sigmas[i];
        return (x.to(torch::kFloat32) + dt * v.to(torch::kFloat32));
    }
};

// UniPC-bh2 multistep, order 2, data (x0) prediction.
class UniPCSolver : public FlowSolver {
public:
    explicit UniPCSolver(Schedule s) : FlowSolver(std::move(s)) {}

    torch::Tensor step(int64_t i, const torch::Tensor& v, const torch::Tensor& x_in) override {
        SURGEON_ASSERT(i == next_);
        ++next_;
        const auto& sig = schedule_.sigmas;
        const int64_t N = schedule_.steps();
        auto x = x_in.to(torch::kFloat32);
        // Model output as x0 prediction, on the uncorrected sample.
        auto m = x - sig[i] * v.to(torch::kFloat32);
        if (i > 0 && last_sample_.defined()) x = corrector(i, m, x);
        outputs_.push_back(m);
        if (outputs_.size() > 2) outputs_.pop_front();
        int64_t order = std::min<int64_t>(2, N - i);
        this_order_ = std::min<int64_t>(order, lower_order_nums_ + 1);
        last_sample_ = x;
        auto out = predictor(i, x);
        if (lower_order_nums_ < 2) ++lower_order_nums_;
        return out;
    }

private:
    static double lambda(double s) {
        if (s <= 0) return std::numeric_limits<double>::infinity();
        return std::log(1.0 - s) - std::log(s);
    }

    // From sigma_i to sigma_{i+1} with m0 = outputs_.back().
    torch::Tensor predictor(int64_t i, const torch::Tensor& x) {
        const auto& sig = schedule_.sigmas;
        const double st = sig[i + 1], s0 = sig[i];
        const torch::Tensor& m0 = outputs_.back();
        if (st <= 0) return m0.clone();  // lambda_t = inf: h_phi_1 = -1, order 1 -> x_t = m0
        const double at = 1.0 - st;
        const double h = lambda(st) - lambda(s0), hh = -h;
        const double h_phi_1 = std::expm1(hh), B_h = std::expm1(hh);
        auto xt = (st / s0) * x - (at * h_phi_1) * m0;
        if (this_order_ == 2) {
            const torch::Tensor& m1 = outputs_[outputs_.size() - 2];
            const double r1 = (lambda(sig[i - 1]) - lambda(s0)) / h;
            auto D1 = (m1 - m0) / r1;
            xt = xt - (at * B_h * 0.5) * D1;  // rhos_p = [0.5] for order 2
        }
        return xt;
    }

    // UniC: correct x_i (model evaluated at it) using last_sample_ = x_{i-1}, m_t = new output.
    torch::Tensor corrector(int64_t i, const torch::Tensor& m_t, const torch::Tensor& x_t) {
        const auto& sig = schedule_.sigmas;
        const double st = sig[i], s0 = sig[i - 1];
        const double at = 1.0 - st;
        const torch::Tensor& m0 = outputs_.back();
        const double h = lambda(st) - lambda(s0), hh = -h;
        const double h_phi_1 = std::expm1(hh), B_h = std::expm1(hh);
        auto xt_ = (st / s0) * last_sample_ - (at * h_phi_1) * m0;
        const auto D1_t = m_t - m0;
        if (this_order_ == 1) return xt_ - (at * B_h * 0.5) * D1_t;
        // Order 2: rks = [r1, 1], R = [[1, 1], [r1, 1]], b_k = h_phi_k * k! / B_h.
        const torch::Tensor& m1 = outputs_[outputs_.size() - 2];
        const double r1 = (lambda(sig[i - 2]) - lambda(s0)) / h;
        auto D1 = (m1 - m0) / r1;
        double h_phi_k = h_phi_1 / hh - 1.0;
        const double b1 = h_phi_k * 1.0 / B_h;
        h_phi_k = h_phi_k / hh - 1.0 / 2.0;
        const double b2 = h_phi_k * 2.0 / B_h;
        // Solve [[1, 1], [r1, 1]] rho = [b1, b2].
        const double det = 1.0 - r1;
        const double rho0 = (b1 - b2) / det, rho1 = (b2 - r1 * b1) / det;
        return xt_ - (at * B_h) * (rho0 * D1 + rho1 * D1_t);
    }

    int64_t next_ = 0, lower_order_nums_ = 0, this_order_ = 1;
    std::deque<torch::Tensor> outputs_;
    torch::Tensor last_sample_;
};

}  // namespace

std::unique_ptr<FlowSolver> make_solver(SolverKind kind, int64_t steps, double shift) {
    auto s = make_schedule(kind, steps, shift);
    if (kind == SolverKind::Euler) return std::make_unique<EulerSolver>(std::move(s));
    return std::make_unique<UniPCSolver>(std::move(s));
}

}  // namespace surgeon
