// Inference fast path of the hybrid / linear / chunked cores (hybrid_inference.h): bf16 GEMM states over the
// linear keys only, batched SDPA, row-stats kernel, fused combine.
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "attention/hybrid_inference.h"
#include "core/error.h"
#include "ops/hybrid_ops.h"

namespace surgeon::detail {
using torch::Tensor;

Tensor gemm_f32(const Tensor& a, const Tensor& b) {
    const auto dt = a.scalar_type();
    if (a.is_cuda() && (dt == torch::kBFloat16 || dt == torch::kHalf) && b.scalar_type() == dt)
        return at::bmm(a, b, torch::kFloat32);
    return at::bmm(a.to(torch::kFloat32), b.to(torch::kFloat32));
}

Tensor augment_values(const Tensor& v) {
    const int64_t B = v.size(0), N = v.size(1), H = v.size(2), D = v.size(3);
    auto va = torch::empty({B, H, N, D + 8}, v.options());
    va.narrow(3, 0, D).copy_(v.transpose(1, 2));
    va.narrow(3, D, 1).fill_(1);
    va.narrow(3, D + 1, 7).zero_();
    return va;
}

Tensor sdpa_operand(const Tensor& x) {
    static const bool views = [] {
        const char* e = std::getenv("SURGEON_SDPA_VIEWS");
        return e != nullptr && std::strcmp(e, "1") == 0;
    }();
    auto t = x.transpose(1, 2);
    return views && t.stride(3) == 1 ? t : t.contiguous();
}

bool inference_path_applies(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& phi_q, const Tensor& phi_k,
                            const Tensor& log_scale) {
    const auto dt = v.scalar_type();
    if (!q.is_cuda() || (dt != torch::kBFloat16 && dt != torch::kHalf)) return false;  // fp32/fp64: the composite
    if (!torch::GradMode::is_enabled()) return true;
    for (const auto* t : {&q, &k, &v, &phi_q, &phi_k, &log_scale})
        if (t->defined() && t->requires_grad()) return false;
    return true;
}

namespace {

// lambda = exp(log_scale) / max(1, n_linear) per head: [H] float32 (ones when log_scale is undefined).
Tensor head_weight(const Tensor& log_scale, int64_t H, int64_t n_linear, const torch::Device& dev) {
    if (!log_scale.defined()) return torch::ones({H}, torch::TensorOptions().device(dev));
    return torch::exp(log_scale.to(dev, torch::kFloat32)) / static_cast<double>(std::max<int64_t>(1, n_linear));
}

// Softmax branch of one group of nc equally shaped chunks, combined into y: queries [q0, q0 + nc*qlen) in chunks of
// qlen, chunk i's keys [k0 + i*step, k0 + i*step + klen). One SDPA over [B*nc, H, *, D] (and one row-stats pass).
void softmax_group(const Tensor& q, const Tensor& k, const Tensor& v, int64_t q0, int64_t qlen, int64_t k0,
                   int64_t klen, int64_t step, int64_t nc, Stabilizer st, const Tensor& nd, Tensor& y) {
    const int64_t B = q.size(0), H = q.size(2), D = q.size(3);
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    Tensor qs, ks, vs;  // [B*nc, H, len, D]
    if (nc == 1 && B == 1) {
        qs = sdpa_operand(q.narrow(1, q0, qlen));
        ks = sdpa_operand(k.narrow(1, k0, klen));
        vs = sdpa_operand(v.narrow(1, k0, klen));
    } else {
        qs = q.narrow(1, q0, nc * qlen).reshape({B, nc, qlen, H, D}).permute({0, 1, 3, 2, 4}).reshape({B * nc, H, qlen, D});
        auto window = [&](const Tensor& x) {  // overlapping windows by one unfold: [B, nc, H, D, klen]
            return x.narrow(1, k0, (nc - 1) * step + klen)
                .unfold(1, klen, step)
                .permute({0, 1, 2, 4, 3})
                .reshape({B * nc, H, klen, D});
        };
        ks = window(k);
        vs = window(v);
    }
    auto o = at::scaled_dot_product_attention(qs, ks, vs, {}, 0.0, false, scale);  // [B*nc, H, qlen, D]
    Tensor log_a;
    if (st == Stabilizer::Max) log_a = ops::row_log_mass(qs, ks, scale);  // [B*nc, H, qlen]
    ops::hybrid_combine_into(o, log_a, nc, nd, y, q0, nc * qlen);
}

}  // namespace

Tensor hybrid_inference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& phi_q, const Tensor& phi_k,
                        const PlanEntry& e, const TokenGrid& grid, const Tensor& log_scale) {
    SURGEON_CHECK(e.kind == AttentionKind::Hybrid || e.kind == AttentionKind::Linear || e.kind == AttentionKind::Chunked,
                  "hybrid inference path: kind {} has no linear branch", to_string(e.kind));
    torch::NoGradGuard ng;
    const int64_t B = k.size(0), N = k.size(1), H = k.size(2), D = k.size(3), n = q.size(1);
    const int64_t F = grid.frames, HW = grid.tokens_per_frame(), Dp = phi_k.size(3), Dn = D + 8;
    const auto dt = v.scalar_type();
    auto y = torch::empty({B, n, H, D}, v.options());  // [B, n, H, D]

    // Linear branch: per-frame states over the linear keys only (softmax keys' value rows zeroed, not subtracted).
    auto va = augment_values(v);                                                           // [B, H, N, Dn]
    if (e.kind == AttentionKind::Hybrid) va.slice(2, 0, N, e.rate).zero_();                // T_L only
    auto pk = phi_k.to(dt).transpose(1, 2).contiguous();                                   // [B, H, N, D']
    auto pq = phi_q.to(dt).transpose(1, 2).contiguous();                                   // [B, H, n, D']
    auto Sf = gemm_f32(pk.view({B * H * F, HW, Dp}).transpose(1, 2), va.view({B * H * F, HW, Dn}))
                  .view({B, H, F, Dp, Dn});                                                // per-frame [S | z], float32
    Tensor nd;                                                                             // [B, H, n, Dn] float32
    if (e.kind != AttentionKind::Chunked) {
        auto S = Sf.sum(2);                                                                // [B, H, D', Dn]
        if (e.kind == AttentionKind::Hybrid) {
            const int64_t n_linear = N - (N + e.rate - 1) / e.rate;
            S = S * head_weight(log_scale, H, n_linear, S.device()).view({1, H, 1, 1});
        }
        nd = gemm_f32(pq.view({B * H, n, Dp}), S.to(dt).view({B * H, Dp, Dn})).view({B, H, n, Dn});
    } else {
        SURGEON_CHECK(n == N, "hybrid inference path: chunked attention needs every query");
        const int64_t T = e.chunk, n_chunks = (F + T - 1) / T;
        // prefix[f] = frames < f, suffix[f] = frames >= f ([B, H, F+1, D', Dn]); no subtraction anywhere.
        auto zero = torch::zeros_like(Sf.narrow(2, 0, 1));
        auto prefix = torch::cat({zero, Sf.cumsum(2)}, 2);
        auto suffix = torch::cat({Sf.flip({2}).cumsum(2).flip({2}), zero}, 2);
        std::vector<int64_t> lo(n_chunks), hi(n_chunks), frame_chunk(F);
        std::vector<float> n_lin(n_chunks);
        for (int64_t c = 0; c < n_chunks; ++c) {
            lo[c] = std::max<int64_t>(0, c * T - e.overlap);
            hi[c] = std::min(F, (c + 1) * T);
            n_lin[c] = static_cast<float>(std::max<int64_t>(1, (lo[c] + (e.causal ? 0 : F - hi[c])) * HW));
        }
        for (int64_t f = 0; f < F; ++f) frame_chunk[f] = f / T;
        auto idx = [&](const std::vector<int64_t>& x) { return torch::tensor(x, torch::kLong).to(Sf.device()); };
        auto S_L = prefix.index_select(2, idx(lo));                                        // [B, H, nc, D', Dn]
        if (!e.causal) S_L = S_L + suffix.index_select(2, idx(hi));
        auto lam = log_scale.defined() ? torch::exp(log_scale.to(Sf.device(), torch::kFloat32)).view({H, 1}) /
                                             torch::tensor(n_lin).to(Sf.device()).view({1, n_chunks})
                                       : torch::ones({H, n_chunks}, Sf.options());          // [H, nc]
        S_L = S_L * lam.view({1, H, n_chunks, 1, 1});
        auto S_frame = S_L.to(dt).index_select(2, idx(frame_chunk));                      // [B, H, F, D', Dn]
        nd = gemm_f32(pq.view({B * H * F, HW, Dp}), S_frame.view({B * H * F, Dp, Dn})).view({B, H, N, Dn});
    }

    if (e.kind == AttentionKind::Linear) {
        ops::hybrid_combine_into({}, {}, 1, nd, y, 0, n);
        return y;
    }
    if (e.kind == AttentionKind::Hybrid) {
        const double scale = 1.0 / std::sqrt(static_cast<double>(D));
        auto qs = sdpa_operand(q);                                      // [B, H, n, D]
        auto ks = k.slice(1, 0, N, e.rate).transpose(1, 2).contiguous();  // strided keys gathered once
        auto vs = v.slice(1, 0, N, e.rate).transpose(1, 2).contiguous();
        auto o = at::scaled_dot_product_attention(qs, ks, vs, {}, 0.0, false, scale);  // [B, H, n, D]
        Tensor log_a;
        if (e.stabilizer == Stabilizer::Max) log_a = ops::row_log_mass(qs, ks, scale);
        ops::hybrid_combine_into(o, log_a, 1, nd, y, 0, n);
        return y;
    }
    // Chunked: consecutive chunks with the same (query frames, key frames) form one batched SDPA group (the regular
    // chunks; the first ones whose window is cut by the video start; a shorter last chunk).
    const int64_t T = e.chunk, n_chunks = (F + T - 1) / T;
    int64_t c = 0;
    while (c < n_chunks) {
        auto shape = [&](int64_t ci) {
            const int64_t f0 = ci * T, f1 = std::min(F, f0 + T), l0 = std::max<int64_t>(0, f0 - e.overlap);
            return std::array<int64_t, 3>{f1 - f0, f1 - l0, l0};
        };
        const auto s0 = shape(c);
        int64_t nc = 1;
        while (c + nc < n_chunks) {
            const auto s = shape(c + nc);
            if (s[0] != s0[0] || s[1] != s0[1]) break;
            ++nc;
        }
        softmax_group(q, k, v, c * T * HW, s0[0] * HW, s0[2] * HW, s0[1] * HW, T * HW, nc, e.stabilizer, nd, y);
        c += nc;
    }
    return y;
}

}  // namespace surgeon::detail
