// The world's small learned text encoder and its strict (de)serialisation under a name prefix.
#include "world/text_encoder.h"

#include <set>

#include "core/error.h"
#include "world/tokenizer.h"

namespace surgeon::world {

nlohmann::json to_json(const TextEncoderConfig& c) {
    return {{"vocab_size", c.vocab_size}, {"text_len", c.text_len}, {"dim", c.dim},
            {"n_heads", c.n_heads},       {"n_layers", c.n_layers}, {"ffn_dim", c.ffn_dim}};
}

TextEncoderConfig text_encoder_config_from_json(const nlohmann::json& j) {
    TextEncoderConfig c;
    c.vocab_size = j.value("vocab_size", c.vocab_size);
    c.text_len = j.value("text_len", c.text_len);
    c.dim = j.value("dim", c.dim);
    c.n_heads = j.value("n_heads", c.n_heads);
    c.n_layers = j.value("n_layers", c.n_layers);
    c.ffn_dim = j.value("ffn_dim", c.ffn_dim);
    return c;
}

TextEncoderLayerImpl::TextEncoderLayerImpl(int64_t dim, int64_t n_heads, int64_t ffn_dim) : n_heads_(n_heads) {
    SURGEON_CHECK(n_heads > 0 && dim % n_heads == 0, "text encoder dim {} is not divisible by n_heads {}", dim,
                  n_heads);
    norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    auto attn = register_module("self_attn", std::make_shared<torch::nn::Module>());
    qkv_ = attn->register_module("qkv", torch::nn::Linear(dim, 3 * dim));
    o_ = attn->register_module("o", torch::nn::Linear(dim, dim));
    norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
    ffn_ = register_module("ffn", torch::nn::Sequential(torch::nn::Linear(dim, ffn_dim),
                                                         torch::nn::GELU(torch::nn::GELUOptions().approximate("tanh")),
                                                         torch::nn::Linear(ffn_dim, dim)));
}

torch::Tensor TextEncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& key_mask) {
    const int64_t B = x.size(0), L = x.size(1), D = x.size(2), hd = D / n_heads_;
    auto qkv = qkv_(norm1_(x)).view({B, L, 3, n_heads_, hd}).permute({2, 0, 3, 1, 4});  // [3, B, H, L, hd]
    auto mask = key_mask.view({B, 1, 1, L});                                            // [B, 1, 1, L]
    auto a = at::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], mask);            // [B, H, L, hd]
    auto h = x + o_(a.transpose(1, 2).reshape({B, L, D}));                              // [B, L, D]
    return h + ffn_->forward(norm2_(h));                                                // [B, L, D]
}

TextEncoderImpl::TextEncoderImpl(TextEncoderConfig config) : config_(config) {
    if (config_.vocab_size <= 0) config_.vocab_size = Tokenizer().vocab_size();
    SURGEON_CHECK(config_.text_len > 0 && config_.dim > 0 && config_.n_layers >= 0 && config_.ffn_dim > 0,
                  "invalid text encoder config {}", to_json(config_).dump());
    token_embedding_ = register_module("token_embedding", torch::nn::Embedding(config_.vocab_size, config_.dim));
    // N(0, 1) like the token embedding (torch's Embedding default). At N(0, 0.02^2) (the bundled teacher's init)
    // positions carried ~3% of the input norm, and the trained encoder stayed nearly a bag of words: "purple to navy"
    // and "navy to purple", or two objects' colours exchanged, gave the DiT the same loss (probe_conditioning).
    pos_embedding_ = register_parameter("pos_embedding", torch::randn({config_.text_len, config_.dim}));
    layers_ = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < config_.n_layers; ++i)
        layers_->push_back(TextEncoderLayer(config_.dim, config_.n_heads, config_.ffn_dim));
    norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config_.dim})));
}

torch::Tensor TextEncoderImpl::forward(const torch::Tensor& ids) {
    SURGEON_CHECK(ids.dim() == 2 && ids.scalar_type() == torch::kInt64,
                  "text encoder expects int64 ids [B, L], got {} dims of {}", ids.dim(),
                  c10::toString(ids.scalar_type()));
    const int64_t L = ids.size(1);
    SURGEON_CHECK(L <= config_.text_len, "text encoder input has {} tokens, more than text_len {}", L,
                  config_.text_len);
    auto mask = ids.ne(0);                                                    // [B, L] true = real token
    auto x = token_embedding_(ids) + pos_embedding_.slice(0, 0, L).unsqueeze(0);  // [B, L, D]
    for (auto& layer : *layers_) x = layer->as<TextEncoderLayer>()->forward(x, mask);
    x = norm_(x);                                                             // [B, L, D]
    return x * mask.unsqueeze(-1).to(x.dtype());                              // [B, L, D], zero at <pad>
}

TensorMap text_encoder_state(TextEncoder& enc, const std::string& prefix) {
    TensorMap out;
    for (const auto& p : enc->named_parameters()) out[prefix + p.key()] = p.value().detach();
    for (const auto& b : enc->named_buffers()) out[prefix + b.key()] = b.value().detach();
    return out;
}

void load_text_encoder_state(TextEncoder& enc, const TensorMap& tensors, const std::string& prefix) {
    torch::NoGradGuard no_grad;
    std::set<std::string> expected;
    auto load_one = [&](const std::string& name, torch::Tensor& dst) {
        const std::string key = prefix + name;
        expected.insert(key);
        auto it = tensors.find(key);
        SURGEON_CHECK(it != tensors.end(), "text encoder tensor '{}' is missing", key);
        SURGEON_CHECK(it->second.sizes() == dst.sizes(), "text encoder tensor '{}' has shape {}, expected {}", key,
                      c10::str(it->second.sizes()), c10::str(dst.sizes()));
        dst.copy_(it->second.to(dst.device(), dst.scalar_type()));
    };
    for (auto& p : enc->named_parameters()) load_one(p.key(), p.value());
    for (auto& b : enc->named_buffers()) load_one(b.key(), b.value());
    for (const auto& kv : tensors)
        if (kv.first.rfind(prefix, 0) == 0)
            SURGEON_CHECK(expected.count(kv.first), "unexpected text encoder tensor '{}'", kv.first);
}

}  // namespace surgeon::world
