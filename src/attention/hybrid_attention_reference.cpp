// Reference twin of the hybrid/linear/chunked cores: the equations of method.md §2–3 evaluated literally, per
// query tile: explicit scores s_ij, explicit masks T_S(i) and T_L(i), c_i per stabiliser, and the linear kernel
// phi_q(q_i)^T phi_k(k_j) summed over T_L(i). Float32 math (float64 for float64 inputs); memory O(tile * N).
#include <cmath>

#include "attention/hybrid_attention.h"
#include "core/error.h"

namespace surgeon {
using torch::Tensor;

namespace {

// Masks of one query tile [t, N] (bool): softmax keys T_S(i) and linear keys T_L(i).
std::pair<Tensor, Tensor> key_sets(const PlanEntry& e, const TokenGrid& grid, int64_t q0, int64_t t,
                                   const torch::Device& dev) {
    const int64_t N = grid.tokens(), HW = grid.tokens_per_frame();
    auto opt = torch::TensorOptions().dtype(torch::kLong).device(dev);
    auto j = torch::arange(N, opt).unsqueeze(0);       // [1, N]
    auto i = torch::arange(q0, q0 + t, opt).unsqueeze(1);  // [t, 1]
    auto all = torch::ones({t, N}, opt.dtype(torch::kBool));
    switch (e.kind) {
        case AttentionKind::Softmax: return {all, ~all};
        case AttentionKind::Linear: return {~all, all};
        case AttentionKind::Hybrid: {
            auto s = (j.remainder(e.rate) == 0).expand({t, N});  // same softmax keys for every query
            return {s, ~s};
        }
        case AttentionKind::Chunked: {
            auto fj = j.div(HW, "floor");                       // f(j)   [1, N]
            auto chunk_start = i.div(HW, "floor").div(e.chunk, "floor") * e.chunk;  // t(i)*T_c [t, 1]
            auto lo = chunk_start - e.overlap, hi = chunk_start + e.chunk;
            auto s = (fj >= lo) & (fj < hi);                    // [t, N]
            return {s, e.causal ? (fj < lo).expand({t, N}) : ~s};
        }
    }
    SURGEON_ASSERT(false);
    return {};
}

}  // namespace

Tensor hybrid_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& phi_q,
                                  const Tensor& phi_k, const PlanEntry& e, const TokenGrid& grid, int64_t tile, int64_t q_begin,
                                  int64_t q_count, const Tensor& log_scale) {
    const auto dt = q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    const int64_t N = q.size(1);
    auto qf = q.to(dt).transpose(1, 2), kf = k.to(dt).transpose(1, 2), vf = v.to(dt).transpose(1, 2);  // [B,H,N,D]
    Tensor pq, pk;
    if (e.has_linear_branch()) {
        pq = phi_q.to(dt).transpose(1, 2);  // [B, H, N, D']
        pk = phi_k.to(dt).transpose(1, 2);  // [B, H, N, D']
    }
    const int64_t q_end = q_count < 0 ? N : q_begin + q_count;
    SURGEON_CHECK(q_begin >= 0 && q_begin < q_end && q_end <= N, "hybrid attention reference: query range [{}, {}) "
                  "outside [0, {})", q_begin, q_end, N);
    std::vector<Tensor> outs;
    for (int64_t s = q_begin; s < q_end; s += tile) {
        const int64_t t = std::min(tile, q_end - s);
        auto [in_S, in_L] = key_sets(e, grid, s, t, q.device());  // [t, N] each
        Tensor num = torch::zeros({qf.size(0), qf.size(1), t, vf.size(3)}, qf.options());  // [B, H, t, D]
        Tensor den = torch::zeros({qf.size(0), qf.size(1), t, 1}, qf.options());           // [B, H, t, 1]
        if (e.has_softmax_branch()) {
            auto scores = torch::matmul(qf.narrow(2, s, t), kf.transpose(2, 3)) * scale;  // [B, H, t, N] s_ij
            auto masked = scores.masked_fill(~in_S, -INFINITY);                           // [B, H, t, N]
            auto c = e.stabilizer == Stabilizer::Max || e.kind == AttentionKind::Softmax
                         ? masked.amax(-1, true)          // c_i = max_{j in T_S} s_ij
                         : masked.logsumexp(-1, true);    // c_i = log sum_{j in T_S} exp(s_ij)
            auto w = torch::exp(masked - c);              // [B, H, t, N], 0 outside T_S
            num = num + torch::matmul(w, vf);
            den = den + w.sum(-1, true);
        }
        if (e.has_linear_branch()) {
            auto kern = torch::matmul(pq.narrow(2, s, t), pk.transpose(2, 3)) * in_L;  // [B, H, t, N] phi_q^T phi_k
            if (log_scale.defined()) {  // lambda_h(i) = exp(s_h) / max(1, |T_L(i)|)
                auto n_l = in_L.sum(-1).clamp_min(1).to(dt).view({1, 1, t, 1});                // [1, 1, t, 1]
                kern = kern * (torch::exp(log_scale.to(dt)).view({1, -1, 1, 1}) / n_l);     // [B, H, t, N]
            }
            num = num + torch::matmul(kern, vf);
            den = den + kern.sum(-1, true);
        }
        if (!e.has_softmax_branch()) den = den.clamp_min(1e-30);  // all-zero relu features: 0, not NaN
        outs.push_back(num / den);  // [B, H, t, D]
    }
    return torch::cat(outs, 2).transpose(1, 2);  // [B, N, H, D]
}

}  // namespace surgeon
