// UMT5Encoder: the encoder of umT5 (Wan's T5Encoder with shared_pos=False, wan/modules/t5.py; transformers'
// UMT5EncoderModel). Module and parameter names mirror Wan's official checkpoint (`token_embedding`,
// `blocks.N.attn.q`, `blocks.N.ffn.gate.0`, `blocks.N.pos_embedding.embedding`, `norm`); transformers names
// are converted on load (umt5_names.h). Numerics follow both references: T5LayerNorm = RMS without mean or
// bias, statistics in fp32; attention without 1/sqrt(d) scaling plus a relative position bias of each layer's
// own, softmax in fp32; gated-GELU FFN (tanh GELU); final norm, no projection.
#pragma once
#include <torch/torch.h>

#include "text/umt5_config.h"

namespace surgeon::text {

class T5LayerNormImpl : public torch::nn::Module {
public:
    T5LayerNormImpl(int64_t dim, double eps);
    // x * rsqrt(mean(x^2) + eps) computed in fp32; cast to the weight's dtype when that is 16-bit; * weight.
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;

private:
    double eps_;
};
TORCH_MODULE(T5LayerNorm);

// Bucketed relative position -> per-head bias (bidirectional; keys minus queries, as both references).
class T5RelativeEmbeddingImpl : public torch::nn::Module {
public:
    T5RelativeEmbeddingImpl(int64_t num_buckets, int64_t num_heads, int64_t max_dist);
    torch::Tensor forward(int64_t lq, int64_t lk);  // -> [1, H, lq, lk] in the embedding's dtype
    torch::nn::Embedding embedding{nullptr};

private:
    int64_t num_buckets_, max_dist_;
};
TORCH_MODULE(T5RelativeEmbedding);

// rel_pos [..] int64 (key - query) -> bucket ids, the float32 formula of both references.
torch::Tensor relative_position_bucket(const torch::Tensor& rel_pos, int64_t num_buckets, int64_t max_dist);

class T5AttentionImpl : public torch::nn::Module {
public:
    T5AttentionImpl(int64_t dim, int64_t dim_attn, int64_t num_heads);
    // x [B, L, C], mask [B, L] (1 = token, 0 = padding) or undefined, pos_bias [1, H, L, L] -> [B, L, C]
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& pos_bias);
    torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};

private:
    int64_t num_heads_;
};
TORCH_MODULE(T5Attention);

class T5FeedForwardImpl : public torch::nn::Module {
public:
    T5FeedForwardImpl(int64_t dim, int64_t dim_ffn);
    torch::Tensor forward(const torch::Tensor& x);  // fc2(fc1(x) * gelu_tanh(gate(x)))
    torch::nn::Sequential gate{nullptr};            // gate.0 = Linear (HF wi_0)
    torch::nn::Linear fc1{nullptr}, fc2{nullptr};   // HF wi_1, wo
};
TORCH_MODULE(T5FeedForward);

class T5SelfAttentionImpl : public torch::nn::Module {  // one encoder block (Wan's name)
public:
    explicit T5SelfAttentionImpl(const UMT5Config& c);
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);
    T5LayerNorm norm1{nullptr}, norm2{nullptr};
    T5Attention attn{nullptr};
    T5FeedForward ffn{nullptr};
    T5RelativeEmbedding pos_embedding{nullptr};
};
TORCH_MODULE(T5SelfAttention);

class UMT5EncoderImpl : public torch::nn::Module {
public:
    explicit UMT5EncoderImpl(const UMT5Config& c);
    // ids [B, L] int64, mask [B, L] (nonzero = token) or undefined (all tokens) -> hidden states [B, L, dim]
    // in the weights' dtype. Rows at padded positions are computed but meaningless (callers zero them).
    torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask = {});
    const UMT5Config& config() const { return config_; }
    torch::nn::Embedding token_embedding{nullptr};
    torch::nn::ModuleList blocks{nullptr};
    T5LayerNorm norm{nullptr};

private:
    UMT5Config config_;
};
TORCH_MODULE(UMT5Encoder);

}  // namespace surgeon::text
