// Recurrent (RNN) form of causal chunked hybrid attention (method.md §3, ReHyAt): running S, z over frames
// that left the overlap window, plus k, v, phi_k of at most T_o earlier frames. Equals the parallel form.
#include <cmath>

#include "attention/hybrid_attention.h"
#include "attention/hybrid_inference.h"
#include "core/error.h"
#include "core/tensor_checks.h"
#include "ops/hybrid_ops.h"

namespace surgeon {
using torch::Tensor;

std::pair<Tensor, Tensor> CausalChunkState::window(const Tensor& kt, const Tensor& vt) const {
    std::vector<Tensor> ks, vs;
    for (const auto& fr : cache_) {
        ks.push_back(fr.k);
        vs.push_back(fr.v);
    }
    ks.push_back(kt);
    vs.push_back(vt);
    return {torch::cat(ks, 2), torch::cat(vs, 2)};
}

CausalChunkState::CausalChunkState(const PlanEntry& entry, int64_t tokens_per_frame, Tensor log_scale)
    : entry_(entry), hw_(tokens_per_frame), log_scale_(std::move(log_scale)) {
    SURGEON_CHECK(entry.kind == AttentionKind::Chunked && entry.causal,
                  "recurrent chunked attention: expected a causal chunked plan entry, got {}", entry.describe());
    SURGEON_CHECK(entry.chunk >= 1 && entry.overlap >= 0, "recurrent chunked attention: bad chunk {} / overlap {}",
                  entry.chunk, entry.overlap);
}

Tensor CausalChunkState::step(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& phi_q,
                              const Tensor& phi_k) {
    const auto f32 = torch::kFloat32;
    SURGEON_CHECK(q.dim() == 4 && q.size(1) % hw_ == 0,
                  "recurrent chunked attention: chunk tokens must be a whole number of frames of {} tokens, got {}",
                  hw_, shape_str(q.sizes()));
    const int64_t n_frames = q.size(1) / hw_;
    SURGEON_CHECK(n_frames >= 1 && n_frames <= entry_.chunk,
                  "recurrent chunked attention: a step takes 1..{} frames, got {}", entry_.chunk, n_frames);
    if (detail::inference_path_applies(q, k, v, phi_q, phi_k, log_scale_)) return step_inference(q, k, v, phi_q, phi_k);
    if (S_.defined() && !z_.defined()) {  // state left by step_inference: [S | z | 0] -> S, z
        const int64_t D = v.size(3);
        z_ = S_.select(3, D).contiguous();
        S_ = S_.narrow(3, 0, D).contiguous();
    }
    auto qt = q.transpose(1, 2), kt = k.transpose(1, 2), vt = v.transpose(1, 2);  // [B, H, n, D]
    auto pq = phi_q.to(f32).transpose(1, 2), pk = phi_k.to(f32).transpose(1, 2);   // [B, H, n, D']
    auto [kw, vw] = window(kt, vt);  // softmax keys: the cached overlap frames, then this chunk
    auto sb = detail::softmax_branch(qt, kw, vw, entry_.stabilizer);  // o [B,H,n,D]
    Tensor y;  // [B, H, n, D]
    if (S_.defined()) {
        y = detail::combine(sb, torch::matmul(pq, S_), torch::matmul(pq, z_.unsqueeze(-1)),
                            detail::linear_weight(log_scale_, frames_folded_ * hw_));
    } else {
        auto zero_num = torch::zeros_like(sb.o);
        auto zero_den = torch::zeros({q.size(0), q.size(2), q.size(1), 1}, sb.o.options());
        y = detail::combine(sb, zero_num, zero_den);
    }
    // Push this chunk's frames, then fold frames that fall out of the next window into S, z.
    for (int64_t f = 0; f < n_frames; ++f)
        cache_.push_back({kt.narrow(2, f * hw_, hw_), vt.narrow(2, f * hw_, hw_), pk.narrow(2, f * hw_, hw_)});
    frames_seen_ += n_frames;
    while (static_cast<int64_t>(cache_.size()) > entry_.overlap) {
        const auto& fr = cache_.front();
        auto dS = torch::matmul(fr.phi_k.to(f32).transpose(-1, -2), fr.v.to(f32));  // [B, H, D', D]
        auto dz = fr.phi_k.to(f32).sum(2);                                  // [B, H, D']
        S_ = S_.defined() ? S_ + dS : dS;
        z_ = z_.defined() ? z_ + dz : dz;
        ++frames_folded_;
        cache_.pop_front();
    }
    return y.transpose(1, 2);  // [B, n, H, D]
}

// Inference (CUDA, no autograd): the state is S_ = [S | z | 0] [B, H, D', D+8] float32 (z_ undefined), folded by
// bf16 tensor-core GEMMs of phi_k^T [v | 1 | 0]; phi_k cached in the inputs' dtype; the softmax branch is one SDPA
// over the cached overlap frames + this chunk (and the row-stats kernel for max); one fused combine pass.
Tensor CausalChunkState::step_inference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& phi_q,
                                        const Tensor& phi_k) {
    torch::NoGradGuard ng;
    const auto dt = v.scalar_type();
    const int64_t B = q.size(0), n = q.size(1), H = q.size(2), D = q.size(3), Dp = phi_k.size(3), Dn = D + 8;
    const int64_t n_frames = n / hw_;
    if (S_.defined() && z_.defined()) {  // state left by the autograd path: S, z -> [S | z | 0]
        S_ = torch::cat({S_, z_.unsqueeze(-1), torch::zeros({B, H, Dp, 7}, S_.options())}, 3);
        z_ = Tensor();
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    auto kt = k.transpose(1, 2), vt = v.transpose(1, 2);                     // [B, H, n, D]
    auto qs = detail::sdpa_operand(q);                                      // [B, H, n, D]
    auto [kc, vc] = window(kt, vt);                                          // [B, H, L, D]
    auto o = at::scaled_dot_product_attention(qs, kc, vc, {}, 0.0, false, scale);  // [B, H, n, D]
    Tensor log_a;
    if (entry_.stabilizer == Stabilizer::Max) log_a = ops::row_log_mass(qs, kc, scale);  // [B, H, n]
    Tensor nd;                                                               // [B, H, n, Dn] float32
    if (S_.defined()) {
        auto S = S_;
        if (log_scale_.defined())
            S = S * (torch::exp(log_scale_.to(S.device(), torch::kFloat32)) /
                     static_cast<double>(std::max<int64_t>(1, frames_folded_ * hw_)))
                        .view({1, H, 1, 1});
        auto pq = phi_q.to(dt).transpose(1, 2).reshape({B * H, n, Dp});
        nd = detail::gemm_f32(pq, S.to(dt).view({B * H, Dp, Dn})).view({B, H, n, Dn});
    } else {
        nd = torch::zeros({B, H, n, Dn}, q.options().dtype(torch::kFloat32));
    }
    auto y = torch::empty({B, n, H, D}, q.options().dtype(torch::kFloat32));
    ops::hybrid_combine_into(o, log_a, 1, nd, y, 0, n);
    auto pk = phi_k.to(dt).transpose(1, 2);                                 // [B, H, n, D'] (view)
    for (int64_t f = 0; f < n_frames; ++f)
        cache_.push_back({kt.narrow(2, f * hw_, hw_), vt.narrow(2, f * hw_, hw_), pk.narrow(2, f * hw_, hw_)});
    frames_seen_ += n_frames;
    while (static_cast<int64_t>(cache_.size()) > entry_.overlap) {
        const auto& fr = cache_.front();
        auto va = detail::augment_values(fr.v.transpose(1, 2));             // [B, H, hw, Dn]
        auto dS = detail::gemm_f32(fr.phi_k.to(dt).reshape({B * H, hw_, Dp}).transpose(1, 2),
                                   va.view({B * H, hw_, Dn}))
                      .view({B, H, Dp, Dn});
        S_ = S_.defined() ? S_ + dS : dS;
        ++frames_folded_;
        cache_.pop_front();
    }
    return y;  // [B, n, H, D] float32
}

Tensor chunked_causal_recurrent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& phi_q,
                                const Tensor& phi_k, const PlanEntry& entry, const TokenGrid& grid, const Tensor& log_scale) {
    SURGEON_CHECK(grid.tokens() == q.size(1), "recurrent chunked attention: grid has {} tokens, q has {}",
                  grid.tokens(), q.size(1));
    const int64_t HW = grid.tokens_per_frame();
    CausalChunkState state(entry, HW, log_scale);
    std::vector<Tensor> outs;
    for (int64_t f0 = 0; f0 < grid.frames; f0 += entry.chunk) {
        const int64_t n = (std::min(f0 + entry.chunk, grid.frames) - f0) * HW;
        outs.push_back(state.step(q.narrow(1, f0 * HW, n), k.narrow(1, f0 * HW, n), v.narrow(1, f0 * HW, n),
                                  phi_q.narrow(1, f0 * HW, n), phi_k.narrow(1, f0 * HW, n)));
    }
    return torch::cat(outs, 1);  // [B, N, H, D]
}

}  // namespace surgeon
