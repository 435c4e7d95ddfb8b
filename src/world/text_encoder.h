// A small learned text encoder for the world's prompts: token + learned position embeddings, pre-norm
// transformer encoder layers (padding keys masked), final LayerNorm; outputs at <pad> positions are zeroed,
// as Wan zero-pads umT5's output. Trained jointly with the DiT and saved beside it under "text_encoder.".
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/safetensors.h"

namespace surgeon::world {

struct TextEncoderConfig {
    int64_t vocab_size = 0;  // 0: the world tokenizer's vocabulary size
    int64_t text_len = 32;   // longest world prompt is 24 tokens with <eos>
    int64_t dim = 256;       // = the DiT's text_dim
    int64_t n_heads = 4;
    int64_t n_layers = 2;
    int64_t ffn_dim = 1024;
};
nlohmann::json to_json(const TextEncoderConfig& c);
TextEncoderConfig text_encoder_config_from_json(const nlohmann::json& j);  // missing keys keep defaults

class TextEncoderLayerImpl : public torch::nn::Module {
public:
    TextEncoderLayerImpl(int64_t dim, int64_t n_heads, int64_t ffn_dim);
    // x [B, L, D], key_mask [B, L] bool (true = real token) -> [B, L, D]
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_mask);

private:
    int64_t n_heads_;
    torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
    torch::nn::Linear qkv_{nullptr}, o_{nullptr};
    torch::nn::Sequential ffn_{nullptr};
};
TORCH_MODULE(TextEncoderLayer);

// Parameter names: token_embedding.weight, pos_embedding [text_len, dim],
// layers.{i}.norm1.{weight,bias}, layers.{i}.self_attn.qkv.*, layers.{i}.self_attn.o.*, layers.{i}.norm2.*,
// layers.{i}.ffn.{0,2}.*, norm.{weight,bias}.
class TextEncoderImpl : public torch::nn::Module {
public:
    explicit TextEncoderImpl(TextEncoderConfig config = {});
    // ids [B, L] int64 with L <= text_len -> [B, L, dim], rows of <pad> positions exactly zero.
    torch::Tensor forward(const torch::Tensor& ids);
    const TextEncoderConfig& config() const { return config_; }

private:
    TextEncoderConfig config_;
    torch::nn::Embedding token_embedding_{nullptr};
    torch::Tensor pos_embedding_;
    torch::nn::ModuleList layers_{nullptr};
    torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(TextEncoder);

inline const std::string kTextEncoderPrefix = "text_encoder.";
// Parameters and buffers as prefix + name -> tensor (detached, same device/dtype), ready for save_safetensors.
TensorMap text_encoder_state(TextEncoder& enc, const std::string& prefix = kTextEncoderPrefix);
// Strict load of the tensors under `prefix` (other keys, e.g. the DiT's, are ignored): missing, unexpected
// (under the prefix) or wrong-shape tensors throw surgeon::Error. Values are cast to each parameter's dtype.
void load_text_encoder_state(TextEncoder& enc, const TensorMap& tensors, const std::string& prefix = kTextEncoderPrefix);

}  // namespace surgeon::world
