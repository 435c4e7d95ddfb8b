// Fused DiT-block ops: the switch, the torch twins and the glue to kernels/dit_kernels.cu.
#include "ops/dit_ops.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <sstream>

#include "core/error.h"
#include "core/tensor_checks.h"
#include "kernels/dit_kernels.h"
#include "kernels/rope.h"
#include "ops/rope.h"

#ifdef SURGEON_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace surgeon::ops {
using torch::Tensor;
namespace F = torch::nn::functional;

namespace {
// Off until the kernels have passed their GPU tests against the twins on a GPU (tests/gpu/test_dit_kernels.cpp,
// scripts/gpu_speed.sh): they compile and their twins pass on the CPU, but no GPU has run them yet.
constexpr const char* kDefaultDitFusion = "none";
std::mutex g_fusion_mutex;
bool g_fusion_set = false;
DitFusion g_fusion;

#ifdef SURGEON_HAVE_CUDA
void* stream_of() { return at::cuda::getCurrentCUDAStream().stream(); }
bool aligned4(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 4 == 0; }
#endif

// [B, C] float32 contiguous (from [B, C] or [B, 1, C]), or undefined.
Tensor per_sample(const Tensor& t, int64_t B, int64_t C, const char* what) {
    if (!t.defined()) return t;
    SURGEON_CHECK(t.numel() == B * C, "norm_modulate: {} has shape {}, expected [{}, {}]", what, shape_str(t.sizes()), B, C);
    return t.reshape({B, C}).to(torch::kFloat32).contiguous();
}

NormModulateOut norm_modulate_reference(const Tensor& x, const Tensor& y, const Tensor& gate, const Tensor& ln_w,
                                        const Tensor& ln_b, const Tensor& scale, const Tensor& shift, double eps) {
    const int64_t C = x.size(2);
    auto xf = x.to(torch::kFloat32);  // [B, L, C]
    Tensor s = xf;
    if (y.defined()) s = gate.defined() ? torch::addcmul(xf, y, gate.unsqueeze(1)) : xf + y;
    auto o = F::LayerNormFuncOptions({C}).eps(eps);
    if (ln_w.defined()) o = o.weight(ln_w.to(torch::kFloat32));
    if (ln_b.defined()) o = o.bias(ln_b.to(torch::kFloat32));
    auto n = F::layer_norm(s, o);  // [B, L, C] fp32
    // WanLayerNorm's type_as: a bf16 stream (the first block's input, before any residual update) rounds.
    if (!y.defined() && x.scalar_type() != torch::kFloat32) n = n.to(x.scalar_type()).to(torch::kFloat32);
    if (scale.defined() && shift.defined()) {
        n = torch::addcmul(shift.unsqueeze(1), n, 1 + scale.unsqueeze(1));  // the model's composite, as it was
    } else {
        if (scale.defined()) n = n * (1 + scale.unsqueeze(1));
        if (shift.defined()) n = n + shift.unsqueeze(1);
    }
    return {s, n.to(torch::kBFloat16)};
}

}  // namespace

DitFusion parse_dit_fusion(const std::string& s) {
    DitFusion f;
    if (s == "all" || s.empty()) return f;
    f.norm = f.qk = f.gelu = false;
    if (s == "none") return f;
    std::stringstream ss(s);
    std::string part;
    while (std::getline(ss, part, ',')) {
        if (part == "norm") f.norm = true;
        else if (part == "qk") f.qk = true;
        else if (part == "gelu") f.gelu = true;
        else fail("unknown fused part '{}' in '{}' (expected all, none or a list of norm,qk,gelu)", part, s);
    }
    return f;
}

std::string to_string(const DitFusion& f) {
    if (f.norm && f.qk && f.gelu) return "all";
    if (!f.any()) return "none";
    std::string out;
    for (auto [on, name] : {std::pair{f.norm, "norm"}, std::pair{f.qk, "qk"}, std::pair{f.gelu, "gelu"}})
        if (on) out += (out.empty() ? "" : ",") + std::string(name);
    return out;
}

DitFusion dit_fusion() {
    std::lock_guard<std::mutex> lock(g_fusion_mutex);
    if (!g_fusion_set) {
        const char* e = std::getenv("SURGEON_DIT_FUSED");
        g_fusion = parse_dit_fusion(e ? e : kDefaultDitFusion);
        g_fusion_set = true;
    }
    return g_fusion;
}

void set_dit_fusion(const DitFusion& f) {
    std::lock_guard<std::mutex> lock(g_fusion_mutex);
    g_fusion = f;
    g_fusion_set = true;
}

bool dit_kernels_available(const torch::Device& device) {
    return device.is_cuda() && kernels::cuda_kernels_compiled();
}

NormModulateOut norm_modulate(const Tensor& x, const Tensor& y, const Tensor& gate, const Tensor& ln_w,
                              const Tensor& ln_b, const Tensor& scale, const Tensor& shift, double eps,
                              AttentionImpl impl) {
    SURGEON_CHECK(x.dim() == 3, "norm_modulate: x must be [B, L, C], got {}", shape_str(x.sizes()));
    const int64_t B = x.size(0), L = x.size(1), C = x.size(2);
    if (y.defined()) SURGEON_CHECK(y.sizes() == x.sizes(), "norm_modulate: y {} vs x {}", shape_str(y.sizes()), shape_str(x.sizes()));
    SURGEON_CHECK(!gate.defined() || y.defined(), "norm_modulate: a gate needs y");
    for (const auto* t : {&ln_w, &ln_b})
        SURGEON_CHECK(!t->defined() || t->numel() == C, "norm_modulate: LayerNorm parameters must have {} elements", C);
    auto g = per_sample(gate, B, C, "gate"), sc = per_sample(scale, B, C, "scale"), sh = per_sample(shift, B, C, "shift");
#ifdef SURGEON_HAVE_CUDA
    const bool dtypes_ok = (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16) &&
                           (!y.defined() || y.scalar_type() == torch::kBFloat16);
    if (impl == AttentionImpl::Fast && dit_kernels_available(x.device()) && dtypes_ok && C <= kernels::kDitMaxDim) {
        auto xf = x.to(torch::kFloat32).contiguous();
        auto yc = y.defined() ? y.contiguous() : y;
        auto w = ln_w.defined() ? ln_w.to(torch::kFloat32).contiguous() : ln_w;
        auto b = ln_b.defined() ? ln_b.to(torch::kFloat32).contiguous() : ln_b;
        NormModulateOut out;
        out.x = y.defined() ? torch::empty_like(xf) : xf;
        out.h = torch::empty({B, L, C}, xf.options().dtype(torch::kBFloat16));
        kernels::NormModulateParams p;
        p.x = xf.data_ptr<float>();
        p.y = yc.defined() ? yc.data_ptr() : nullptr;
        p.gate = g.defined() ? g.data_ptr<float>() : nullptr;
        p.x_out = y.defined() ? out.x.data_ptr<float>() : nullptr;
        p.ln_w = w.defined() ? w.data_ptr<float>() : nullptr;
        p.ln_b = b.defined() ? b.data_ptr<float>() : nullptr;
        p.scale = sc.defined() ? sc.data_ptr<float>() : nullptr;
        p.shift = sh.defined() ? sh.data_ptr<float>() : nullptr;
        p.h = out.h.data_ptr();
        p.rows = B * L, p.tokens = L, p.dim = C;
        p.eps = static_cast<float>(eps);
        p.round_norm = !y.defined() && x.scalar_type() != torch::kFloat32;
        const char* err = kernels::norm_modulate_cuda(p, stream_of());
        SURGEON_CHECK(err == nullptr, "norm_modulate kernel failed: {}", err ? err : "");
        return out;
    }
#endif
    return norm_modulate_reference(x, y, g, ln_w, ln_b, sc, sh, eps);
}

Tensor rms_norm_rope(const Tensor& x, const Tensor& weight, const Tensor& cos, const Tensor& sin, int64_t heads,
                     double eps, bool head_major, AttentionImpl impl) {
    SURGEON_CHECK(x.dim() == 3 && heads >= 1 && x.size(2) % heads == 0 && (x.size(2) / heads) % 2 == 0,
                  "rms_norm_rope: x must be [B, L, H*D] with D even, got {} for {} heads", shape_str(x.sizes()), heads);
    const int64_t B = x.size(0), L = x.size(1), C = x.size(2), D = C / heads;
    SURGEON_CHECK(weight.numel() == C, "rms_norm_rope: weight has {} elements, expected {}", weight.numel(), C);
    SURGEON_CHECK(cos.defined() == sin.defined(), "rms_norm_rope: cos and sin go together");
    if (cos.defined())
        SURGEON_CHECK(cos.dim() == 2 && cos.size(0) == L && cos.size(1) == D / 2 && sin.sizes() == cos.sizes(),
                      "rms_norm_rope: RoPE tables {} do not match {} tokens x {} pairs", shape_str(cos.sizes()), L, D / 2);
#ifdef SURGEON_HAVE_CUDA
    const bool layout_ok = x.scalar_type() == torch::kBFloat16 && x.stride(2) == 1 && x.stride(0) == L * x.stride(1) &&
                           x.stride(1) >= C && x.stride(1) % 2 == 0 && aligned4(x.data_ptr());
    if (impl == AttentionImpl::Fast && dit_kernels_available(x.device()) && layout_ok && C <= kernels::kDitMaxDim) {
        auto w = weight.to(x.device(), torch::kFloat32).contiguous();
        Tensor c, s;
        if (cos.defined()) {
            c = cos.to(x.device(), torch::kFloat32).contiguous();
            s = sin.to(x.device(), torch::kFloat32).contiguous();
        }
        auto out = head_major ? torch::empty({B, heads, L, D}, x.options()) : torch::empty({B, L, heads, D}, x.options());
        kernels::RmsNormRopeParams p;
        p.x = x.data_ptr();
        p.weight = w.data_ptr<float>();
        p.cos = c.defined() ? c.data_ptr<float>() : nullptr;
        p.sin = s.defined() ? s.data_ptr<float>() : nullptr;
        p.out = out.data_ptr();
        p.rows = B * L, p.tokens = L, p.heads = heads, p.head_dim = D, p.x_row_stride = x.stride(1);
        p.head_major = head_major;
        p.eps = static_cast<float>(eps);
        const char* err = kernels::rms_norm_rope_cuda(p, stream_of());
        SURGEON_CHECK(err == nullptr, "rms_norm_rope kernel failed: {}", err ? err : "");
        return head_major ? out.transpose(1, 2) : out;  // [B, L, H, D]
    }
#endif
    // The twin: WanRMSNorm (fp32 statistics, rounded to x's dtype, times the weight) then rope_apply's fast
    // path (the fp32 RoPE kernel on CUDA, float64 elsewhere), then bf16 for the attention core.
    auto n = at::rms_norm(x.to(torch::kFloat32), {C}, std::nullopt, eps).to(x.scalar_type()) * weight;  // [B, L, C]
    auto r = n.reshape({B, L, heads, D});
    if (cos.defined()) r = rope_apply(r, RopeTables{cos, sin}, AttentionImpl::Fast);
    r = r.to(torch::kBFloat16);
    return head_major ? r.transpose(1, 2).contiguous().transpose(1, 2) : r.contiguous();
}

Tensor linear_gelu_tanh(const Tensor& x, const Tensor& w, const Tensor& b, AttentionImpl impl) {
    SURGEON_CHECK(w.dim() == 2 && b.dim() == 1 && b.size(0) == w.size(0) && x.size(-1) == w.size(1),
                  "linear_gelu_tanh: x {} w {} b {} do not match", shape_str(x.sizes()), shape_str(w.sizes()),
                  shape_str(b.sizes()));
    // CUDA only: on the CPU at::_addmm_activation applies the exact (erf) GELU, not Wan's tanh approximation.
    if (impl == AttentionImpl::Fast && x.is_cuda() && x.scalar_type() == w.scalar_type() &&
        b.scalar_type() == w.scalar_type()) {
        auto sizes = x.sizes().vec();
        sizes.back() = w.size(0);
        auto x2 = x.reshape({-1, x.size(-1)});
        return at::_addmm_activation(b.contiguous(), x2, w.t(), 1, 1, /*use_gelu=*/true).view(sizes);
    }
    return F::gelu(F::linear(x, w, b), F::GELUFuncOptions().approximate("tanh"));
}

}  // namespace surgeon::ops
