// umT5 encoder forward (wan/modules/t5.py T5Encoder; transformers UMT5EncoderModel).
#include "text/umt5_encoder.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/tensor_checks.h"

namespace surgeon::text {

T5LayerNormImpl::T5LayerNormImpl(int64_t dim, double eps) : eps_(eps) {
    weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor T5LayerNormImpl::forward(const torch::Tensor& x) {
    auto y = x * torch::rsqrt(x.to(torch::kFloat).pow(2).mean(-1, /*keepdim=*/true) + eps_);  // fp32
    if (weight.scalar_type() == torch::kBFloat16 || weight.scalar_type() == torch::kHalf)
        y = y.to(weight.scalar_type());
    return weight * y;
}

torch::Tensor relative_position_bucket(const torch::Tensor& rel_pos, int64_t num_buckets, int64_t max_dist) {
    const int64_t half = num_buckets / 2;  // bidirectional: one half per direction
    auto buckets = (rel_pos > 0).to(torch::kLong) * half;
    auto dist = rel_pos.abs();
    const int64_t max_exact = half / 2;
    // Same float32 ops as both references (log of an fp32 ratio / a double constant, truncated).
    auto large = max_exact + (torch::log(dist.to(torch::kFloat) / static_cast<double>(max_exact)) /
                              std::log(static_cast<double>(max_dist) / static_cast<double>(max_exact)) *
                              static_cast<double>(half - max_exact))
                                 .to(torch::kLong);
    large = torch::minimum(large, torch::full_like(large, half - 1));
    return buckets + torch::where(dist < max_exact, dist, large);
}

T5RelativeEmbeddingImpl::T5RelativeEmbeddingImpl(int64_t num_buckets, int64_t num_heads, int64_t max_dist)
    : num_buckets_(num_buckets), max_dist_(max_dist) {
    embedding = register_module("embedding", torch::nn::Embedding(num_buckets, num_heads));
}

torch::Tensor T5RelativeEmbeddingImpl::forward(int64_t lq, int64_t lk) {
    const auto dev = embedding->weight.device();
    auto opts = torch::TensorOptions().dtype(torch::kLong).device(dev);
    auto rel = torch::arange(lk, opts).unsqueeze(0) - torch::arange(lq, opts).unsqueeze(1);  // [lq, lk]
    auto bias = embedding(relative_position_bucket(rel, num_buckets_, max_dist_));          // [lq, lk, H]
    return bias.permute({2, 0, 1}).unsqueeze(0).contiguous();                                // [1, H, lq, lk]
}

T5AttentionImpl::T5AttentionImpl(int64_t dim, int64_t dim_attn, int64_t num_heads) : num_heads_(num_heads) {
    auto lin = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
    q = register_module("q", lin(dim, dim_attn));
    k = register_module("k", lin(dim, dim_attn));
    v = register_module("v", lin(dim, dim_attn));
    o = register_module("o", lin(dim_attn, dim));
}

torch::Tensor T5AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                       const torch::Tensor& pos_bias) {
    const int64_t b = x.size(0), l = x.size(1), n = num_heads_;
    auto qh = q(x).view({b, l, n, -1}).permute({0, 2, 1, 3});  // [B, H, L, c]
    auto kh = k(x).view({b, l, n, -1}).permute({0, 2, 3, 1});  // [B, H, c, L]
    auto vh = v(x).view({b, l, n, -1}).permute({0, 2, 1, 3});  // [B, H, L, c]
    auto bias = pos_bias.to(x.scalar_type()).expand({b, n, l, l}).clone();  // [B, H, L, L]
    if (mask.defined()) {
        const double lowest = x.scalar_type() == torch::kBFloat16 ? -3.3895313892515355e38
                              : x.scalar_type() == torch::kHalf   ? -65504.0
                                                                  : std::numeric_limits<float>::lowest();
        bias.masked_fill_(mask.view({b, 1, 1, l}) == 0, lowest);  // torch.finfo(dtype).min
    }
    auto scores = torch::matmul(qh, kh) + bias;  // no 1/sqrt(c) scaling (T5)
    auto attn = torch::softmax(scores.to(torch::kFloat), -1).to(scores.scalar_type());
    auto out = torch::matmul(attn, vh).permute({0, 2, 1, 3}).reshape({b, l, -1});  // [B, L, H*c]
    return o(out);
}

T5FeedForwardImpl::T5FeedForwardImpl(int64_t dim, int64_t dim_ffn) {
    auto lin = [](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
    gate = register_module("gate", torch::nn::Sequential(lin(dim, dim_ffn)));
    fc1 = register_module("fc1", lin(dim, dim_ffn));
    fc2 = register_module("fc2", lin(dim_ffn, dim));
}

torch::Tensor T5FeedForwardImpl::forward(const torch::Tensor& x) {
    return fc2(fc1(x) * torch::gelu(gate->forward(x), "tanh"));
}

T5SelfAttentionImpl::T5SelfAttentionImpl(const UMT5Config& c) {
    norm1 = register_module("norm1", T5LayerNorm(c.dim, c.eps));
    attn = register_module("attn", T5Attention(c.dim, c.dim_attn, c.num_heads));
    norm2 = register_module("norm2", T5LayerNorm(c.dim, c.eps));
    ffn = register_module("ffn", T5FeedForward(c.dim, c.dim_ffn));
    pos_embedding = register_module("pos_embedding", T5RelativeEmbedding(c.num_buckets, c.num_heads, c.max_dist));
}

torch::Tensor T5SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
    auto e = pos_embedding(x.size(1), x.size(1));
    auto h = x + attn(norm1(x).to(x.scalar_type()), mask, e).to(x.scalar_type());
    return h + ffn(norm2(h).to(h.scalar_type())).to(h.scalar_type());
}

UMT5EncoderImpl::UMT5EncoderImpl(const UMT5Config& c) : config_(c) {
    token_embedding = register_module("token_embedding", torch::nn::Embedding(c.vocab_size, c.dim));
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.num_layers; ++i) blocks->push_back(T5SelfAttention(c));
    norm = register_module("norm", T5LayerNorm(c.dim, c.eps));
}

torch::Tensor UMT5EncoderImpl::forward(const torch::Tensor& ids, const torch::Tensor& mask) {
    SURGEON_CHECK(ids.dim() == 2 && ids.scalar_type() == torch::kLong,
                  "umT5 encoder: expected token ids [B, L] int64, got {} {}", shape_str(ids.sizes()),
                  c10::toString(ids.scalar_type()));
    SURGEON_CHECK(!mask.defined() || mask.sizes() == ids.sizes(), "umT5 encoder: mask {} does not match ids {}",
                  mask.defined() ? shape_str(mask.sizes()) : "", shape_str(ids.sizes()));
    if (ids.numel() > 0) {
        const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
        SURGEON_CHECK(lo >= 0 && hi < config_.vocab_size, "umT5 encoder: token id {} outside the vocabulary [0, {})",
                      lo < 0 ? lo : hi, config_.vocab_size);
    }
    auto x = token_embedding(ids);  // [B, L, dim]
    for (const auto& m : *blocks) x = m->as<T5SelfAttentionImpl>()->forward(x, mask);
    return norm(x);
}

}  // namespace surgeon::text
