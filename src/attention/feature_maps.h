// Feature maps phi of the linear branch (method.md §4): poly (per-head 2-layer MLP, P parts, softplus, powers),
// hedgehog ([softmax(Wx), softmax(-Wx)]), elu1, relu. Separate weights per head, batched over heads with
// einsum (no loop). Every map is non-negative so the joint denominator stays positive.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "core/names.h"

namespace surgeon {

enum class FeatureMapKind { Poly, Hedgehog, Elu1, Relu };
inline constexpr EnumName<FeatureMapKind> kFeatureMapNames[] = {{FeatureMapKind::Poly, "poly"},
                                                               {FeatureMapKind::Hedgehog, "hedgehog"},
                                                               {FeatureMapKind::Elu1, "elu1"},
                                                               {FeatureMapKind::Relu, "relu"}};
FeatureMapKind parse_feature_map_kind(const std::string& s);
std::string to_string(FeatureMapKind k);

struct FeatureMapSpec {
    FeatureMapKind kind = FeatureMapKind::Poly;
    int64_t hidden = 0;    // poly hidden width h; 0 = 2 * head_dim (the paper's)
    int64_t parts = 2;     // poly P (degree: parts are raised to powers 1..P)
    int64_t head_dim = 0;  // head dim the map is sized for; 0 = not fixed yet (resolved by resolve())
    bool operator==(const FeatureMapSpec& o) const {
        return kind == o.kind && hidden == o.hidden && parts == o.parts && head_dim == o.head_dim;
    }
    bool operator!=(const FeatureMapSpec& o) const { return !(*this == o); }
    // Fills head_dim and the default hidden width for a model of head dim D; leaves fields irrelevant to the
    // kind at their defaults so that plans compare equal after a JSON round trip.
    FeatureMapSpec resolved(int64_t D) const;
};

// Output feature dimension D' of a map on head dim D: poly P*D, hedgehog 2*D, elu1/relu D.
int64_t feature_dim(const FeatureMapSpec& spec, int64_t D);
// Learnable parameters per head (q or k map alone): poly D*h + h + h*P*D + P*D, hedgehog D*D, else 0.
int64_t feature_map_params_per_head(const FeatureMapSpec& spec, int64_t D);

class FeatureMapImpl : public torch::nn::Module {
public:
    // Parameters drawn from `gen` (a CPU generator): poly W1 ~ N(0, 1/D), W2 ~ N(0, 1/h), biases 0;
    // hedgehog W = I + N(0, 0.01^2). Parameter names: poly w1 [H,D,h], b1 [H,h], w2 [H,h,P*D], b2 [H,P*D];
    // hedgehog w [H,D,D].
    FeatureMapImpl(const FeatureMapSpec& spec, int64_t num_heads, int64_t head_dim, at::Generator gen);
    // x [B, L, H, D] -> phi(x) [B, L, H, D'] computed in `dtype` (parameters are cast to it).
    torch::Tensor forward(const torch::Tensor& x, torch::ScalarType dtype) const;
    const FeatureMapSpec& spec() const { return spec_; }
    int64_t out_dim() const { return feature_dim(spec_, head_dim_); }

    torch::Tensor w1, b1, w2, b2;  // poly
    torch::Tensor w;               // hedgehog

private:
    FeatureMapSpec spec_;
    int64_t num_heads_, head_dim_;
};
TORCH_MODULE(FeatureMap);

}  // namespace surgeon
