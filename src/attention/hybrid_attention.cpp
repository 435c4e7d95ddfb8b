// Fast composite path of the hybrid/linear/chunked cores: SDPA on the softmax keys (plus, for the max
// stabiliser, a row lse/argmax pass with its own tiled backward), GEMM states with S_L = S_all - S_S
// (chunked: per-frame states with prefix/suffix sums, no cancellation), and the joint-normalised combine.
#include "attention/hybrid_attention.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "attention/hybrid_inference.h"
#include "attention/softmax_attention.h"
#include "core/error.h"
#include "core/tensor_checks.h"
#include "ops/hybrid_ops.h"

namespace surgeon {
using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

// log a_i = lse_i - max_i of s = q k^T * scale over all keys (the max stabiliser's softmax mass, method.md §2),
// from ONE float32 score pass in query tiles, so lse and max come from the same scores and log a >= 0. Backward:
// d log a_i / d s_ij = p_ij - [j = argmax_i], also in tiles (the score matrix is never whole).
struct RowLogMass : public torch::autograd::Function<RowLogMass> {
    static Tensor forward(AutogradContext* ctx, const Tensor& q, const Tensor& k, double scale, int64_t tile) {
        std::vector<Tensor> lse, idx, la;
        auto kt = k.to(torch::kFloat32).transpose(-1, -2);  // [B, H, D, Nk]
        for (int64_t s = 0; s < q.size(2); s += tile) {
            auto sc = torch::matmul(q.narrow(2, s, std::min(tile, q.size(2) - s)).to(torch::kFloat32), kt) *
                      scale;                            // [B, H, t, Nk] float32
            auto [mx, am] = sc.max(-1);                 // [B, H, t]
            auto l = torch::logsumexp(sc, -1);          // [B, H, t]
            lse.push_back(l);
            idx.push_back(am);
            la.push_back(l - mx);
        }
        ctx->save_for_backward({q, k, torch::cat(lse, 2), torch::cat(idx, 2)});
        ctx->saved_data["scale"] = scale;
        ctx->saved_data["tile"] = tile;
        return torch::cat(la, 2);  // [B, H, Nq]
    }
    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const auto &q = saved[0], &k = saved[1], &lse = saved[2], &am = saved[3];
        const double scale = ctx->saved_data["scale"].toDouble();
        const int64_t tile = ctx->saved_data["tile"].toInt();
        const auto& g = grads[0];  // [B, H, Nq]
        if (!g.defined()) return {Tensor(), Tensor(), Tensor(), Tensor()};
        auto kf = k.to(torch::kFloat32);  // [B, H, Nk, D]
        auto gk = torch::zeros_like(kf);  // [B, H, Nk, D]
        std::vector<Tensor> gq;
        for (int64_t s = 0; s < q.size(2); s += tile) {
            const int64_t t = std::min(tile, q.size(2) - s);
            auto qt = q.narrow(2, s, t).to(torch::kFloat32);                                      // [B, H, t, D]
            auto p = torch::exp(torch::matmul(qt, kf.transpose(-1, -2)) * scale -
                                lse.narrow(2, s, t).unsqueeze(-1));                                // [B, H, t, Nk]
            p.scatter_add_(-1, am.narrow(2, s, t).unsqueeze(-1), -torch::ones_like(p.narrow(-1, 0, 1)));  // p - onehot
            auto gp = p * g.narrow(2, s, t).to(torch::kFloat32).unsqueeze(-1);                     // [B, H, t, Nk]
            gq.push_back(torch::matmul(gp, kf) * scale);                                           // [B, H, t, D]
            gk += torch::matmul(gp.transpose(-1, -2), qt) * scale;                                 // [B, H, Nk, D]
        }
        return {torch::cat(gq, 2).to(q.scalar_type()), gk.to(k.scalar_type()), Tensor(), Tensor()};
    }
};

Tensor to_bhnd(const Tensor& x, torch::ScalarType dt) { return x.to(dt).transpose(1, 2); }  // [B, L, H, X] -> [B, H, L, X]

// y = (a*o + num_l) / (a + den_l) for a linear-only branch (o undefined): num_l / den_l, clamped so an
// all-zero feature row (relu) gives 0 instead of NaN.
Tensor linear_only(const Tensor& num_l, const Tensor& den_l) { return num_l / den_l.clamp_min(1e-30); }

}  // namespace

namespace detail {

SoftmaxBranch softmax_branch(const Tensor& q, const Tensor& k, const Tensor& v, Stabilizer stabilizer, int64_t tile) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    auto kc = k.contiguous(), vc = v.contiguous();
    SoftmaxBranch out;
    out.o = at::scaled_dot_product_attention(q, kc, vc, {}, 0.0, false, scale).to(torch::kFloat32);  // [B,H,Nq,D]
    if (stabilizer == Stabilizer::Max) {
        // Inference on CUDA: one-pass row-stats kernel (no backward); otherwise the differentiable tiled pass.
        const bool grad = torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad());
        out.log_a = (q.is_cuda() && !grad ? ops::row_log_mass(q, kc, scale, tile) : RowLogMass::apply(q, kc, scale, tile))
                        .unsqueeze(-1);  // [B, H, Nq, 1], >= 0
    }
    return out;
}

Tensor linear_weight(const Tensor& log_scale, int64_t n_linear) {
    if (!log_scale.defined()) return {};
    return (torch::exp(log_scale.to(torch::kFloat32)) / static_cast<double>(std::max<int64_t>(1, n_linear)))
        .view({1, -1, 1, 1});  // [1, H, 1, 1]
}

Tensor combine(const SoftmaxBranch& s, const Tensor& num_l, const Tensor& den_l, const Tensor& w) {
    auto n = w.defined() ? num_l * w : num_l;  // [B, H, N, D]
    auto d = w.defined() ? den_l * w : den_l;  // [B, H, N, 1]
    if (!s.log_a.defined()) return (s.o + n) / (1 + d);  // lse: softmax weight exactly 1
    auto a = torch::exp(s.log_a);                          // [B, H, N, 1], in [1, Nk]
    return (a * s.o + n) / (a + d);                        // [B, H, N, D]
}

}  // namespace detail

namespace {

Tensor fast_path(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& phi_q, const Tensor& phi_k,
                 const PlanEntry& e, const TokenGrid& grid, const Tensor& log_scale) {
    if (e.kind == AttentionKind::Softmax) return softmax_attention(q, k, v, AttentionImpl::Fast);
    // CUDA without autograd: bf16 tensor-core states over the linear keys, batched SDPA, fused combine.
    if (detail::inference_path_applies(q, k, v, phi_q, phi_k, log_scale))
        return detail::hybrid_inference(q, k, v, phi_q, phi_k, e, grid, log_scale);
    const auto f32 = torch::kFloat32;
    const int64_t N = k.size(1);  // keys (queries may be a subset for the hybrid and linear kinds)
    auto qt = q.transpose(1, 2), kt = k.transpose(1, 2), vt = v.transpose(1, 2);  // [B, H, N, D]
    auto pq = to_bhnd(phi_q, f32), pk = to_bhnd(phi_k, f32);                       // [B, H, N, D']
    auto vf = vt.to(f32);                                                          // [B, H, N, D]
    Tensor y;                                                                      // [B, H, N, D]
    if (e.kind == AttentionKind::Linear || e.kind == AttentionKind::Hybrid) {
        auto S = torch::matmul(pk.transpose(-1, -2), vf);  // [B, H, D', D]  S_all
        auto z = pk.sum(2);                                // [B, H, D']     z_all
        if (e.kind == AttentionKind::Linear) {
            y = linear_only(torch::matmul(pq, S), torch::matmul(pq, z.unsqueeze(-1)));
        } else {
            auto pkS = pk.slice(2, 0, N, e.rate), vS = vf.slice(2, 0, N, e.rate);  // [B, H, ceil(N/R), *]
            S = S - torch::matmul(pkS.transpose(-1, -2), vS);                       // [B, H, D', D]  S_L
            z = z - pkS.sum(2);                                                     // [B, H, D']     z_L
            auto sb = detail::softmax_branch(qt, kt.slice(2, 0, N, e.rate), vt.slice(2, 0, N, e.rate), e.stabilizer);
            const int64_t n_linear = N - (N + e.rate - 1) / e.rate;  // |T_L|
            y = detail::combine(sb, torch::matmul(pq, S), torch::matmul(pq, z.unsqueeze(-1)),
                                detail::linear_weight(log_scale, n_linear));
        }
    } else {  // Chunked
        const int64_t F = grid.frames, HW = grid.tokens_per_frame(), B = q.size(0), H = q.size(2);
        const int64_t Dp = pk.size(3), D = vf.size(3);
        auto pkf = pk.reshape({B, H, F, HW, Dp});                                        // [B, H, F, HW, D']
        auto Sf = torch::matmul(pkf.transpose(-1, -2), vf.reshape({B, H, F, HW, D}));  // [B, H, F, D', D]
        auto zf = pkf.sum(3);                                                            // [B, H, F, D']
        // prefix[f] = sum over frames < f; suffix[f] = sum over frames >= f (both [B, H, F+1, ...]).
        auto prefix_S = torch::cat({torch::zeros_like(Sf.narrow(2, 0, 1)), Sf.cumsum(2)}, 2);
        auto prefix_z = torch::cat({torch::zeros_like(zf.narrow(2, 0, 1)), zf.cumsum(2)}, 2);
        auto suffix_S = torch::cat({Sf.flip({2}).cumsum(2).flip({2}), torch::zeros_like(Sf.narrow(2, 0, 1))}, 2);
        auto suffix_z = torch::cat({zf.flip({2}).cumsum(2).flip({2}), torch::zeros_like(zf.narrow(2, 0, 1))}, 2);
        std::vector<Tensor> outs;
        for (int64_t f0 = 0; f0 < F; f0 += e.chunk) {
            const int64_t f1 = std::min(f0 + e.chunk, F), lo = std::max<int64_t>(0, f0 - e.overlap);
            auto qc = qt.narrow(2, f0 * HW, (f1 - f0) * HW);  // [B, H, n, D]
            auto sb = detail::softmax_branch(qc, kt.narrow(2, lo * HW, (f1 - lo) * HW),
                                             vt.narrow(2, lo * HW, (f1 - lo) * HW), e.stabilizer);
            auto S_L = prefix_S.select(2, lo);  // [B, H, D', D]
            auto z_L = prefix_z.select(2, lo);  // [B, H, D']
            if (!e.causal) {
                S_L = S_L + suffix_S.select(2, f1);
                z_L = z_L + suffix_z.select(2, f1);
            }
            auto pqc = pq.narrow(2, f0 * HW, (f1 - f0) * HW);  // [B, H, n, D']
            const int64_t n_linear = (lo + (e.causal ? 0 : F - f1)) * HW;  // |T_L(i)| of this chunk's queries
            outs.push_back(detail::combine(sb, torch::matmul(pqc, S_L), torch::matmul(pqc, z_L.unsqueeze(-1)),
                                           detail::linear_weight(log_scale, n_linear)));
        }
        y = torch::cat(outs, 2);  // [B, H, N, D]
    }
    return y.transpose(1, 2).to(v.scalar_type());  // [B, N, H, D]
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& phi_q, const Tensor& phi_k,
                  const TokenGrid& grid) {
    SURGEON_CHECK(q.dim() == 4, "hybrid attention: q must be [B, N, H, D], got {}", shape_str(q.sizes()));
    SURGEON_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes(),
                  "hybrid attention: q, k, v must share one shape, got {}, {}, {}", shape_str(q.sizes()),
                  shape_str(k.sizes()), shape_str(v.sizes()));
    SURGEON_CHECK(grid.tokens() == q.size(1), "hybrid attention: token grid {}x{}x{} = {} tokens, but q has {}",
                  grid.frames, grid.height, grid.width, grid.tokens(), q.size(1));
    if (phi_q.defined())
        SURGEON_CHECK(phi_q.dim() == 4 && phi_k.sizes() == phi_q.sizes() && phi_q.size(0) == q.size(0) &&
                          phi_q.size(1) == q.size(1) && phi_q.size(2) == q.size(2),
                      "hybrid attention: phi_q/phi_k must be [B, N, H, D'] matching q {}, got {} and {}", shape_str(q.sizes()),
                      shape_str(phi_q.sizes()), shape_str(phi_k.sizes()));
}

}  // namespace

torch::Tensor hybrid_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& phi_q,
                               const Tensor& phi_k, const PlanEntry& entry, const TokenGrid& grid, AttentionImpl impl,
                               int64_t tile, const Tensor& log_scale) {
    check_inputs(q, k, v, phi_q, phi_k, grid);
    validate_entry(entry, q.size(3), &grid, "hybrid attention");
    SURGEON_CHECK(!entry.has_linear_branch() || phi_q.defined(), "hybrid attention: kind {} needs phi_q and phi_k",
                  to_string(entry.kind));
    if (log_scale.defined())
        SURGEON_CHECK(log_scale.dim() == 1 && log_scale.size(0) == q.size(2),
                      "hybrid attention: log_scale must be [{}] (one per head), got {}", q.size(2),
                      shape_str(log_scale.sizes()));
    if (impl == AttentionImpl::Reference)
        return hybrid_attention_reference(q, k, v, phi_q, phi_k, entry, grid, tile, 0, -1, log_scale);
    return fast_path(q, k, v, phi_q, phi_k, entry, grid, log_scale);
}

torch::Tensor hybrid_attention_query_subset(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& phi_q,
                                           const Tensor& phi_k, const PlanEntry& entry, const TokenGrid& grid,
                                           const Tensor& log_scale) {
    SURGEON_CHECK(entry.kind == AttentionKind::Hybrid || entry.kind == AttentionKind::Linear,
                  "hybrid attention on a query subset: only the hybrid and linear kinds (their key sets do not depend on "
                  "the query), got {}", entry.describe());
    SURGEON_CHECK(q.dim() == 4 && k.dim() == 4 && k.sizes() == v.sizes() && q.size(0) == k.size(0) &&
                      q.size(2) == k.size(2) && q.size(3) == k.size(3) && q.size(1) <= k.size(1),
                  "hybrid attention on a query subset: q [B, n, H, D] with n <= N and k, v [B, N, H, D], got {}, {}, {}",
                  shape_str(q.sizes()), shape_str(k.sizes()), shape_str(v.sizes()));
    SURGEON_CHECK(grid.tokens() == k.size(1), "hybrid attention: token grid has {} tokens, but k has {}", grid.tokens(),
                  k.size(1));
    SURGEON_CHECK(phi_q.defined() && phi_q.size(1) == q.size(1) && phi_k.size(1) == k.size(1),
                  "hybrid attention on a query subset: phi_q must match q and phi_k must match k");
    return fast_path(q, k, v, phi_q, phi_k, entry, grid, log_scale);
}

// ---------------------------------------------------------------------------------------------------------
HybridAttentionImpl::HybridAttentionImpl(const PlanEntry& entry, int64_t num_heads, int64_t head_dim, uint64_t seed)
    : entry_(entry.normalized(head_dim)), num_heads_(num_heads), head_dim_(head_dim) {
    SURGEON_CHECK(entry_.kind != AttentionKind::Softmax,
                  "hybrid attention core: kind softmax has no linear branch (use SoftmaxAttention)");
    validate_entry(entry_, head_dim, nullptr, "hybrid attention core");
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    phi_q = register_module("phi_q", FeatureMap(entry_.feature_map, num_heads, head_dim, gen));
    phi_k = register_module("phi_k", FeatureMap(entry_.feature_map, num_heads, head_dim, gen));
    if (entry_.has_softmax_branch()) {
        torch::NoGradGuard ng;
        const int64_t n = 256;
        auto x = torch::randn({1, n, num_heads, head_dim}, gen, torch::kFloat32);  // [1, n, H, D]
        auto y = torch::randn({1, n, num_heads, head_dim}, gen, torch::kFloat32);
        auto kern = torch::einsum("blhd,bmhd->hlm", {phi_q->forward(x, torch::kFloat32), phi_k->forward(y, torch::kFloat32)});
        auto mean = kern.mean({1, 2}).clamp_min(1e-30);  // [H]
        linear_log_scale = register_parameter("linear_log_scale", std::log(kLinearInitMass) - torch::log(mean));
    }
}

void HybridAttentionImpl::calibrate_linear_scale(const Tensor& q, const Tensor& k, double mass) {
    if (!linear_log_scale.defined()) return;
    SURGEON_CHECK(q.dim() == 4 && q.size(2) == num_heads_ && q.size(3) == head_dim_ && k.sizes() == q.sizes(),
                  "calibrate linear scale: q, k must be [B, N, {}, {}], got {} and {}", num_heads_, head_dim_,
                  shape_str(q.sizes()), shape_str(k.sizes()));
    SURGEON_CHECK(mass > 0 && std::isfinite(mass), "calibrate linear scale: mass must be > 0, got {}", mass);
    torch::NoGradGuard ng;
    const int64_t H = num_heads_, D = head_dim_, n = std::min<int64_t>(4096, q.size(0) * q.size(1));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0x5CA1Eull);
    auto pick = torch::randperm(q.size(0) * q.size(1), gen).narrow(0, 0, n).to(q.device());
    auto qs = q.reshape({-1, H, D}).index_select(0, pick).unsqueeze(0).to(torch::kFloat32);  // [1, n, H, D]
    auto ks = k.reshape({-1, H, D}).index_select(0, pick).unsqueeze(0).to(torch::kFloat32);
    auto fq = phi_q->forward(qs, torch::kFloat32).sum(1), fk = phi_k->forward(ks, torch::kFloat32).sum(1);  // [1, H, D']
    auto mean = ((fq * fk).sum(-1).squeeze(0) / static_cast<double>(n * n)).clamp_min(1e-30);         // [H]
    linear_log_scale.copy_((std::log(mass) - torch::log(mean)).to(linear_log_scale.device()));
}

std::pair<Tensor, Tensor> HybridAttentionImpl::features(const Tensor& q, const Tensor& k) const {
    torch::ScalarType dt = q.scalar_type();
    if (impl_ == AttentionImpl::Reference && dt != torch::kFloat64) dt = torch::kFloat32;
    return {phi_q->forward(q, dt), phi_k->forward(k, dt)};
}

Tensor HybridAttentionImpl::forward(const Tensor& q, const Tensor& k, const Tensor& v, const TokenGrid& grid) {
    SURGEON_CHECK(q.dim() == 4 && q.size(2) == num_heads_ && q.size(3) == head_dim_,
                  "hybrid attention core: q must be [B, N, {}, {}], got {}", num_heads_, head_dim_, shape_str(q.sizes()));
    auto [pq, pk] = features(q, k);  // [B, N, H, D'] each
    if (recurrent_ && impl_ == AttentionImpl::Fast && entry_.kind == AttentionKind::Chunked && entry_.causal) {
        check_inputs(q, k, v, pq, pk, grid);
        validate_entry(entry_, head_dim_, &grid, "hybrid attention");
        return chunked_causal_recurrent(q, k, v, pq, pk, entry_, grid, linear_log_scale).to(v.scalar_type());
    }
    return hybrid_attention(q, k, v, pq, pk, entry_, grid, impl_, 512, linear_log_scale);
}

Tensor HybridAttentionImpl::forward_query_subset(const Tensor& q, const Tensor& k, const Tensor& v,
                                                 const TokenGrid& grid) {
    auto [pq, pk] = features(q, k);
    return hybrid_attention_query_subset(q, k, v, pq, pk, entry_, grid, linear_log_scale);
}

}  // namespace surgeon
