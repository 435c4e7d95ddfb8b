// Glue for the hybrid attention kernels: checks, strides -> params, streams, and the torch fallbacks.
#include "ops/hybrid_ops.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/tensor_checks.h"
#include "kernels/attention_kernels.h"
#include "kernels/rope.h"

#ifdef SURGEON_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace surgeon::ops {
using torch::Tensor;

namespace {

#ifdef SURGEON_HAVE_CUDA
bool kernel_dtype(torch::ScalarType t, kernels::DType* out) {
    switch (t) {
        case torch::kFloat32: *out = kernels::DType::F32; return true;
        case torch::kBFloat16: *out = kernels::DType::BF16; return true;
        case torch::kHalf: *out = kernels::DType::F16; return true;
        default: return false;
    }
}
#endif

bool env_is(const char* name, const char* value) {
    const char* v = std::getenv(name);
    return v != nullptr && std::strcmp(v, value) == 0;
}

}  // namespace

void hybrid_combine_into(const Tensor& o, const Tensor& log_a, int64_t nc, const Tensor& nd, Tensor& y, int64_t n0,
                         int64_t nq) {
    SURGEON_CHECK(y.dim() == 4 && nd.dim() == 4 && nd.scalar_type() == torch::kFloat32,
                  "hybrid combine: y must be [B, N, H, D] and nd [B, H, N, D+1] float32");
    const int64_t B = y.size(0), H = y.size(2), D = y.size(3);
    SURGEON_CHECK(nd.size(0) == B && nd.size(1) == H && nd.size(3) > D && n0 >= 0 && n0 + nq <= nd.size(2) &&
                      n0 + nq <= y.size(1),
                  "hybrid combine: nd {} does not match y {} rows [{}, {})", shape_str(nd.sizes()), shape_str(y.sizes()), n0, n0 + nq);
    int64_t chunk = nq;
    if (o.defined()) {
        SURGEON_CHECK(o.dim() == 4 && o.size(0) == B * nc && o.size(1) == H && o.size(3) == D && o.size(2) * nc == nq,
                      "hybrid combine: o must be [B*nc, H, chunk, D] with nc*chunk = {}, got {}", nq, shape_str(o.sizes()));
        chunk = o.size(2);
        if (log_a.defined())
            SURGEON_CHECK(log_a.dim() == 3 && log_a.size(0) == B * nc && log_a.size(1) == H && log_a.size(2) == chunk,
                          "hybrid combine: log_a must be [B*nc, H, chunk], got {}", shape_str(log_a.sizes()));
    }
    if (nq == 0) return;
#ifdef SURGEON_HAVE_CUDA
    kernels::DType yd, od = kernels::DType::F32;
    const bool dtypes_ok = kernel_dtype(y.scalar_type(), &yd) && (!o.defined() || kernel_dtype(o.scalar_type(), &od));
    if (y.is_cuda() && kernels::cuda_kernels_compiled() && dtypes_ok && !env_is("SURGEON_COMBINE", "torch")) {
        SURGEON_CHECK(y.stride(3) == 1, "hybrid combine: y's last dim must be contiguous");
        auto ndc = nd.stride(3) == 1 ? nd : nd.contiguous();
        Tensor oc = o.defined() && o.stride(3) != 1 ? o.contiguous() : o;
        Tensor lac = log_a.defined() ? log_a.to(torch::kFloat32) : log_a;
        kernels::CombineParams p;
        if (oc.defined()) {
            p.o = oc.data_ptr();
            p.o_dtype = od;
            p.o_idx = {nc * oc.stride(0), oc.stride(0), oc.stride(1), oc.stride(2), chunk};
            if (lac.defined()) {
                p.log_a = lac.data_ptr<float>();
                p.la_idx = {nc * lac.stride(0), lac.stride(0), lac.stride(1), lac.stride(2), chunk};
            }
        }
        p.nd = ndc.data_ptr<float>();
        p.nd_sb = ndc.stride(0), p.nd_sh = ndc.stride(1), p.nd_sn = ndc.stride(2), p.den_col = D;
        p.y = y.data_ptr();
        p.y_dtype = yd;
        p.y_sb = y.stride(0), p.y_sn = y.stride(1), p.y_sh = y.stride(2);
        p.batch = B, p.heads = H, p.n0 = n0, p.nq = nq, p.dim = D;
        const char* err = kernels::hybrid_combine_cuda(p, at::cuda::getCurrentCUDAStream().stream());
        SURGEON_CHECK(err == nullptr, "hybrid combine kernel failed: {}", err ? err : "");
        return;
    }
#endif
    const auto f32 = torch::kFloat32;
    auto rows = nd.narrow(2, n0, nq);               // [B, H, nq, Dn]
    auto num = rows.narrow(3, 0, D);                // [B, H, nq, D]
    auto den = rows.narrow(3, D, 1);                // [B, H, nq, 1]
    Tensor out;
    if (!o.defined()) {
        out = num / den.clamp_min(1e-30);
    } else {
        // [B*nc, H, chunk, *] -> [B, H, nc*chunk, *]
        auto unchunk = [&](const Tensor& t) {
            auto s = t.sizes().vec();
            return t.reshape({B, nc, H, chunk, s[3]}).permute({0, 2, 1, 3, 4}).reshape({B, H, nq, s[3]});
        };
        auto of = unchunk(o.to(f32));
        if (log_a.defined()) {
            auto a = torch::exp(unchunk(log_a.to(f32).unsqueeze(-1)));  // [B, H, nq, 1]
            out = (a * of + num) / (a + den);
        } else {
            out = (of + num) / (1 + den);
        }
    }
    y.narrow(1, n0, nq).copy_(out.transpose(1, 2));  // [B, nq, H, D]
}

bool row_stats_kernel_applies(const Tensor& q, const Tensor& k) {
#ifdef SURGEON_HAVE_CUDA
    return q.is_cuda() && kernels::cuda_kernels_compiled() && q.scalar_type() == torch::kBFloat16 &&
           k.scalar_type() == torch::kBFloat16 && kernels::row_stats_supported(q.size(3)) &&
           !env_is("SURGEON_ROW_STATS", "torch");
#else
    (void)q, (void)k;
    return false;
#endif
}

Tensor row_log_mass(const Tensor& q, const Tensor& k, double scale, int64_t tile) {
    SURGEON_CHECK(q.dim() == 4 && k.dim() == 4 && q.size(0) == k.size(0) && q.size(1) == k.size(1) &&
                      q.size(3) == k.size(3) && k.size(2) > 0,
                  "row log mass: q [B, H, Lq, D] and k [B, H, Lk, D] with Lk > 0, got {} and {}", shape_str(q.sizes()), shape_str(k.sizes()));
    torch::NoGradGuard ng;
#ifdef SURGEON_HAVE_CUDA
    if (row_stats_kernel_applies(q, k)) {
        auto qc = q.contiguous(), kc = k.contiguous();
        auto out = torch::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(torch::kFloat32));
        kernels::RowStatsParams p;
        p.q = qc.data_ptr(), p.k = kc.data_ptr(), p.log_a = out.data_ptr<float>();
        p.batch = q.size(0), p.heads = q.size(1), p.lq = q.size(2), p.lk = k.size(2), p.dim = q.size(3);
        p.scale = static_cast<float>(scale);
        const char* err = kernels::row_stats_cuda(p, at::cuda::getCurrentCUDAStream().stream());
        SURGEON_CHECK(err == nullptr, "row stats kernel failed: {}", err ? err : "");
        return out;
    }
#endif
    auto kt = k.to(torch::kFloat32).transpose(-1, -2);  // [B, H, D, Lk]
    std::vector<Tensor> la;
    for (int64_t s = 0; s < q.size(2); s += tile) {
        auto sc = torch::matmul(q.narrow(2, s, std::min(tile, q.size(2) - s)).to(torch::kFloat32), kt) * scale;
        la.push_back(torch::logsumexp(sc, -1) - std::get<0>(sc.max(-1)));  // [B, H, t]
    }
    return torch::cat(la, 2);
}

}  // namespace surgeon::ops
