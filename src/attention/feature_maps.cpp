// Feature maps phi (method.md §4), batched over heads with einsum.
#include "attention/feature_maps.h"

#include "core/error.h"
#include "core/tensor_checks.h"

namespace surgeon {

FeatureMapKind parse_feature_map_kind(const std::string& s) { return parse_name(kFeatureMapNames, s, "feature map"); }
std::string to_string(FeatureMapKind k) { return name_of(kFeatureMapNames, k); }

FeatureMapSpec FeatureMapSpec::resolved(int64_t D) const {
    FeatureMapSpec r;
    r.kind = kind;
    r.head_dim = head_dim > 0 ? head_dim : D;
    if (kind == FeatureMapKind::Poly) {
        r.hidden = hidden > 0 ? hidden : 2 * r.head_dim;
        r.parts = parts;
    } else {
        r.hidden = 0;
        r.parts = 2;  // default, irrelevant
    }
    return r;
}

int64_t feature_dim(const FeatureMapSpec& spec, int64_t D) {
    switch (spec.kind) {
        case FeatureMapKind::Poly: return spec.parts * D;
        case FeatureMapKind::Hedgehog: return 2 * D;
        default: return D;
    }
}

int64_t feature_map_params_per_head(const FeatureMapSpec& spec, int64_t D) {
    const auto s = spec.resolved(D);
    switch (s.kind) {
        case FeatureMapKind::Poly: return D * s.hidden + s.hidden + s.hidden * s.parts * D + s.parts * D;
        case FeatureMapKind::Hedgehog: return D * D;
        default: return 0;
    }
}

FeatureMapImpl::FeatureMapImpl(const FeatureMapSpec& spec, int64_t num_heads, int64_t head_dim, at::Generator gen)
    : spec_(spec.resolved(head_dim)), num_heads_(num_heads), head_dim_(head_dim) {
    SURGEON_CHECK(spec_.head_dim == head_dim, "feature map {}: sized for head dim {}, but the model's head dim is {}",
                  to_string(spec_.kind), spec_.head_dim, head_dim);
    const int64_t H = num_heads, D = head_dim;
    auto opt = torch::TensorOptions().dtype(torch::kFloat32);
    if (spec_.kind == FeatureMapKind::Poly) {
        SURGEON_CHECK(spec_.parts >= 1, "feature map poly: parts must be >= 1, got {}", spec_.parts);
        SURGEON_CHECK(spec_.hidden >= 1, "feature map poly: hidden width must be >= 1, got {}", spec_.hidden);
        const int64_t h = spec_.hidden, PD = spec_.parts * D;
        w1 = register_parameter("w1", torch::randn({H, D, h}, gen, opt) / std::sqrt(double(D)));   // [H, D, h]
        b1 = register_parameter("b1", torch::zeros({H, h}, opt));                                  // [H, h]
        w2 = register_parameter("w2", torch::randn({H, h, PD}, gen, opt) / std::sqrt(double(h)));  // [H, h, PD]
        b2 = register_parameter("b2", torch::zeros({H, PD}, opt));                                 // [H, PD]
    } else if (spec_.kind == FeatureMapKind::Hedgehog) {
        auto eye = torch::eye(D, opt).expand({H, D, D});
        w = register_parameter("w", eye + 0.01 * torch::randn({H, D, D}, gen, opt));  // [H, D, D]
    }
}

torch::Tensor FeatureMapImpl::forward(const torch::Tensor& x, torch::ScalarType dtype) const {
    SURGEON_CHECK(x.dim() == 4 && x.size(2) == num_heads_ && x.size(3) == head_dim_,
                  "feature map input: expected [B, L, {}, {}], got {}", num_heads_, head_dim_, shape_str(x.sizes()));
    auto xc = x.to(dtype);  // [B, L, H, D]
    switch (spec_.kind) {
        case FeatureMapKind::Poly: {
            auto h = torch::gelu(torch::einsum("blhd,hde->blhe", {xc, w1.to(dtype)}) + b1.to(dtype));  // [B,L,H,h]
            auto psi = torch::einsum("blhe,hef->blhf", {h, w2.to(dtype)}) + b2.to(dtype);             // [B,L,H,PD]
            auto g = torch::softplus(psi);                                                              // [B,L,H,PD]
            if (spec_.parts == 1) return g;
            auto parts = g.chunk(spec_.parts, -1);  // P x [B, L, H, D]
            std::vector<torch::Tensor> powered;
            for (int64_t p = 0; p < spec_.parts; ++p) powered.push_back(p == 0 ? parts[p] : parts[p].pow(p + 1));
            return torch::cat(powered, -1);  // [B, L, H, P*D]
        }
        case FeatureMapKind::Hedgehog: {
            auto y = torch::einsum("blhd,hde->blhe", {xc, w.to(dtype)});  // [B, L, H, D]
            return torch::cat({torch::softmax(y, -1), torch::softmax(-y, -1)}, -1);  // [B, L, H, 2D]
        }
        case FeatureMapKind::Elu1: return torch::elu(xc) + 1;  // [B, L, H, D]
        case FeatureMapKind::Relu: return torch::relu(xc);     // [B, L, H, D]
    }
    SURGEON_ASSERT(false);
    return {};
}

}  // namespace surgeon
