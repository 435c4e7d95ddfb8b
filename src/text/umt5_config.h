// UMT5Config: the hyper-parameters of an umT5 encoder, named as Wan's T5Encoder (wan/modules/t5.py), read
// from a transformers UMT5 config.json or inferred from the tensors of an official Wan checkpoint.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/safetensors.h"

namespace surgeon::text {

struct UMT5Config {  // defaults: umt5_xxl() of wan/modules/t5.py
    int64_t vocab_size = 256384;
    int64_t dim = 4096;        // HF d_model
    int64_t dim_attn = 4096;   // HF num_heads * d_kv
    int64_t dim_ffn = 10240;   // HF d_ff
    int64_t num_heads = 64;
    int64_t num_layers = 24;
    int64_t num_buckets = 32;  // HF relative_attention_num_buckets
    int64_t max_dist = 128;    // HF relative_attention_max_distance (Wan: fixed 128)
    double eps = 1e-6;         // HF layer_norm_epsilon (Wan: fixed 1e-6)

    int64_t head_dim() const { return dim_attn / num_heads; }
    // transformers UMT5Config (model_type "umt5", feed_forward_proj "gated-gelu"); `source` names the file.
    static UMT5Config from_hf_json(const nlohmann::json& j, const std::string& source);
    // Shapes of token_embedding, blocks.0.attn.q, blocks.0.ffn.fc1 and blocks.0.pos_embedding (official names);
    // the layer count from the highest block index. The strict load then checks every tensor against it.
    static UMT5Config infer_from_official(const TensorMap& tensors, const std::string& source);
    void validate(const std::string& source) const;
};

}  // namespace surgeon::text
